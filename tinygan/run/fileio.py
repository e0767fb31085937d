"""Atomic file writes, shared by checkpoints, data downloads, logs and plots; stale temp files cleaned."""
import contextlib
import os
import shutil
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
    """Remove temp files and folders (prefix + PID-...) left in folder by processes that no longer run; their names."""
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
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):  # sample --format folders fills one
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
    return removed


class NpzHeader:
    """What an .npz member's npy header claims: dtype, shape, bytes, and where its data starts in the member."""

    def __init__(self, name, dtype, shape, fortran, offset, size):
        self.name, self.dtype, self.shape, self.fortran, self.offset, self.size = name, dtype, shape, fortran, offset, size
        self.count = 1
        for n in shape:
            self.count *= n  # Python integers: a claimed (10**12, 10**12) does not overflow
        self.nbytes = self.count * dtype.itemsize


def npz_headers(zf, wanted):
    """{name: NpzHeader} for the members of an open ZipFile that wanted(name) accepts; nothing else is read.

    Raises ValueError naming a member whose header is not an npy header or disagrees with the member's size."""
    import numpy as np  # host side only
    fmt = np.lib.format
    headers = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or not wanted(info.filename[:-4]):
            continue
        name = info.filename[:-4]
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"member {name!r} is an npy file of version {version}, which tinygan never writes")
            offset = f.tell()
        if dtype.hasobject:
            raise ValueError(f"member {name!r} holds Python objects, which tinygan never writes")
        h = NpzHeader(name, dtype, tuple(shape), fortran, offset, info.file_size)
        if offset + h.nbytes != info.file_size:
            raise ValueError(f"member {name!r} claims shape {h.shape} of {dtype} ({h.nbytes} bytes) but holds "
                             f"{info.file_size - offset} bytes")
        headers[name] = h
    return headers


def npz_read(zf, header):
    """The array of one member whose header npz_headers checked (its bytes are then known and bounded)."""
    import numpy as np  # host side only
    with zf.open(header.name + ".npy") as f:
        f.seek(header.offset) if f.seekable() else f.read(header.offset)
        data = f.read(header.nbytes)
    if len(data) != header.nbytes:
        raise ValueError(f"member {header.name!r} is cut short")
    a = np.frombuffer(data, dtype=header.dtype).copy()
    return a.reshape(header.shape, order="F" if header.fortran else "C")
