"""Layers as forward/backward pairs, and a Sequential container over one flat parameter buffer."""
# Forward and backward write into arrays each layer keeps and reuses (see backend.reuse), so a training
# step allocates nothing. What forward or backward returns stays valid until that layer's next call:
# copy it (or be.to_host it) to keep it.
from .backend import get_backend, reuse, xp_of


class Layer:
    """Base layer: forward caches what backward needs; backward returns the input gradient."""
    params = ()  # names of parameter arrays; the gradient of `W` lives in `dW`
    state = ()   # names of arrays saved with the model but not trained (e.g. running statistics)
    training = True
    skips_input_grad = False  # True if backward takes input_grad=False (no dx computed)

    def __call__(self, x):
        return self.forward(x)

    def buffer(self, name, like, shape):
        """This layer's reusable array `name` of the given shape, with like's array type and dtype."""
        return reuse(self.__dict__.setdefault("buffers", {}), name, like, shape)

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
    skips_input_grad = True

    def __init__(self, n_in, n_out, be=None, bias=True):
        be = be or get_backend()
        self.be, self.n_in, self.n_out = be, n_in, n_out
        limit = (6.0 / (n_in + n_out)) ** 0.5
        self.W = (be.rand(n_in, n_out) * 2 - 1) * limit  # (in, out)
        self.dW = be.zeros(n_in, n_out)
        if bias:
            self.b, self.db = be.zeros(n_out), be.zeros(n_out)  # (out,)
        else:  # a batch norm that follows would cancel the bias: y = x @ W
            self.params = ("W",)

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out}{'' if 'b' in self.params else ', bias=False'})"

    def forward(self, x):
        self.x = x  # x: (B, in); kept for dW
        y = self.buffer("y", x, (len(x), self.n_out))  # (B, out)
        self.be.matmul(x, self.W, out=y)
        if "b" in self.params:
            y += self.b
        return y

    def backward(self, dout, param_grads=True, input_grad=True):
        # dout: (B, out). y = xW + b  =>  dW = x^T dout, db = sum_B dout, dx = dout W^T
        xp = xp_of(dout)
        if param_grads:  # computed into scratch, then added: gradients of several backward calls add up
            self.dW += self.be.matmul(self.x.T, dout, out=self.buffer("dW_new", self.W, self.W.shape))
            if "b" in self.params:
                self.db += dout.sum(axis=0, out=self.buffer("db_new", self.b, self.b.shape))
        if not input_grad:
            return None
        dx = self.buffer("dx", dout, (len(dout), self.n_in))
        if self.n_out == 1:  # an outer product: numpy's matmul has no fast path for one inner dimension
            return xp.multiply(dout, self.W.T, out=dx)
        return self.be.matmul(dout, self.W.T, out=dx)


class ReLU(Layer):
    """max(x, 0)."""

    def __repr__(self):
        return "ReLU()"

    def forward(self, x):
        xp = xp_of(x)
        self.dydx = xp.greater(x, 0, out=self.buffer("dydx", x, x.shape))  # 1 where x > 0, else 0
        return xp.multiply(x, self.dydx, out=self.buffer("y", x, x.shape))

    def backward(self, dout, param_grads=True):
        return xp_of(dout).multiply(dout, self.dydx, out=self.buffer("dx", dout, dout.shape))


