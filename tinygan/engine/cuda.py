"""The GPU path's own pieces, in one place: fused CuPy kernels, Philox on the device, capturable cuBLAS, a CUDA graph.

Each kernel computes what a plain array expression elsewhere computes (named beside it); tests/test_cuda.py
checks each against that plain path on a GPU. Nothing here runs on the CPU: it is imported only with CuPy.
"""
import ctypes

import cupy

# --- Philox4x32-10 on the device: the same stream as tinygan/engine/philox.py, block for block ---
PHILOX = r"""
__device__ unsigned int philox_word(unsigned long long block, unsigned int w, unsigned long long key) {
    unsigned int c0 = (unsigned int)block, c1 = (unsigned int)(block >> 32), c2 = 0u, c3 = 0u;
    unsigned int k0 = (unsigned int)key, k1 = (unsigned int)(key >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
        unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0, n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0; c1 = (unsigned int)p1; c2 = n2; c3 = (unsigned int)p0;
    }
    return w == 0 ? c0 : w == 1 ? c1 : w == 2 ? c2 : c3;
}
// word j of a draw that starts at block `first`; a float64 draw takes its low bits from a second pass `used` later
__device__ double philox_unit(unsigned long long first, unsigned long long used, long long j,
                              unsigned long long key, bool wide) {
    unsigned int w = philox_word(first + j / 4, j % 4, key);
    if (!wide) return (double)(w >> 8) * (1.0 / 16777216.0);
    unsigned int v = philox_word(first + used + j / 4, j % 4, key);
    return (double)(((unsigned long long)w << 21) | (v >> 11)) * (1.0 / 9007199254740992.0);
}
"""
# philox.uniform: u = word >> 8 / 2^24 (float32), or 53 bits from two passes (float64)
_uniform = cupy.ElementwiseKernel(
    "raw uint64 ctr, uint64 key, uint64 used", "T u",
    "u = (T)philox_unit(ctr[0], used, i, key, sizeof(T) == 8);", "tinygan_philox_uniform", preamble=PHILOX)
# philox.normal: Box-Muller on the uniforms of 2h words, r from the first h, the angle from the second h
_normal = cupy.ElementwiseKernel(
    "raw uint64 ctr, uint64 key, uint64 used, int64 h", "T z",
    """long long a = i < h ? i : i - h;
       T u1 = (T)philox_unit(ctr[0], used, a, key, sizeof(T) == 8);
       T u2 = (T)philox_unit(ctr[0], used, a + h, key, sizeof(T) == 8);
       T r = sqrt((T)-2 * log((T)1 - u1)), t = (T)6.283185307179586 * u2;
       z = i < h ? r * cos(t) : r * sin(t);""", "tinygan_philox_normal", preamble=PHILOX)
# philox.integers: (word * high) >> 32
_integers = cupy.ElementwiseKernel(
    "raw uint64 ctr, uint64 key, uint64 high", "int64 k",
    "k = (long long)(((unsigned long long)philox_word(ctr[0] + i / 4, i % 4, key) * high) >> 32);",
    "tinygan_philox_integers", preamble=PHILOX)


