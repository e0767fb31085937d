"""Optimizers over (param, grad) pairs, updating parameters in place."""
import math

from .backend import xp_of


class SGD:
    """p -= lr * (momentum buffer, or the plain gradient)."""

    def __init__(self, params, lr=0.01, momentum=0.0):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.velocity = [xp_of(p).zeros_like(p) for p, _ in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        for (p, g), vel in zip(self.params, self.velocity):
            vel *= self.momentum
            vel += g
            p -= self.lr * vel

    def state_dict(self):
        return {"t": self.t, "lr": self.lr, "momentum": self.momentum,
                **{f"velocity.{i}": _host(v) for i, v in enumerate(self.velocity)}}

    def load_state_dict(self, state):
        self.t, self.lr, self.momentum = int(state["t"]), float(state["lr"]), float(state["momentum"])
        for i, v in enumerate(self.velocity):
            v[...] = xp_of(v).asarray(state[f"velocity.{i}"])


class Adam:
    """Adam with bias correction, in the form torch.optim.Adam uses; eps_inside: m / sqrt(v_hat + eps) instead."""
    cpu_chunk = 65536  # entries updated together on the CPU: their p, g, m, v stay in cache for all 12 ops

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, eps_inside=False):
        self.params = list(params)  # [(param, grad)]: a Sequential's flat buffers make this one pair
        self.lr, self.betas, self.eps, self.eps_inside = lr, tuple(betas), eps, eps_inside
        self.m = [xp_of(p).zeros_like(p) for p, _ in self.params]
        self.v = [xp_of(p).zeros_like(p) for p, _ in self.params]
        first = self.params[0][0]
        # A GPU runs each op over a whole buffer at once; a CPU does better chunk by chunk.
        largest = max(p.size for p, _ in self.params)
        chunk = min(self.cpu_chunk, largest) if xp_of(first).__name__ == "numpy" else largest
        self.scratch = xp_of(first).empty_like(first, shape=(chunk,))
        self.chunks = []  # (p, g, m, v, scratch) views of each chunk, made once: a step does only arithmetic
        for (param, grad), m, v in zip(self.params, self.m, self.v):
            P, G, M, V = param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
            for a in range(0, P.size, chunk):
                n = min(chunk, P.size - a)
                self.chunks.append((P[a:a + n], G[a:a + n], M[a:a + n], V[a:a + n], self.scratch[:n]))
        self.t = 0
        self.counter = None  # the step count as a device array, once use_device_counter() is called

    def use_device_counter(self):
        """Derive each step's scalars from a step count kept on the device (a replayed CUDA graph needs this)."""
        xp = xp_of(self.scratch)
        self.counter = xp.full((3,), self.t, dtype=xp.float64)  # t, then two scratch slots; float64 counts exactly
        self.scalars = xp.empty((2,), dtype=self.scratch.dtype)  # this step's (step size, eps)

    def device_scalars(self):
        """Advance the device counter; (step size, eps) as 1-element device arrays, the same numbers step() uses."""
        xp, (b1, b2) = xp_of(self.counter), self.betas
        t, w = self.counter[:1], self.counter[1:]
        t += 1
        xp.power(b2, t, out=w[:1])      # c2_sqrt = sqrt(1 - b2^t)
        xp.subtract(1, w[:1], out=w[:1])
        if self.eps_inside:
            xp.multiply(w[:1], self.eps, out=self.scalars[1:])  # eps * (1 - b2^t), added under the root
        xp.sqrt(w[:1], out=w[:1])
        if not self.eps_inside:
            xp.multiply(w[:1], self.eps, out=self.scalars[1:])  # eps * c2_sqrt
        xp.power(b1, t, out=w[1:])      # lr / (1 - b1^t) * c2_sqrt
        xp.subtract(1, w[1:], out=w[1:])
        xp.divide(self.lr, w[1:], out=w[1:])
        xp.multiply(w[1:], w[:1], out=self.scalars[:1])
        return self.scalars[:1], self.scalars[1:]

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c2_sqrt = math.sqrt(1 - b2 ** self.t)
        # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with sqrt(1 - b2^t) moved to the top
        step_size, eps = self.lr / (1 - b1 ** self.t) * c2_sqrt, self.eps * c2_sqrt
        if self.eps_inside:  # the reference code's m / sqrt(v_hat + eps) = c2_sqrt m / sqrt(v + eps (1 - b2^t))
            eps = self.eps * (1 - b2 ** self.t)
        if self.counter is not None:  # the same two numbers, computed on the device from its counter
            step_size, eps = self.device_scalars()
        xp = xp_of(self.scratch)
        for p, g, m, v, s in self.chunks:
            m *= b1                   # m = b1 m + (1 - b1) g
            xp.multiply(g, 1 - b1, out=s)
            m += s
            v *= b2                   # v = b2 v + (1 - b2) g^2
            xp.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            if self.eps_inside:       # p -= step_size * m / sqrt(v + eps)
                xp.add(v, eps, out=s)
                xp.sqrt(s, out=s)
            else:                     # p -= step_size * m / (sqrt(v) + eps)
                xp.sqrt(v, out=s)
                s += eps
            xp.divide(m, s, out=s)
            s *= step_size
            p -= s

    def state_dict(self):
        """Step count, hyperparameters and moments as plain values and host arrays."""
        state = {"t": self.t, "lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m.{i}"], state[f"v.{i}"] = _host(m), _host(v)
        return state

    def load_state_dict(self, state):
        """Restore what state_dict() returned; moment shapes must match the parameters."""
        self.t = int(state["t"])
        if self.counter is not None:
            self.counter[:1] = self.t
        self.lr, self.betas, self.eps = float(state["lr"]), (float(state["beta1"]), float(state["beta2"])), float(state["eps"])
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            for name, dst in ((f"m.{i}", m), (f"v.{i}", v)):
                if name not in state or tuple(state[name].shape) != dst.shape:
                    raise ValueError(f"optimizer state {name!r} is missing or has the wrong shape "
                                     f"(expected {dst.shape}); was it saved from the same model?")
                dst[...] = xp_of(dst).asarray(state[name])


def linear_decay(step, total, fraction):
    """The learning-rate factor at `step` of `total`: 1, then falling linearly to 0 over the last `fraction`."""
    # fraction 0: always 1. Step s of the last fraction * total steps gets (total - s) / (fraction * total),
    # so the first decayed step is just below 1 and the last one (s = total - 1) is 1 / (fraction * total).
    span = fraction * total
    if span <= 0 or step < total - span:
        return 1.0
    return max(0.0, (total - step) / span)


def _host(x):
    """A host copy of x (numpy or cupy)."""
    return x.get() if hasattr(x, "get") else x.copy()
