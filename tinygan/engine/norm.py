"""Normalised layers: a weight-normalised Dense with data-dependent initialisation, and batch normalisation."""
from .backend import get_backend, xp_of
from .layers import Layer


class WeightNormDense(Layer):
    """y = x @ W + b with W = g * V / ||V||: each output unit's weight vector has length g (Salimans & Kingma 2016)."""
    skips_input_grad = True

    def __init__(self, n_in, n_out, be=None, train_scale=True, v_std=0.1):
        be = be or get_backend()
        self.be, self.n_in, self.n_out = be, n_in, n_out
        self.V = be.randn(n_in, n_out) * v_std          # (in, out): only its direction matters
        self.g, self.b = be.zeros(n_out) + 1, be.zeros(n_out)  # (out,): length and bias of each unit
        self.dV, self.dg, self.db = be.zeros(n_in, n_out), be.zeros(n_out), be.zeros(n_out)
        # A fixed scale is still set by init_from_data and saved with the model, but not trained.
        self.params, self.state = (("V", "g", "b"), ()) if train_scale else (("V", "b"), ("g",))

    def __repr__(self):
        return f"WeightNormDense({self.n_in}, {self.n_out}{'' if 'g' in self.params else ', train_scale=False'})"

    def weight(self, like):
        """W = V * (g / ||V||) into a reused (in, out) buffer; keeps the column norms for backward."""
        xp = xp_of(like)
        W = self.buffer("W", self.V, self.V.shape)
        self.norm = xp.sqrt(xp.multiply(self.V, self.V, out=W).sum(axis=0, out=self.buffer("norm", self.g, self.g.shape)))
        return xp.multiply(self.V, self.g / self.norm, out=W)

    def forward(self, x):
        self.x = x                                            # x: (B, in); kept for dV
        self.W = self.weight(x)                               # (in, out), the effective weights
        y = self.be.matmul(x, self.W, out=self.buffer("y", x, (len(x), self.n_out)))
        y += self.b
        return y

    def backward(self, dout, param_grads=True, input_grad=True):
        # dout: (B, out). With W = g V / n (n = ||V|| per column), y = x W + b:
        #   dW = x^T dout, db = sum_B dout, dx = dout W^T,
        #   dg_j = sum_i dW_ij V_ij / n_j, dV = (g / n) (dW - V dg / n)
        xp = xp_of(dout)
        if param_grads:
            dW = self.be.matmul(self.x.T, dout, out=self.buffer("dW", self.V, self.V.shape))
            t = xp.multiply(dW, self.V, out=self.buffer("t", self.V, self.V.shape))
            c = t.sum(axis=0, out=self.buffer("c", self.g, self.g.shape))
            c /= self.norm                                    # dL/dg, (out,)
            dW -= xp.multiply(self.V, c / self.norm, out=t)
            dW *= self.g / self.norm
            self.dV += dW
            if "g" in self.params:
                self.dg += c
            self.db += dout.sum(axis=0, out=self.buffer("db_new", self.b, self.b.shape))
        if not input_grad:
            return None
        return self.be.matmul(dout, self.W.T, out=self.buffer("dx", dout, (len(dout), self.n_in)))

    def init_from(self, x):
        """Data-dependent init: choose g and b so that this layer's outputs on x have mean 0 and std 1 per unit."""
        xp = xp_of(x)
        t = x @ (self.V / xp.sqrt((self.V * self.V).sum(axis=0)))  # (B, out): outputs with g = 1, b = 0
        mean, std = t.mean(axis=0), t.std(axis=0)
        self.g[...] = 1 / std
        self.b[...] = -mean / std


def init_from_data(model, x):
    """Run x through a Sequential, initialising each WeightNormDense from the batch that reaches it."""
    for layer in model.layers:
        if isinstance(layer, WeightNormDense):
            layer.init_from(x)
        x = layer.forward(x)
    return x


class BatchNorm(Layer):
    """Normalise each unit over the batch (training) or by running statistics (evaluation), then scale and shift."""

    def __init__(self, n, be=None, scale=True, momentum=0.1, eps=1e-6):
        be = be or get_backend()
        self.be, self.n, self.momentum, self.eps = be, n, momentum, eps
        self.beta, self.dbeta = be.zeros(n), be.zeros(n)  # (n,): shift
        self.params = ("gamma", "beta") if scale else ("beta",)
        if scale:
            self.gamma, self.dgamma = be.zeros(n) + 1, be.zeros(n)
        self.running_mean, self.running_var = be.zeros(n), be.zeros(n) + 1
        self.state = ("running_mean", "running_var")

    def __repr__(self):
        return f"BatchNorm({self.n}{'' if 'gamma' in self.params else ', scale=False'})"

    def forward(self, x):
        xp = xp_of(x)                                          # x: (B, n)
        xhat = self.buffer("xhat", x, x.shape)
        if self.training:
            mean = x.mean(axis=0)                              # (n,)
            xp.subtract(x, mean, out=xhat)
            var = (xhat * xhat).mean(axis=0)                   # (n,), biased: what normalises this batch
            m, B = self.momentum, len(x)                       # running statistics: unbiased variance
            self.running_mean += m * (mean - self.running_mean)
            self.running_var += m * (var * (B / max(B - 1, 1)) - self.running_var)
        else:
            xp.subtract(x, self.running_mean, out=xhat)
            var = self.running_var
        self.inv = 1 / xp.sqrt(var + self.eps)                 # (n,)
        xhat *= self.inv
        self.xhat = xhat
        y = self.buffer("y", x, x.shape)
        if "gamma" in self.params:
            xp.multiply(xhat, self.gamma, out=y)
        else:
            y[...] = xhat
        y += self.beta
        return y

    def backward(self, dout, param_grads=True):
        # y = gamma xhat + beta, xhat = (x - mean) inv, inv = 1 / sqrt(var + eps), mean and var over the batch:
        #   dgamma = sum_B dout xhat, dbeta = sum_B dout,
        #   dx = inv (dxhat - mean_B dxhat - xhat mean_B(dxhat xhat)), dxhat = gamma dout
        # (evaluation uses fixed statistics, so there dx = inv dxhat)
        xp = xp_of(dout)
        if param_grads:
            self.dbeta += dout.sum(axis=0)
            if "gamma" in self.params:
                self.dgamma += (dout * self.xhat).sum(axis=0)
        dx = self.buffer("dx", dout, dout.shape)
        if "gamma" in self.params:
            xp.multiply(dout, self.gamma, out=dx)
        else:
            dx[...] = dout
        if self.training:
            dx -= dx.mean(axis=0)
            dx -= self.xhat * (dx * self.xhat).mean(axis=0)  # mean_B(dxhat xhat) = mean_B((dxhat - mean) xhat)
        dx *= self.inv
        return dx
