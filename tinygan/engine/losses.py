"""Losses. Each returns (mean loss, gradient with respect to its first argument).

The loss stays a 0-d device array (float() it to read it) so a step needs no host transfer. Pass out= to
have the gradient written into an array you keep (as the training step does), instead of a new one.
"""
from .backend import xp_of


def sigmoid(z):
    """1 / (1 + exp(-z)) as a new array, accurate in both tails (the same maths as the Sigmoid layer)."""
    xp = xp_of(z)
    e = xp.exp(-xp.abs(z))  # in (0, 1]: 1 / (1 + e) for z >= 0, e / (1 + e) for z < 0
    return xp.maximum(z >= 0, e) / (1 + e)


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


def bce_with_logits(z, t, out=None):
    """Binary cross-entropy of sigmoid(z) against t, from the logits z: exact for any z, no clip needed."""
    # -t log s - (1 - t) log(1 - s) with s = sigmoid(z) equals max(z, 0) - z t + log1p(exp(-|z|))
    xp = xp_of(z)
    e = xp.exp(-xp.abs(z))
    loss = xp.mean(xp.maximum(z, 0) - z * t + xp.log1p(e))
    # dL/dz = (sigmoid(z) - t) / N, with sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0
    grad = xp.divide(xp.maximum(z >= 0, e), 1 + e, out=out)
    grad -= t
    grad /= z.size
    return loss, grad


def softmax_cross_entropy(z, labels, out=None):
    """Cross-entropy of softmax(z) against integer class labels."""
    # z: (B, C) logits; labels: (B,) ints in [0, C)
    xp = xp_of(z)
    rows = xp.arange(z.shape[0])
    grad = xp.subtract(z, z.max(axis=1, keepdims=True), out=out)  # the shift cancels in softmax, avoids overflow
    picked = grad[rows, labels]                 # (B,) the shifted logit of each true class
    xp.exp(grad, out=grad)                      # (B, C), softmax(z) once divided by its row sums
    sums = grad.sum(axis=1, keepdims=True)      # (B, 1)
    loss = xp.mean(xp.log(sums[:, 0]) - picked)
    # dL/dz = (softmax(z) - onehot(labels)) / B
    grad /= sums
    grad[rows, labels] -= 1
    grad /= z.shape[0]
    return loss, grad


# --- the semi-supervised K-class GAN (Salimans et al. 2016): D's K logits l also say "real" ---
# D(x) = Z / (Z + 1) with Z = sum_k exp(l_k), so log D(x) = -softplus(-LSE(l)) and log(1 - D(x)) = -softplus(LSE(l)).

def log_sum_exp(z):
    """log(sum_k exp(z_k)) of each row, with the row max taken out first so exp never overflows."""
    # z: (B, K) -> (B,)
    xp = xp_of(z)
    m = z.max(axis=1)
    return m + xp.log(xp.exp(z - m[:, None]).sum(axis=1))


def softplus(s):
    """log(1 + exp(s)) = max(s, 0) + log1p(exp(-|s|)), finite for any s."""
    xp = xp_of(s)
    return xp.maximum(s, 0) + xp.log1p(xp.exp(-xp.abs(s)))


def unlabelled_loss(z, real):
    """D's loss on unlabelled rows with logits z (B, K): -log D(x) for real rows, -log(1 - D(x)) for generated ones."""
    # real: softplus(-LSE(z)) (the recipe's -LSE + softplus(LSE), rearranged); generated: softplus(LSE(z))
    xp = xp_of(z)
    sign = -1.0 if real else 1.0
    lse = log_sum_exp(z)                            # (B,)
    t = sign * lse
    sp = softplus(t)
    loss = sp.mean()
    # dL/dz = sign * sigmoid(t) * softmax(z) / B; sigmoid(t) = exp(t - softplus(t)) is exact in both tails
    grad = xp.exp(z - lse[:, None])                 # softmax(z), (B, K)
    grad *= (sign / len(z)) * xp.exp(t - sp)[:, None]
    return loss, grad


def feature_matching(f, target_mean):
    """Mean over units of (mean_B f - target_mean)^2: G matches the average features D sees in real data."""
    # f: (B, J) features of generated rows; target_mean: (J,) the real rows' average, a constant here
    diff = f.mean(axis=0) - target_mean             # (J,)
    loss = (diff * diff).mean()
    # dL/df_bj = 2 diff_j / (J B), the same for every row b
    grad = xp_of(f).broadcast_to(diff * (2.0 / (diff.size * len(f))), f.shape)
    return loss, grad
