"""Count the array operations of one tinygan step by running it on a counting ndarray subclass.

Counted: ufunc calls (elementwise, in-place, reductions such as .sum/.mean, and matmul/@),
top-level __array_function__ calls (concatenate, where, clip, ...; not the ufuncs they call
inside), backend allocations (randn, rand, randint, zeros) and indexing (__getitem__, which
makes a view: no kernel). On CuPy each ufunc or function call is roughly one kernel launch, so the
count without views is the launch budget; CuPy's Adam runs over whole buffers (whole_buffer_adam).
"""
import collections

import common  # noqa: F401
import numpy as np

COUNTS = collections.Counter()
MATMUL_FLOPS = [0]
_depth = [0]  # >0 while inside a counted call: inner ufuncs of np.mean etc. are not counted twice


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, Counting) else x


class Counting(np.ndarray):
    """An ndarray that records each operation applied to it."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kw):
        if _depth[0] == 0:
            COUNTS[f"ufunc {ufunc.__name__}{'' if method == '__call__' else '.' + method}"] += 1
            if ufunc is np.matmul:
                a, b = inputs[0].shape, inputs[1].shape
                MATMUL_FLOPS[0] += 2 * a[0] * a[1] * b[1]
        _depth[0] += 1
        try:
            args = [_plain(x) for x in inputs]
            if out is not None:
                kw["out"] = tuple(_plain(o) for o in out)
            result = getattr(ufunc, method)(*args, **kw)
        finally:
            _depth[0] -= 1
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result.view(Counting) if isinstance(result, np.ndarray) else result

    def __array_function__(self, func, types, args, kwargs):
        if _depth[0] == 0:
            COUNTS[f"function {func.__name__}"] += 1
        _depth[0] += 1
        try:
            result = super().__array_function__(func, types, args, kwargs)
        finally:
            _depth[0] -= 1
        return _convert(result)  # np.where etc. may hand back a plain ndarray: keep counting downstream

    def __getitem__(self, key):
        if _depth[0] == 0:
            COUNTS["indexing []"] += 1
        return super().__getitem__(key)


def _counting_backend(be):
    """Wrap the backend's allocators so every array they make is Counting (and counted)."""
    for name in ("randn", "rand", "randint", "zeros"):
        plain = getattr(be, name)

        def wrapped(*a, _plain=plain, _name=name, **kw):
            COUNTS[f"backend {_name}"] += 1
            return np.asarray(_plain(*a, **kw)).view(Counting)
        setattr(be, name, wrapped)


def _convert(x):
    """x with every ndarray in it (also inside lists/tuples) viewed as Counting; views share memory."""
    if isinstance(x, np.ndarray) and not isinstance(x, Counting):
        return x.view(Counting)
    if isinstance(x, (list, tuple)):
        return type(x)(_convert(v) for v in x)
    return x


def _counting_objects(*objs):
    """Re-point every array attribute of these objects at a Counting view (whatever the engine keeps)."""
    for obj in objs:
        for name, value in vars(obj).items():
            setattr(obj, name, _convert(value))


def count_step(preset, batch, images, labels, whole_buffer_adam=False):
    """{'step': total, 'sample': total, 'by_op': Counter, 'matmul_flops': n} for one warm step.

    whole_buffer_adam: Adam updates each model in one pass over its flat buffers, as it does on CuPy
    (on the CPU it goes chunk by chunk, 12 ops per chunk).
    """
    import tinygan as tg
    from tinygan.models.gan import GAN, Dataset, make_config
    from tinygan.engine.optim import Adam
    config = make_config(preset, batch_size=batch)
    be = tg.Backend("numpy", "float32", seed=0)
    chunk = Adam.cpu_chunk
    Adam.cpu_chunk = 1 << 40 if whole_buffer_adam else chunk
    try:
        gan = GAN(config, be)
    finally:
        Adam.cpu_chunk = chunk
    data = Dataset(images, labels, be, config["data_range"])
    _counting_objects(gan, data, *(o for o in vars(gan).values() if hasattr(o, "__dict__") and o is not be))
    _counting_objects(*gan.G.layers, *gan.D.layers)
    _counting_backend(be)
    gan.step(data.sample(batch)[0])          # warm: the first step is no different, but be safe
    COUNTS.clear()
    real, _ = data.sample(batch)
    sample_ops = sum(COUNTS.values())
    COUNTS.clear()
    MATMUL_FLOPS[0] = 0
    gan.step(real)
    by_op = collections.Counter(COUNTS)
    return dict(preset=preset, batch=batch, step=sum(by_op.values()), sample=sample_ops,
                views=by_op.get("indexing []", 0), by_op=dict(by_op.most_common()), matmul_flops=MATMUL_FLOPS[0],
                matmuls=by_op.get("ufunc matmul", 0), whole_buffer_adam=whole_buffer_adam)


if __name__ == "__main__":
    import json
    import sys
    im, lb = common.load_train(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps([count_step(p, 64, im, lb, whole) for whole in (False, True) for p in common.PRESETS]))
