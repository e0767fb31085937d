"""Losses. Each returns (mean loss, gradient with respect to its first argument).

The loss stays a 0-d device array (float() it to read it) so a step needs no host transfer.
"""
from .backend import xp_of


def bce(p, t, eps=1e-7):
    """Binary cross-entropy on probabilities p, clipped to [eps, 1 - eps] as Keras does."""
    # p, t: same shape; the mean runs over every element (N of them)
    xp = xp_of(p)
    pc = xp.clip(p, eps, 1 - eps)
    loss = -xp.mean(t * xp.log(pc) + (1 - t) * xp.log(1 - pc))
    # dL/dpc = (pc - t) / (pc (1 - pc)) / N; the clip passes no gradient where it is active
    inside = (p > eps) & (p < 1 - eps)
    grad = (pc - t) / (pc * (1 - pc)) * inside / p.size
    return loss, grad


def bce_with_logits(z, t):
    """Binary cross-entropy on logits z, stable for any z: max(z,0) - z t + log1p(exp(-|z|))."""
    xp = xp_of(z)
    loss = xp.mean(xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z))))
    # dL/dz = (sigmoid(z) - t) / N
    grad = (0.5 + 0.5 * xp.tanh(0.5 * z) - t) / z.size
    return loss, grad


def softmax_cross_entropy(z, labels):
    """Cross-entropy of softmax(z) against integer class labels."""
    # z: (B, C) logits; labels: (B,) ints in [0, C)
    xp = xp_of(z)
    rows = xp.arange(z.shape[0])
    shifted = z - z.max(axis=1, keepdims=True)  # the shift cancels in softmax and avoids overflow
    grad = xp.exp(shifted)                      # (B, C), softmax(z) once divided by its row sums
    sums = grad.sum(axis=1, keepdims=True)      # (B, 1)
    loss = xp.mean(xp.log(sums[:, 0]) - shifted[rows, labels])
    # dL/dz = (softmax(z) - onehot(labels)) / B
    grad /= sums
    grad[rows, labels] -= 1
    grad /= z.shape[0]
    return loss, grad
