"""Bounded downloads of gzipped files: https only, a deadline per file, a size cap, inflated and hashed as they stream."""
import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from ..run.fileio import clean_temps
from .idx import DataNotFoundError, IDXFormatError, MNISTDataError, check_not_html

PART = ".part-"  # downloads in progress: .part-PID-..., removed once their process is gone


class ChecksumError(MNISTDataError):
    """A file parses but its MD5 is not the one expected (canonical MNIST, or the folder's MD5SUMS)."""


def _user_agent():
    """'tinygan/<version>' for HTTP requests."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"tinygan/{version('tinygan')}"
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "tinygan/0.1.0"


def check_url(url):
    """Refuse plain http except to this machine (a test server): a download must not be swappable in transit."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "https" and not (u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1")):
        raise DataNotFoundError(f"{url}: only https mirrors are used; give an https:// address")


def fetch(url, dest, name, md5, size, timeout, deadline, verbose=False):
    """Stream url (a .gz of `size` bytes inflated, MD5 `md5`) into a temp file beside dest, then os.replace it there."""
    from tqdm import tqdm
    check_url(url)
    cap = size + size // 100 + 1024  # gzip never grows data by more than this: anything bigger is junk
    req = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f"{PART}{os.getpid()}-", suffix=f"-{dest.name}")
    inflate, h, got, raw, start = zlib.decompressobj(wbits=31), hashlib.md5(), 0, 0, time.monotonic()
    head = b""  # the first bytes, to tell a gzip file from an error page
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0) or None
            if total is not None and total > cap:
                raise IDXFormatError(f"{url}: announces {total} bytes, more than {name}.gz can be ({cap}); not MNIST")
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False,
                      disable=None if verbose else True) as bar:
                while chunk := r.read1(1 << 16):  # whatever has arrived: a trickle cannot outlast the deadline
                    if len(head) < 2:
                        head += chunk[:512]
                        if len(head) >= 2 and head[:2] != b"\x1f\x8b":
                            check_not_html(url, head)
                            raise IDXFormatError(f"{url}: not a gzip file (it starts {head[:4].hex(' ')}); not MNIST")
                    got += len(chunk)
                    if got > cap:
                        raise IDXFormatError(f"{url}: sent more than the {cap} bytes {name}.gz can be; not MNIST")
                    if time.monotonic() - start > deadline:
                        raise DataNotFoundError(f"{url}: timed out: still downloading after {deadline} s "
                                                f"({got} bytes so far)")
                    f.write(chunk)
                    bar.update(len(chunk))
                    while chunk:  # inflate in bounded pieces: a gzip bomb never sits in memory
                        data = inflate.decompress(chunk, 1 << 20)
                        chunk = inflate.unconsumed_tail
                        raw += len(data)
                        if raw > size:
                            raise IDXFormatError(f"{url}: inflates to more than the {size} bytes of {name}; not MNIST")
                        h.update(data)
        if (total is not None and got != total) or not inflate.eof:
            raise IDXFormatError(f"{url}: truncated transfer, {got} of {total or 'the announced'} bytes")
        if h.hexdigest() != md5:  # checked under the temp name: nothing unverified ever has the real name
            raise ChecksumError(f"{url}: checksum mismatch: MD5 of the decompressed data is {h.hexdigest()}, "
                                f"expected {md5} (canonical {name})")
        os.replace(tmp, dest)
    except zlib.error as e:
        raise IDXFormatError(f"{url}: corrupt gzip stream ({e})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)  # a failed or corrupt download never stays
    return dest


def download_files(dest_dir, names, mirrors, md5, sizes, timeout, deadline, verbose=False):
    """Fetch each missing name + '.gz' into dest_dir from the first mirror that delivers it; returns the names fetched."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=dest_dir, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MNISTDataError(f"cannot write to the MNIST cache {dest_dir} ({e.strerror or e}); make it "
                             "writable, set $XDG_CACHE_HOME elsewhere, or pass --data DIR / set "
                             "$TINYGAN_DATA to a folder with the MNIST files") from None
    clean_temps(dest_dir, PART)  # downloads that were killed half-way
    dead, fetched = set(), []  # dead: mirrors that could not be reached, not waited on again for the next file
    for name in names:
        if (dest_dir / name).is_file() or (dest_dir / (name + ".gz")).is_file():
            continue
        errors = []
        for base in mirrors:
            if base in dead:
                continue
            url = base.rstrip("/") + "/" + name + ".gz"
            try:
                fetch(url, dest_dir / (name + ".gz"), name, md5[name], sizes[name], timeout, deadline, verbose)
                fetched.append(name)
                break
            except (OSError, ValueError, http.client.HTTPException, MNISTDataError) as e:
                if isinstance(e, OSError) and not isinstance(e, urllib.error.HTTPError):
                    dead.add(base)  # connection refused / timed out / DNS: the host is down
                errors.append(f"{url}: {e}")
        else:
            raise DataNotFoundError(f"could not download {name}.gz from any mirror ("
                                    + "; ".join(errors or ["no mirror left"]) + ")")
    return fetched
