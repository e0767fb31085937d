"""Atomic file writes, shared by checkpoints, data downloads, logs and plots."""
import os
import tempfile


def atomic_write(path, write):
    """Call write(file) on a temp file in path's directory, then os.replace it onto path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the permissions a plain open() would
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        os.unlink(tmp)
        raise
