"""Regularizers of a classifier's logits and features: cures for a semi-supervised GAN trained on few labels.

Each returns (0-d loss, gradient) like engine/losses.py (consistency: a gradient for each input); out= writes the
gradient into an array you keep. Logits are (N, K), features (N, J); every mean runs over the N rows.
"""
import math

from .backend import xp_of


def _softmax(z, out=None):
    """softmax of each row of z (N, K), shifted by the row max so exp never overflows."""
    xp = xp_of(z)
    p = xp.subtract(z, z.max(axis=1, keepdims=True), out=out)
    xp.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def entropy(z, out=None):
    """Mean over rows of H(softmax(z)) = -sum_k p_k log p_k: small when each row is confident."""
    # z: (N, K). log p = z - LSE(z); H = LSE(z) - sum_k p_k z_k.
    xp = xp_of(z)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))       # (N, K) log softmax
    p = _softmax(z, out=out)                                        # (N, K)
    h = -(p * logp).sum(axis=1, keepdims=True)                      # (N, 1) entropy of each row
    loss = h.mean()
    # dH/dz_j = -p_j (log p_j + H), so dL/dz = -p (log p + H) / N
    logp += h
    p *= logp
    p *= -1.0 / len(z)
    return loss, p


def class_balance(z, out=None):
    """KL(mean_rows softmax(z) || uniform) = sum_k pbar_k log pbar_k + log K: small when all classes are used."""
    # z: (N, K); pbar: (K,) the mean of the rows' softmax
    xp = xp_of(z)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))       # (N, K) log softmax
    # log pbar_k = LSE_i(log p_ik) - log N: finite even where every row's p_k underflows to 0 (a confident D),
    # where log(mean p) would be -inf and 0 * -inf a NaN
    top = logp.max(axis=0, keepdims=True)                           # (1, K)
    logbar = (top + xp.log(xp.exp(logp - top).sum(axis=0, keepdims=True)))[0] - math.log(len(z))   # (K,)
    pbar = xp.exp(logbar)                                           # (K,)
    p = _softmax(z, out=out)                                        # (N, K)
    loss = (pbar * logbar).sum() + math.log(z.shape[1])
    # dL/dpbar_k = log pbar_k + 1; dpbar_k/dz_ij = p_ik (delta_kj - p_ij) / N, so
    # dL/dz_ij = p_ij (a_j - sum_k p_ik a_k) / N with a = log pbar (the + 1 cancels)
    dot = (p * logbar).sum(axis=1, keepdims=True)                   # (N, 1)
    a = logbar - dot                                                # (N, K)
    p *= a
    p /= len(z)
    return loss, p


def _softmax_backward(p, dp):
    """dL/dz from dL/dp for p = softmax(z), rows independent: p * (dp - sum_k dp_k p_k), in dp's place."""
    dp -= (dp * p).sum(axis=1, keepdims=True)
    dp *= p
    return dp


def consistency(za, zb):
    """Mean over rows of ||softmax(za) - softmax(zb)||^2: two noisy looks at a digit should agree. (loss, ga, gb)."""
    # za, zb: (N, K) logits of the same rows under different noise
    pa, pb = _softmax(za), _softmax(zb)
    d = pa - pb                                                     # (N, K)
    loss = (d * d).sum(axis=1).mean()
    # dL/dpa = 2 d / N, dL/dpb = -2 d / N; then through each softmax
    u = d * (2.0 / len(za))
    ga = _softmax_backward(pa, u.copy())
    gb = _softmax_backward(pb, -u)
    return loss, ga, gb


def pull_away(f, eps=1e-12):
    """1 / (N (N - 1)) sum_{i != j} (fh_i . fh_j)^2 with fh = f / |f|: small when G's rows differ (Bad GAN)."""
    # f: (N, J), N >= 2. |f_i| = sqrt(sum f_i^2 + eps) keeps an all-zero row (ReLU features) finite.
    xp = xp_of(f)
    N = len(f)
    norm = xp.sqrt((f * f).sum(axis=1, keepdims=True) + eps)       # (N, 1)
    fh = f / norm                                                   # (N, J)
    S = fh @ fh.T                                                   # (N, N) cosine similarities
    idx = xp.arange(N)
    S[idx, idx] = 0                                                 # i != j only
    loss = (S * S).sum() / (N * (N - 1))
    # dL/dS_ij = 2 S_ij / (N (N - 1)); S symmetric, so dL/dfh = 4 S fh / (N (N - 1))
    dfh = (S @ fh) * (4.0 / (N * (N - 1)))
    # fh = f / |f|: dL/df = (dfh - fh (dfh . fh)) / |f|
    dfh -= fh * (dfh * fh).sum(axis=1, keepdims=True)
    dfh /= norm
    return loss, dfh
