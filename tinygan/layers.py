"""Layers as forward/backward pairs, and a Sequential container over one flat parameter buffer."""
from .backend import get_backend, xp_of


class Layer:
    """Base layer: forward caches what backward needs; backward returns the input gradient."""
    params = ()  # names of parameter arrays; the gradient of `W` lives in `dW`
    training = True

    def __call__(self, x):
        return self.forward(x)

    def named_parameters(self):
        """[(name, param, grad)] for every parameter array of this layer."""
        return [(n, getattr(self, n), getattr(self, "d" + n)) for n in self.params]

    def parameters(self):
        """[(param, grad)] pairs, what an optimizer updates."""
        return [(p, g) for _, p, g in self.named_parameters()]

    def zero_grad(self):
        for _, _, g in self.named_parameters():
            g[...] = 0


class Dense(Layer):
    """y = x @ W + b. W starts Glorot-uniform in ±sqrt(6 / (n_in + n_out)) and b at zero, as in Keras."""
    params = ("W", "b")

    def __init__(self, n_in, n_out, be=None):
        be = be or get_backend()
        self.be, self.n_in, self.n_out = be, n_in, n_out
        limit = (6.0 / (n_in + n_out)) ** 0.5
        self.W = (be.rand(n_in, n_out) * 2 - 1) * limit  # (in, out)
        self.b = be.zeros(n_out)                          # (out,)
        self.dW, self.db = be.zeros(n_in, n_out), be.zeros(n_out)

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out})"

    def forward(self, x):
        self.x = x  # x: (B, in); kept for dW
        y = x @ self.W  # (B, out)
        y += self.b     # in place: no second (B, out) array
        return y

    def backward(self, dout, param_grads=True, input_grad=True):
        # dout: (B, out). y = xW + b  =>  dW = x^T dout, db = sum_B dout, dx = dout W^T
        if param_grads:
            self.dW += self.x.T @ dout
            self.db += dout.sum(axis=0)
        return dout @ self.W.T if input_grad else None


class ReLU(Layer):
    """max(x, 0)."""

    def __repr__(self):
        return "ReLU()"

    def forward(self, x):
        self.mask = x > 0  # where the unit passes gradient
        return x * self.mask

    def backward(self, dout, param_grads=True):
        return dout * self.mask


class LeakyReLU(Layer):
    """x for x > 0, slope * x otherwise."""

    def __init__(self, slope=0.2):
        if not 0 <= slope <= 1:
            raise ValueError(f"LeakyReLU slope {slope} must be in [0, 1]")
        self.slope = slope

    def __repr__(self):
        return f"LeakyReLU({self.slope})"

    def forward(self, x):
        self.mask = x > 0
        return xp_of(x).maximum(x, self.slope * x)  # = where(mask, x, slope x) for 0 <= slope <= 1

    def backward(self, dout, param_grads=True):
        return xp_of(dout).where(self.mask, dout, self.slope * dout)


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 so it never overflows."""

    def __repr__(self):
        return "Sigmoid()"

    def forward(self, x):
        out = xp_of(x).tanh(0.5 * x)
        out *= 0.5
        out += 0.5
        self.out = out  # backward needs only the output
        return out

    def backward(self, dout, param_grads=True):
        # d sigmoid / dx = s (1 - s)
        return dout * self.out * (1 - self.out)


class Tanh(Layer):
    """tanh(x)."""

    def __repr__(self):
        return "Tanh()"

    def forward(self, x):
        self.out = xp_of(x).tanh(x)
        return self.out

    def backward(self, dout, param_grads=True):
        # d tanh / dx = 1 - tanh^2
        return dout * (1 - self.out * self.out)


class Dropout(Layer):
    """Zero each unit with probability p while training, scaling the rest by 1/(1-p)."""

    def __init__(self, p=0.3, be=None):
        self.p, self.be = p, be or get_backend()

    def __repr__(self):
        return f"Dropout({self.p})"

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        self.mask = (self.be.rand(*x.shape) >= self.p) / (1 - self.p)  # (B, n), scaled keep mask
        return x * self.mask

    def backward(self, dout, param_grads=True):
        return dout if self.mask is None else dout * self.mask


class Sequential(Layer):
    """Layers applied in order. All parameters (and gradients) are views into one flat buffer."""

    def __init__(self, *layers, be=None):
        self.layers = list(layers)
        self.be = be or next((l.be for l in self.layers if l.params), None) or get_backend()
        # One contiguous buffer for parameters and one for gradients: zero_grad and the
        # optimizer then touch each model with a single array operation.
        named = self.named_parameters()
        total = sum(p.size for _, p, _ in named)
        self.flat_params, self.flat_grads = self.be.zeros(total), self.be.zeros(total)
        offset = 0
        for layer in self.layers:
            for n in layer.params:
                p = getattr(layer, n)
                view = self.flat_params[offset:offset + p.size].reshape(p.shape)
                view[...] = p
                setattr(layer, n, view)
                setattr(layer, "d" + n, self.flat_grads[offset:offset + p.size].reshape(p.shape))
                offset += p.size

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout, param_grads=True, input_grad=True):
        """Backpropagate dout; param_grads=False leaves parameter gradients alone (a frozen model),
        input_grad=False skips the first layer's input gradient (no one needs dL/dz or dL/dimage)."""
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout, param_grads)
        first = self.layers[0]
        if not input_grad and isinstance(first, Dense):
            return first.backward(dout, param_grads, input_grad=False)  # saves a (B, out) x (out, in) matmul
        return first.backward(dout, param_grads)

    def named_parameters(self):
        return [(f"{i}.{n}", p, g) for i, l in enumerate(self.layers) for n, p, g in l.named_parameters()]

    def zero_grad(self):
        self.flat_grads[...] = 0

    def train(self, mode=True):
        """Switch dropout on (training) or off (evaluation)."""
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        """{name: host array} for every parameter: plain arrays, savable without pickle."""
        return {n: self.be.to_host(p).copy() for n, p, _ in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays from state_dict() into the parameters, checking names and shapes."""
        for n, p, _ in self.named_parameters():
            if n not in state:
                raise ValueError(f"state dict has no entry {n!r} (it has {sorted(state)}); "
                                 "was it saved from a model of this architecture?")
            if tuple(state[n].shape) != p.shape:
                raise ValueError(f"state dict entry {n!r} has shape {tuple(state[n].shape)}, "
                                 f"the model expects {p.shape}; check the preset and layer sizes")
            p[...] = self.be.asarray(state[n])
