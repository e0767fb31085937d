"""Downloads against mirrors on a local server: plain, failing, hostile, hanging, bounded in time, size and memory."""
import gzip
import os
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mnist_fakes import names_in
from tinygan.data import mnist as data, download

pytestmark = pytest.mark.usefixtures("isolated")  # no user cache, no default mirror (conftest.py)


# --- a local HTTP server: /ok/, /404/, /500/, /bad/, /trunc/, /hang/, /html/ prefixes ---

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("User-Agent")))
        mode, _, name = self.path.strip("/").partition("/")
        body = gzip.compress(srv.files.get(name.removesuffix(".gz"), b""))
        if mode in ("404", "500"):
            return self.send_error(int(mode))
        if mode == "hang":
            srv.release.wait(10)  # never answers within the client's timeout
            return
        if mode == "bad":  # a valid gzip of the wrong content
            body = gzip.compress(srv.files[name.removesuffix(".gz")][:-1] + b"\x07")
        if mode == "html":
            body = b"<!DOCTYPE html><html><body>Access denied</body></html>"
        if mode == "trickle":  # a valid start, then a byte every 0.1 s: each read is quick, the whole never ends
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                if srv.release.is_set():
                    return
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if mode in ("bomb", "junk"):  # no Content-Length: the size shows only as the bytes come
            self.send_response(200)
            self.end_headers()
            self.wfile.write(srv.bomb if mode == "bomb" else gzip.compress(os.urandom(1 << 20)))
            self.close_connection = True
            return
        if mode == "big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 9))
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "trunc":  # promise the whole body, send half, close the connection
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(fake):
    """A threaded http.server on 127.0.0.1, ephemeral port, serving the fake set; yields its URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads, srv.files, srv.log, srv.release = True, fake, [], threading.Event()
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # a gzip bomb: 200 MB of zeros in about 200 kB
    srv.bomb = b"".join(deflate.compress(bytes(1 << 20)) for _ in range(200)) + deflate.flush()
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_download_plain(server, fake, tmp_path):
    d = data.download_mnist(tmp_path / "dl", mirrors=[server.url + "/ok/"], timeout=2, verbose=False)
    assert names_in(d) == sorted([n + ".gz" for n in data.ALL] + [f".{n}.gz.md5ok" for n in data.ALL])
    for n, b in fake.items():
        np.testing.assert_array_equal(data.read_idx(d / (n + ".gz")), data.parse_idx(b, n, data.kind_of(n)))
    assert all(ua.startswith("tinygan/") for _, ua in server.log)


@pytest.mark.parametrize("status", ["404", "500"])
def test_first_mirror_error_then_second(server, tmp_path, status):
    mirrors = [f"{server.url}/{status}/", server.url + "/ok/"]
    d = data.download_mnist(tmp_path / "dl", mirrors=mirrors, timeout=2, verbose=False)
    assert all((d / (n + ".gz")).is_file() for n in data.ALL)
    assert [p for p, _ in server.log][:2] == [f"/{status}/train-images-idx3-ubyte.gz", "/ok/train-images-idx3-ubyte.gz"]


@pytest.mark.parametrize("mode,words", [("bad", "checksum mismatch"), ("trunc", "truncated"), ("html", "HTML")])
def test_bad_download_rejected_and_not_cached(server, tmp_path, mode, words):
    d = tmp_path / "dl"
    with pytest.raises(data.DataNotFoundError, match=words) as e:
        data.download_mnist(d, mirrors=[f"{server.url}/{mode}/"], timeout=2, verbose=False)
    assert "train-images-idx3-ubyte.gz" in str(e.value)
    assert names_in(d) == []  # no .gz, no .part: nothing a later run could trust
    data.download_mnist(d, mirrors=[f"{server.url}/{mode}/", server.url + "/ok/"], timeout=2, verbose=False)
    for n in data.ALL:
        data.verify(d / (n + ".gz"), n)


def test_hanging_mirror_times_out(server, tmp_path):
    t = time.perf_counter()
    d = data.download_mnist(tmp_path / "dl", mirrors=[server.url + "/hang/", server.url + "/ok/"],
                            timeout=1, verbose=False)
    assert all((d / (n + ".gz")).is_file() for n in data.ALL)
    assert time.perf_counter() - t < 5  # the dead mirror is waited on once, not once per file
    with pytest.raises(data.DataNotFoundError, match="timed out"):
        data.download_mnist(tmp_path / "dl2", mirrors=[server.url + "/hang/"], timeout=1, verbose=False)
    assert names_in(tmp_path / "dl2") == []


def test_load_mnist_downloads_into_cache(server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TINYGAN_OFFLINE")
    x, y = data.load_mnist("train", mirrors=[server.url + "/ok/"], timeout=2, verbose=False)
    assert x.shape == (5, 28, 28) and y.shape == (5,) and x.dtype == y.dtype == np.uint8
    cache = tmp_path / "xdg" / "tinygan" / "mnist"
    assert data.find_mnist(mirrors=[]) == str(cache)  # second time: from the cache, no network
    x, y = data.load_mnist("test", mirrors=[], verbose=False)
    assert x.shape == (3, 28, 28) and capsys.readouterr().err == ""


# --- downloads are bounded: in time, in size, in memory; https only; leftovers cleaned ---

def test_a_trickling_mirror_meets_the_deadline(server, tmp_path):
    t = time.perf_counter()
    with pytest.raises(data.DataNotFoundError, match="timed out: still downloading after 1 s"):
        data.download_mnist(tmp_path / "dl", names=["train-labels-idx1-ubyte"], mirrors=[server.url + "/trickle/"],
                            timeout=5, deadline=1, verbose=False)
    assert time.perf_counter() - t < 4  # the per-read timeout (5 s) never fired: the deadline did
    assert names_in(tmp_path / "dl") == []


def test_a_gzip_bomb_is_stopped_at_the_known_size_in_bounded_memory(server, tmp_path):
    tracemalloc.start()
    try:
        with pytest.raises(data.DataNotFoundError, match="inflates to more than the 47040016 bytes"):
            data.download_mnist(tmp_path / "dl", names=["train-images-idx3-ubyte"], mirrors=[server.url + "/bomb/"],
                                timeout=5, verbose=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"
    assert names_in(tmp_path / "dl") == []


@pytest.mark.parametrize("mode, words", [("junk", "sent more than the"), ("big", "announces 1000000000 bytes")])
def test_oversized_downloads_are_cut_off(server, tmp_path, mode, words):
    with pytest.raises(data.DataNotFoundError, match=words):
        data.download_mnist(tmp_path / "dl", names=["train-labels-idx1-ubyte"], mirrors=[f"{server.url}/{mode}/"],
                            timeout=5, verbose=False)
    assert names_in(tmp_path / "dl") == []


def test_only_https_mirrors(monkeypatch):
    monkeypatch.undo()  # the real mirror list (the autouse fixture empties it)
    assert data.MIRRORS and all(m.startswith("https://") for m in data.MIRRORS)
    with pytest.raises(data.DataNotFoundError, match="only https mirrors are used"):
        download.check_url("http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz")
    download.check_url("http://127.0.0.1:8000/x.gz")  # a server on this machine (tests) is allowed


def test_a_killed_download_leaves_nothing_behind(server, tmp_path):
    d = tmp_path / "dl"
    d.mkdir()
    (d / ".part-999999999-abc-train-images-idx3-ubyte.gz").write_bytes(b"half")  # its process is gone
    data.download_mnist(d, mirrors=[server.url + "/ok/"], timeout=2, verbose=False)
    assert not [n for n in names_in(d) if n.startswith(".part-")]


def test_the_fallback_can_be_refused(monkeypatch):
    with pytest.raises(data.DataNotFoundError, match="the bundled 10k split was refused"):
        data.load_mnist(fallback=False)
    monkeypatch.setenv("TINYGAN_REQUIRE_FULL", "1")
    with pytest.raises(data.DataNotFoundError, match="TINYGAN_REQUIRE_FULL"):
        data.load_mnist()


