"""Check hand-written gradients against central finite differences (use a float64 backend)."""
from .backend import xp_of


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def numerical_grad(f, x, eps=1e-5):
    """Central differences (f(x + eps) - f(x - eps)) / 2 eps of scalar f() for every entry of x."""
    flat = x.reshape(-1)  # a view: x must be contiguous, so editing flat edits x
    grad = xp_of(x).zeros(flat.shape, dtype=x.dtype)
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + eps
        up = float(f())
        flat[i] = old - eps
        down = float(f())
        flat[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad.reshape(x.shape)


def gradcheck(f, tensors, grads, eps=1e-5, tol=1e-6, floor=1e-3):
    """Compare grads[name] with the numerical gradient of f() wrt tensors[name]; return max errors.

    The error of one entry is |analytic - numeric| / max(|analytic|, |numeric|, floor): relative,
    except that gradients below `floor` are compared against floor. Raises GradcheckError naming
    the tensor and index of the worst entry when it exceeds tol.
    """
    errors = {}
    for name, x in tensors.items():
        xp = xp_of(x)
        analytic = grads[name].reshape(x.shape)
        numeric = numerical_grad(f, x, eps)
        err = xp.abs(analytic - numeric) / xp.maximum(xp.maximum(xp.abs(analytic), xp.abs(numeric)), floor)
        worst = int(err.argmax()) if err.size else 0
        errors[name] = float(err.max()) if err.size else 0.0
        if errors[name] > tol:
            idx = unravel(worst, x.shape)
            raise GradcheckError(
                f"gradient mismatch in {name}{list(idx)}: analytic {float(analytic[idx]):.8g}, "
                f"numerical {float(numeric[idx]):.8g}, relative error {errors[name]:.2e} > tol {tol:.0e}")
    return errors


def check_module(module, x, eps=1e-5, tol=1e-6, seed=0):
    """Check a layer's or model's input gradient and every parameter gradient at input x."""
    # Objective L = sum(module(x) * R) for a fixed random R, so dL/dout = R exactly. R ~ N(0, 1 / out.size)
    # keeps L and the gradients at the same scale for any output size: with N(0, 1) entries they grow as
    # sqrt(out.size), and the finite differences' rounding error with them, against a fixed floor and tol.
    xp = xp_of(x)
    out = module.forward(x)
    R = xp.random.RandomState(seed).standard_normal(out.shape).astype(x.dtype) / out.size ** 0.5
    module.zero_grad()
    dx = module.backward(R)
    grads = {"x": dx.copy(), **{n: g.copy() for n, _, g in module.named_parameters()}}
    tensors = {"x": x, **{n: p for n, p, _ in module.named_parameters()}}
    return gradcheck(lambda: (module.forward(x) * R).sum(), tensors, grads, eps, tol)


def check_loss(loss_fn, x, *args, eps=1e-5, tol=1e-6):
    """Check the gradient that loss_fn(x, *args) returns against finite differences in x."""
    _, grad = loss_fn(x, *args)
    return gradcheck(lambda: loss_fn(x, *args)[0], {"x": x}, {"x": grad.copy()}, eps, tol)


def unravel(flat, shape):
    """The index tuple of flat position `flat` in a C-ordered array of `shape`, in plain Python ints."""
    # Not xp.unravel_index: CuPy's asks numpy.can_cast about a Python int, which NumPy 2 refuses.
    idx = []
    for n in reversed(shape):
        flat, i = divmod(flat, n)
        idx.append(i)
    return tuple(reversed(idx))