class Philox:
    """A device-side generator: a key and a block counter in device memory, so a CUDA graph replays new numbers."""

    def __init__(self, key, counter=0):
        self.key = key & 0xFFFFFFFFFFFFFFFF
        self.counter = cupy.full(1, counter, dtype=cupy.uint64)  # the next unused block

    def _advance(self, used):
        self.counter += cupy.uint64(used)  # on the device, after the kernel that drew: part of the graph

    def random(self, out):
        """Uniform [0, 1) into out (float32 or float64)."""
        used = -(-out.size // 4)
        _uniform(self.counter, cupy.uint64(self.key), cupy.uint64(used), out)
        self._advance(used * (2 if out.dtype == cupy.float64 else 1))
        return out

    def standard_normal(self, out):
        """Standard normal samples into out."""
        h = (out.size + 1) // 2
        used = -(-2 * h // 4)
        _normal(self.counter, cupy.uint64(self.key), cupy.uint64(used), h, out)
        self._advance(used * (2 if out.dtype == cupy.float64 else 1))
        return out

    def integers(self, high, out):
        """Integers in [0, high) into out (int64)."""
        used = -(-out.size // 4)
        _integers(self.counter, cupy.uint64(self.key), cupy.uint64(high), out)
        self._advance(used)
        return out

    def state(self):
        """{key, counter}: the exact state (reads the counter back: call it at checkpoints, not every step)."""
        return {"philox_key": self.key, "counter": int(self.counter.get()[0])}


# --- Adam and the weight average, one kernel each (optim.Adam.step and GAN.step's EMA, their plain forms) ---
_adam = cupy.ElementwiseKernel(
    "T g, raw T s, T b1, T b2", "T p, T m, T v",
    """m = b1 * m + (1 - b1) * g;
       v = b2 * v + (1 - b2) * g * g;
       p -= s[0] * m / (sqrt(v) + s[1]);""", "tinygan_adam")
_ema = cupy.ElementwiseKernel("T p, raw T d", "T ema", "ema = d[0] * ema + (1 - d[0]) * p", "tinygan_ema")


def adam_update(p, g, m, v, scalars, b1, b2):
    """One Adam update over flat buffers; scalars: device (step size, eps) of this step, from the step counter."""
    _adam(g, scalars, p.dtype.type(b1), p.dtype.type(b2), p, m, v)


def ema_update(ema, p, d):
    """ema = d ema + (1 - d) p, with the decay d (a 1-element device array) from the step counter."""
    _ema(p, d, ema)


# --- matrix products a CUDA graph can capture: cuBLAS called directly, on a handle bound to our stream ---
class Gemm:
    """out = a @ b for 2-D float arrays (C-contiguous, or the transpose of one) through cuBLAS's C API."""
    # CuPy's own cuBLAS calls refuse stream capture; cuBLAS itself supports it once the handle's stream and
    # workspace are set before capture (a workspace of our own: cuBLAS may not allocate while captured).

    def __init__(self, stream, workspace_bytes=4 << 20):
        self.lib = _load_cublas()
        self.handle = ctypes.c_void_p()
        self._check(self.lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self._check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream.ptr)), "cublasSetStream")
        self.workspace = cupy.empty(workspace_bytes, dtype=cupy.uint8)  # kept alive as long as the handle
        self._check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                                   ctypes.c_size_t(workspace_bytes)), "cublasSetWorkspace")

    @staticmethod
    def _check(status, what):
        if status != 0:
            raise RuntimeError(f"{what} failed with cuBLAS status {status}")

    @staticmethod
    def _operand(x):
        """(transpose flag, leading dimension) of a row-major operand seen column-major by cuBLAS."""
        if x.flags.c_contiguous:
            return 0, x.shape[1]   # a row-major (r, c) matrix is a column-major (c, r): op N, ld c
        if x.flags.f_contiguous:
            return 1, x.shape[0]   # the transpose of a C-contiguous matrix: op T, ld its row length
        raise ValueError(f"cuBLAS needs contiguous operands; got strides {x.strides} for shape {x.shape}")

    def __call__(self, a, b, out):
        # C = A B (row-major) is C^T = B^T A^T column-major: pass B first, then A, and C with ld n.
        (m, k), n = a.shape, b.shape[1]
        ta, lda = self._operand(a)
        tb, ldb = self._operand(b)
        if not out.flags.c_contiguous or out.shape != (m, n) or a.dtype != b.dtype or b.dtype != out.dtype:
            raise ValueError("Gemm writes a C-contiguous out of shape (a rows, b columns) and the operands' dtype")
        one, zero = (ctypes.c_double(1), ctypes.c_double(0)) if out.dtype == cupy.float64 else \
            (ctypes.c_float(1), ctypes.c_float(0))
        gemm = self.lib.cublasDgemm_v2 if out.dtype == cupy.float64 else self.lib.cublasSgemm_v2
        self._check(gemm(self.handle, tb, ta, n, m, k, ctypes.byref(one), ctypes.c_void_p(b.data.ptr), ldb,
                         ctypes.c_void_p(a.data.ptr), lda, ctypes.byref(zero), ctypes.c_void_p(out.data.ptr), n),
                    "cublasGemm")
        return out


def _load_cublas():
    """The cuBLAS shared library CuPy itself uses (CUDA 13, then 12)."""
    for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RuntimeError("cuBLAS (libcublas.so.12 or .13) was not found: install the CUDA toolkit CuPy was built for")


# --- one training iteration as a CUDA graph ---
class GraphStep:
    """Sample a batch and run GAN.step once, captured as one CUDA graph on first use; each call replays it."""

    def __init__(self, gan, data):
        self.gan, self.data = gan, data
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.pool = cupy.cuda.MemoryPool()  # every array the graph touches is allocated here and kept alive
        self.gemm = Gemm(self.stream)
        self.graph, self.stats = None, None

    def _step(self):
        cond = self.gan.config["conditional"]
        real, labels = self.data.sample(self.gan.config["batch_size"])
        return self.gan.step(real, labels if cond else None)

    def __call__(self):
        gan = self.gan
        if self.graph is None:
            with cupy.cuda.using_allocator(self.pool.malloc), self.stream, use_gemm(gan.be, self.gemm):
                stats = self._step()  # this call's step, eager: compiles every kernel and makes every buffer
                self.stream.synchronize()
                host = (gan.iteration, gan.opt_d.t, gan.opt_g.t)  # capture runs the Python once, the GPU not at all
                self.stream.begin_capture()
                try:
                    self.stats = self._step()  # the replays' statistics: these arrays are refilled by every launch
                finally:
                    graph = self.stream.end_capture()  # ends the capture whatever happened inside it
                    gan.iteration, gan.opt_d.t, gan.opt_g.t = host
                self.graph = graph  # only a capture that completed is ever launched
            return stats
        self.graph.launch(cupy.cuda.get_current_stream())  # ordered with everything else on this stream
        gan.iteration += 1  # the host's counters; the device's were advanced inside the graph
        gan.opt_d.t += 1
        gan.opt_g.t += 1
        return self.stats


class use_gemm:
    """Within `with use_gemm(be, g):`, be.matmul sends products to g (capturable cuBLAS) instead of CuPy's matmul."""

    def __init__(self, be, gemm):
        self.be, self.gemm = be, gemm

    def __enter__(self):
        self.saved, self.be.gemm = self.be.gemm, self.gemm

    def __exit__(self, *exc):
        self.be.gemm = self.saved
