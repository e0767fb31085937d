"""Atomic file writes, shared by checkpoints, data downloads, logs and plots; stale temp files cleaned."""
import contextlib
import os
import tempfile

TEMP = ".tmp-"  # temp files are named .tmp-PID-XXXX: the PID tells a live writer's file from a dead one's


@contextlib.contextmanager
def atomic_open(path):
    """A binary file that replaces path (os.replace) only if the with-block finishes; else nothing is left."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{TEMP}{os.getpid()}-", suffix=os.path.splitext(path)[1])
    except OSError as e:  # name the file the user asked for, not the temp file
        raise OSError(e.errno, e.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the permissions a plain open() would
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):  # a full disk, a folder in the file's place
            raise OSError(e.errno, e.strerror or str(e), path) from None
        raise


def atomic_write(path, write):
    """Call write(file) on a temp file in path's directory, then os.replace it onto path."""
    with atomic_open(path) as f:
        write(f)


def pid_alive(pid):
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        return True
    return True


def clean_temps(folder, prefix=TEMP):
    """Remove temp files (prefix + PID-...) left in folder by processes that no longer run; returns their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or pid_alive(int(pid))):
            continue  # a live writer's file (or an old-style name with no PID: treated as stale)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed
