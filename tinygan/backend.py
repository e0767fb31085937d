"""The array backend: numpy (CPU) or cupy (GPU), chosen by one string."""
import json


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

    def __init__(self, name="numpy", dtype="float32", seed=0):
        if name == "numpy":
            import numpy as xp
            self.rng = xp.random.default_rng(seed)
        elif name == "cupy":
            xp = _import_cupy()
            self.rng = xp.random.RandomState(seed)  # device-side generator: no host round trip
        else:
            raise BackendError(f"unknown backend {name!r}: choose 'numpy' or 'cupy'")
        if dtype not in ("float32", "float64"):
            raise BackendError(f"unknown dtype {dtype!r}: choose 'float32' or 'float64'")
        self.name, self.xp, self.dtype, self.seed = name, xp, xp.dtype(dtype), seed

    def __repr__(self):
        return f"Backend({self.name!r}, dtype={self.dtype.name!r}, seed={self.seed})"

    # --- random numbers, drawn on the device in the backend's dtype ---
    def randn(self, *shape):
        """Standard normal samples of the given shape."""
        return self.rng.standard_normal(shape, dtype=self.dtype)

    def rand(self, *shape):
        """Uniform samples in [0, 1) of the given shape."""
        if self.name == "numpy":
            return self.rng.random(shape, dtype=self.dtype)
        return self.rng.random_sample(shape, dtype=self.dtype)

    def randint(self, high, size):
        """Integers in [0, high) as a 1-D index array."""
        if self.name == "numpy":
            return self.rng.integers(0, high, size)
        return self.rng.randint(0, high, size)

    def rng_state(self):
        """The generator state as a JSON string (exact on numpy; seed-only on cupy)."""
        if self.name == "numpy":
            return json.dumps(self.rng.bit_generator.state)
        return json.dumps({"cupy_seed": self.seed})

    def set_rng_state(self, state, reseed=None):
        """Restore a state from rng_state(); cupy re-seeds from `reseed` (e.g. seed and iteration)."""
        state = json.loads(state)
        if self.name == "numpy" and "bit_generator" in state:
            self.rng.bit_generator.state = state
        else:
            self.rng = self.xp.random.RandomState(reseed if reseed is not None else self.seed)

    # --- arrays ---
    def asarray(self, x, dtype=None):
        """Put x on the device, as the backend's float dtype unless told otherwise."""
        return self.xp.asarray(x, dtype=dtype or self.dtype)

    def zeros(self, *shape):
        return self.xp.zeros(shape, dtype=self.dtype)

    def to_host(self, x):
        """A host (numpy) copy of x; a no-op view on the numpy backend."""
        return x.get() if self.name == "cupy" else x

    def sync(self):
        """Wait for queued device work to finish (for timing); nothing to do on the CPU."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


_modules = {}


def xp_of(x):
    """The array module (numpy or cupy) that array x belongs to."""
    name = "cupy" if type(x).__module__.startswith("cupy") else "numpy"
    if name not in _modules:
        _modules[name] = __import__(name)
    return _modules[name]


_current = None


def set_backend(name="numpy", dtype="float32", seed=0):
    """Choose the backend that layers built from now on will use, and return it."""
    global _current
    _current = Backend(name, dtype, seed)
    return _current


def get_backend():
    """The backend chosen by set_backend (numpy, float32, seed 0 if none was chosen)."""
    return _current if _current is not None else set_backend()