class LeakyReLU(Layer):
    """x for x > 0, slope * x otherwise."""

    def __init__(self, slope=0.2):
        if not 0 <= slope <= 1:
            raise ValueError(f"LeakyReLU slope {slope} must be in [0, 1]")
        self.slope = slope

    def __repr__(self):
        return f"LeakyReLU({self.slope})"

    def forward(self, x):
        xp = xp_of(x)
        # dy/dx is 1 where x > 0, else slope: (x > 0) (1 - slope) + slope, exactly 1 or slope in floats.
        # Multiplying by a cached factor is several times faster than where() with a random mask.
        d = self.dydx = xp.greater(x, 0, out=self.buffer("dydx", x, x.shape))
        d *= 1 - self.slope
        d += self.slope
        return xp.multiply(x, d, out=self.buffer("y", x, x.shape))  # piecewise linear: y = x dy/dx

    def backward(self, dout, param_grads=True):
        return xp_of(dout).multiply(dout, self.dydx, out=self.buffer("dx", dout, dout.shape))


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), accurate in both tails: it never overflows and tiny outputs keep their digits."""

    def __repr__(self):
        return "Sigmoid()"

    def forward(self, x):
        # With e = exp(-|x|) in (0, 1]: sigmoid(x) = 1 / (1 + e) where x >= 0 and e / (1 + e) where x < 0,
        # so nothing overflows and no tail is computed as a difference of nearly equal numbers.
        xp = xp_of(x)
        e = self.buffer("e", x, x.shape)
        xp.abs(x, out=e)
        xp.negative(e, out=e)
        xp.exp(e, out=e)
        den = xp.add(e, 1, out=self.buffer("den", x, x.shape))         # 1 + e, in (1, 2]
        out = xp.greater_equal(x, 0, out=self.buffer("out", x, x.shape))  # 1 where x >= 0, else 0
        xp.maximum(out, e, out=out)                                     # the numerator: 1, or e where x < 0
        out /= den
        # dy/dx = s (1 - s) = e / (1 + e)^2: exact in both tails, so it stays above zero where s rounds to 1
        den *= den
        self.dydx = xp.divide(e, den, out=e)
        return out

    def backward(self, dout, param_grads=True):
        return xp_of(dout).multiply(dout, self.dydx, out=self.buffer("dx", dout, dout.shape))


class Tanh(Layer):
    """tanh(x)."""

    def __repr__(self):
        return "Tanh()"

    def forward(self, x):
        self.out = xp_of(x).tanh(x, out=self.buffer("out", x, x.shape))  # backward needs only the output
        return self.out

    def backward(self, dout, param_grads=True):
        # d tanh / dx = 1 - tanh^2
        xp = xp_of(dout)
        dx = xp.multiply(self.out, self.out, out=self.buffer("dx", dout, dout.shape))
        xp.subtract(1, dx, out=dx)
        dx *= dout
        return dx


class Dropout(Layer):
    """Zero each unit with probability p while training, scaling the rest by 1/(1-p)."""

    def __init__(self, p=0.3, be=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout probability {p} must be in [0, 1): at 1 every unit would be dropped")
        self.p, self.be = p, be or get_backend()

    def __repr__(self):
        return f"Dropout({self.p})"

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        xp, mask = xp_of(x), self.be.rand(out=self.buffer("mask", x, x.shape))  # (B, n) uniform in [0, 1)
        xp.greater_equal(mask, self.p, out=mask)  # keep with probability 1 - p
        mask *= 1 / (1 - self.p)                  # scaled so the expected output equals x
        self.mask = mask
        return xp.multiply(x, mask, out=self.buffer("y", x, x.shape))

    def backward(self, dout, param_grads=True):
        if self.mask is None:
            return dout
        return xp_of(dout).multiply(dout, self.mask, out=self.buffer("dx", dout, dout.shape))


class Softplus(Layer):
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so it never overflows."""

    def __repr__(self):
        return "Softplus()"

    def forward(self, x):
        xp = xp_of(x)
        y, d = self.buffer("y", x, x.shape), self.buffer("dydx", x, x.shape)
        xp.abs(x, out=y)
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        xp.log1p(y, out=y)                 # log1p(exp(-|x|))
        y += xp.maximum(x, 0, out=d)
        # dy/dx = sigmoid(x) = exp(x - softplus(x)): exact in both tails, unlike 1 - sigmoid(-x)
        self.dydx = xp.exp(xp.subtract(x, y, out=d), out=d)
        return y

    def backward(self, dout, param_grads=True):
        return xp_of(dout).multiply(dout, self.dydx, out=self.buffer("dx", dout, dout.shape))


class GaussianNoise(Layer):
    """x + std * N(0, 1) noise while training; x unchanged in evaluation."""

    def __init__(self, std=0.3, be=None):
        if not std >= 0:
            raise ValueError(f"GaussianNoise std {std} must be >= 0")
        self.std, self.be = std, be or get_backend()

    def __repr__(self):
        return f"GaussianNoise({self.std})"

    def forward(self, x):
        if not self.training or self.std == 0:
            return x
        y = self.be.randn(out=self.buffer("y", x, x.shape))  # (B, n) standard normal
        y *= self.std
        y += x
        return y

    def backward(self, dout, param_grads=True):
        return dout  # the noise is added, not multiplied: dy/dx = 1


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

    def forward(self, x, upto=None):
        """Apply the layers in order; upto=k stops after the first k (an intermediate feature)."""
        for layer in self.layers[:upto]:
            x = layer.forward(x)
        return x

    def backward(self, dout, param_grads=True, input_grad=True, upto=None):
        """Backpropagate dout; param_grads=False leaves parameter gradients alone (a frozen model),
        input_grad=False skips the first layer's input gradient (no one needs dL/dz or dL/dimage),
        upto=k starts at the output of layer k - 1, as after forward(x, upto=k)."""
        layers, first = self.layers[:upto], 0
        if not input_grad:  # layers below the first one with parameters then need no gradient at all
            first = next((i for i, layer in enumerate(layers) if layer.params), 0)
        for layer in reversed(layers[first + 1:]):
            dout = layer.backward(dout, param_grads)
        if not input_grad and layers[first].skips_input_grad:
            return layers[first].backward(dout, param_grads, input_grad=False)  # saves a (B, out) x (out, in) matmul
        return layers[first].backward(dout, param_grads)

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

    def named_arrays(self):
        """[(name, array)] of every parameter and every saved non-trained array (e.g. running statistics)."""
        return [(n, p) for n, p, _ in self.named_parameters()] + [
            (f"{i}.{n}", getattr(l, n)) for i, l in enumerate(self.layers) for n in l.state]

    def state_dict(self):
        """{name: host array} for every parameter and saved array: plain arrays, savable without pickle."""
        return {n: self.be.to_host(p).copy() for n, p in self.named_arrays()}

    def load_state_dict(self, state):
        """Copy arrays from state_dict() into the parameters, checking names and shapes."""
        for n, p in self.named_arrays():
            if n not in state:
                raise ValueError(f"state dict has no entry {n!r} (it has {sorted(state)}); "
                                 "was it saved from a model of this architecture?")
            if tuple(state[n].shape) != p.shape:
                raise ValueError(f"state dict entry {n!r} has shape {tuple(state[n].shape)}, "
                                 f"the model expects {p.shape}; check the preset and layer sizes")
            p[...] = self.be.asarray(state[n])
