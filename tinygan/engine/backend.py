"""The array backend: numpy (CPU) or cupy (GPU), chosen by one string."""
import json
import math


class BackendError(RuntimeError):
    """The requested backend cannot run here; the message says why and what to do."""


def _import_cupy():
    """Import cupy and check for a CUDA device, or raise one clear BackendError."""
    try:
        import cupy
    except ImportError:
        raise BackendError(
            "backend 'cupy': CuPy is not installed. Install the extra that matches your CUDA "
            "toolkit: pip install 'tinygan[cuda12]' (cupy-cuda12x) or 'tinygan[cuda13]' (cupy-cuda13x)."
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # the CUDA driver is missing or broken
        count, why = 0, f" ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})"
    else:
        why = ""
    if count == 0:
        raise BackendError(
            f"backend 'cupy': CuPy is installed but no CUDA device is visible{why}. "
            "Run on a machine with an NVIDIA GPU and driver, or use --backend numpy."
        )
    return cupy


class Backend:
    """Owns the array module, the float dtype, a seeded random generator and host/device transfer."""

    def __init__(self, name="numpy", dtype="float32", seed=0, rng="default"):
        if name == "numpy":
            import numpy as xp
        elif name == "cupy":
            xp = _import_cupy()
        else:
            raise BackendError(f"unknown backend {name!r}: choose 'numpy' or 'cupy'")
        if dtype not in ("float32", "float64"):
            raise BackendError(f"unknown dtype {dtype!r}: choose 'float32' or 'float64'")
        if rng not in ("default", "philox"):
            raise BackendError(f"unknown generator {rng!r}: choose 'default' or 'philox'")
        self.name, self.xp, self.dtype, self.seed, self.rng_kind = name, xp, xp.dtype(dtype), seed, rng
        self.rng = self.generator(seed)
        self.buffers = {}  # scratch arrays reused across calls (see reuse)
        self.gemm = None  # while a CUDA graph is recorded: a matmul cuBLAS allows in capture (cuda.use_gemm)

    def generator(self, seed, counter=0):
        """A seeded generator: numpy's default_rng, or CuPy's RandomState (on the device: no host round trip);
        with rng="philox", Philox4x32-10 keyed by the seed (its counter on the device under CuPy: graph-safe)."""
        if self.rng_kind == "philox":
            if self.name == "cupy":
                from .cuda import Philox  # GPU-only code lives in cuda.py
                return Philox(seed, counter)
            from .philox import Stream
            return Stream(self.xp, seed, counter)
        return self.xp.random.default_rng(seed) if self.name == "numpy" else self.xp.random.RandomState(seed)

    def __repr__(self):
        rng = "" if self.rng_kind == "default" else f", rng={self.rng_kind!r}"
        return f"Backend({self.name!r}, dtype={self.dtype.name!r}, seed={self.seed}{rng})"

    # --- random numbers, drawn on the device in the backend's dtype ---
    def randn(self, *shape, out=None):
        """Standard normal samples of the given shape, or written into `out` (a contiguous array)."""
        if self.rng_kind == "philox":
            return self.rng.standard_normal(self.xp.empty(shape, self.dtype) if out is None else out)
        if self.name == "cupy":  # cuRAND's generator, on the device
            z = self.rng.standard_normal(shape if out is None else out.shape, dtype=self.dtype)
            if out is None:
                return z
            out[...] = z
            return out
        out = self.xp.empty(shape, self.dtype) if out is None else out
        if not out.flags.c_contiguous:
            raise ValueError(f"randn(out=...) needs a C-contiguous array; got one of shape {out.shape} "
                             "that is not (pass a contiguous buffer, or copy the result into a slice)")
        # Box-Muller over whole arrays: with u1, u2 uniform, r = sqrt(-2 ln(1 - u1)) and t = 2 pi u2 give
        # r cos(t) and r sin(t), two independent N(0, 1) samples. Vectorised, this is ~3x faster than
        # numpy's one-at-a-time ziggurat; the stream is still fixed by the seed.
        flat, n = out.reshape(-1), out.size  # a view: out is contiguous
        h = (n + 1) // 2
        r = self.rng.random(out=reuse(self.buffers, "r", flat, (h,)), dtype=self.dtype)
        t = self.rng.random(out=reuse(self.buffers, "t", flat, (h,)), dtype=self.dtype)
        xp = self.xp
        xp.subtract(1, r, out=r)  # (0, 1]: log is finite
        xp.log(r, out=r)
        r *= -2
        xp.sqrt(r, out=r)
        t *= 2 * math.pi
        xp.multiply(r, xp.cos(t, out=flat[:h]), out=flat[:h])
        xp.multiply(r[:n - h], xp.sin(t[:n - h], out=flat[h:]), out=flat[h:])
        return out

    def rand(self, *shape, out=None):
        """Uniform samples in [0, 1) of the given shape, or written into `out` (a contiguous array)."""
        if self.rng_kind == "philox":
            return self.rng.random(self.xp.empty(shape, self.dtype) if out is None else out)
        if self.name == "numpy":
            if out is None:
                return self.rng.random(shape, dtype=self.dtype)
            return self.rng.random(out=out, dtype=self.dtype)
        if out is None:
            return self.rng.random_sample(shape, dtype=self.dtype)
        out[...] = self.rng.random_sample(out.shape, dtype=self.dtype)
        return out

    def randint(self, high, size):
        """Integers in [0, high) as a 1-D index array."""
        if self.rng_kind == "philox":
            return self.rng.integers(high, self.xp.empty(size, self.xp.int64))
        if self.name == "numpy":
            return self.rng.integers(0, high, size)
        # CuPy's randint rejects samples and reads a count back to the host unless high is a power of two,
        # so every draw would wait for the GPU. floor(u * high) with u uniform in [0, 1) in float64 stays on
        # the device; it is below high for any high < 2^53, and its bias is under high / 2^53.
        u = self.rng.random_sample(size, dtype=self.xp.float64)
        u *= high
        return u.astype(self.xp.int64)  # truncation is floor: u >= 0

    def rng_state(self):
        """The generator state as a JSON string (exact on numpy and with Philox; seed-only for cuRAND)."""
        if self.rng_kind == "philox":
            return json.dumps(self.rng.state())  # reads the device counter back: at checkpoints only
        if self.name == "numpy":
            return json.dumps(self.rng.bit_generator.state)
        return json.dumps({"cupy_seed": self.seed})

    def set_rng_state(self, state, reseed=None):
        """Restore a state from rng_state(); cupy (or a cupy state) re-seeds from `reseed` (e.g. seed and iteration)."""
        state = json.loads(state)
        if self.rng_kind == "philox" and "philox_key" in state:
            self.rng = self.generator(state["philox_key"], state["counter"])
        elif self.name == "numpy" and "bit_generator" in state and self.rng_kind == "default":
            self.rng.bit_generator.state = state
        else:
            self.rng = self.generator(reseed if reseed is not None else self.seed)

    # --- arrays ---
    def asarray(self, x, dtype=None):
        """Put x on the device, as the backend's float dtype unless told otherwise."""
        return self.xp.asarray(x, dtype=dtype or self.dtype)

    def zeros(self, *shape):
        return self.xp.zeros(shape, dtype=self.dtype)

    def matmul(self, a, b, out):
        """out = a @ b for 2-D arrays: the array module's matmul, or the capturable one a graph step installs."""
        if self.gemm is not None:
            return self.gemm(a, b, out)
        return self.xp.matmul(a, b, out=out)

    def take_rows(self, a, idx, out):
        """out[i] = a[idx[i]] for in-range indices idx, written into out with no temporary."""
        if self.name == "numpy":
            return a.take(idx, axis=0, out=out, mode="clip")  # mode="raise" would buffer a copy of out
        return self.xp.take(a, idx, axis=0, out=out)

    def to_host(self, x):
        """A host (numpy) copy of x: engine outputs live in reused buffers, so the copy is what you keep."""
        return x.get() if self.name == "cupy" else self.xp.array(x)

    def sync(self):
        """Wait for queued device work to finish (for timing); nothing to do on the CPU."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def reuse(buffers, name, like, shape, dtype=None):
    """buffers[name] as an array of `shape` (like's array type, like's dtype unless given), allocated once."""
    # One allocation per name, grown to the largest batch asked for; a smaller batch gets its leading
    # rows (still contiguous). Reusing it keeps the training step free of allocations and cache-warm.
    buf, dtype = buffers.get(name), like.dtype if dtype is None else dtype
    if buf is None or len(buf) < shape[0] or buf.shape[1:] != tuple(shape[1:]) or buf.dtype != dtype:
        buf = buffers[name] = xp_of(like).empty_like(like, dtype=dtype, shape=tuple(shape), order="C")
    return buf if len(buf) == shape[0] else buf[:shape[0]]


_modules = {}


def xp_of(x):
    """The array module (numpy or cupy) that array x belongs to; TypeError for anything that is not an array."""
    name = "cupy" if type(x).__module__.startswith("cupy") else "numpy"
    if name not in _modules:
        _modules[name] = __import__(name)
    xp = _modules[name]
    if name == "numpy" and not isinstance(x, (xp.ndarray, xp.generic)):
        raise TypeError(f"expected a numpy or cupy array, got {type(x).__name__}")
    return xp


_current = None


def set_backend(name="numpy", dtype="float32", seed=0):
    """Choose the backend that layers built from now on will use, and return it."""
    global _current
    _current = Backend(name, dtype, seed)
    return _current


def get_backend():
    """The backend chosen by set_backend (numpy, float32, seed 0 if none was chosen)."""
    return _current if _current is not None else set_backend()
