"""Host-side measures of generated digits: Frechet distance, class balance, precision/recall, memorization."""
import numpy as np


def feature_stats(feats):
    """Mean and covariance of features, in float64."""
    # feats: (N, D) -> mu: (D,), sigma: (D, D)
    feats = np.asarray(feats, dtype=np.float64).reshape(len(feats), -1)
    mu = feats.mean(axis=0)
    sigma = np.atleast_2d(np.cov(feats, rowvar=False))
    return mu, sigma


def _sqrt_psd(s):
    """Symmetric square root of a positive semi-definite matrix via eigh."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2); clipped at 0."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    # Tr((S1 S2)^1/2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))): that matrix is symmetric PSD, so eigvalsh is stable
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    d = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    return float(max(d, 0.0))


def class_histogram(pred, n_classes=10):
    """Fraction of predictions per class; pred is (N,) labels or (N, C) scores (argmax taken)."""
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    counts = np.bincount(pred.astype(np.int64).ravel(), minlength=n_classes)[:n_classes].astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def normalized_entropy(hist):
    """Entropy of a histogram divided by log(n_classes): 1 for uniform, 0 for one class."""
    p = np.asarray(hist, dtype=np.float64).ravel()
    if p.size < 2 or p.sum() <= 0:
        return 0.0
    p = p / p.sum()
    nz = p[p > 0]  # 0 log 0 = 0
    return float(-(nz * np.log(nz)).sum() / np.log(p.size))


def is_collapsed(hist, threshold=0.8):
    """Mode-collapse flag: normalized entropy of the class histogram below threshold."""
    # 0.8 ~ "a few classes dominate": e.g. 5 of 10 classes equally used gives 0.70, one class missing gives 0.95
    return normalized_entropy(hist) < threshold


def _sq_dists(a, b):
    """Squared Euclidean distances ||a||^2 + ||b||^2 - 2ab, clipped at 0."""
    # a: (n, D), b: (m, D) -> (n, m)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return np.maximum(d, 0, out=d)


def _knn_radii_sq(feats, k, chunk):
    """Squared distance from each row to its k-th nearest other row."""
    # feats: (N, D) -> (N,); index k of the sorted row skips the point itself at distance 0
    out = np.empty(len(feats))
    for i in range(0, len(feats), chunk):
        d = _sq_dists(feats[i:i + chunk], feats)
        out[i:i + chunk] = np.partition(d, k, axis=1)[:, k]
    return out


def _coverage(query, ref, radii_sq, chunk):
    """Fraction of query rows inside at least one ref row's k-NN ball."""
    inside = 0
    for i in range(0, len(query), chunk):
        d = _sq_dists(query[i:i + chunk], ref)
        inside += int((d <= radii_sq[None, :]).any(axis=1).sum())
    return inside / len(query)


def knn_precision_recall(real_feats, fake_feats, k=3, chunk=1000):
    """Improved precision/recall (Kynkaanniemi et al. 2019) with k-NN balls; returns (precision, recall)."""
    # real_feats: (N, D), fake_feats: (M, D); each chunk holds a (chunk, N) float64 block (80 MB at 1000 x 10000)
    real = np.asarray(real_feats, dtype=np.float64).reshape(len(real_feats), -1)
    fake = np.asarray(fake_feats, dtype=np.float64).reshape(len(fake_feats), -1)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} samples in each set, got {len(real)} real and {len(fake)} fake")
    precision = _coverage(fake, real, _knn_radii_sq(real, k, chunk), chunk)
    recall = _coverage(real, fake, _knn_radii_sq(fake, k, chunk), chunk)
    return precision, recall


def nearest_distance(samples, reference, chunk=256, return_index=False):
    """Euclidean distance from each sample to its nearest reference image (memorization check)."""
    # samples: (N, ...) and reference: (M, ...) are flattened to (N, P), (M, P); returns (N,) float64
    a = np.asarray(samples).reshape(len(samples), -1)
    b = np.asarray(reference).reshape(len(reference), -1)
    a32, b32 = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
    b_sq = (b32 * b32).sum(1)
    idx = np.empty(len(a), dtype=np.int64)
    for i in range(0, len(a), chunk):
        q = a32[i:i + chunk]
        # ||a||^2 is constant per row, so the argmin needs only ||b||^2 - 2ab (float32 matmul for speed)
        idx[i:i + chunk] = (b_sq[None, :] - 2 * (q @ b32.T)).argmin(axis=1)
    # recompute the winner's distance exactly in float64: float32 cancellation would leave ~1e-3 instead of 0
    diff = a.astype(np.float64) - b[idx].astype(np.float64)
    dist = np.sqrt((diff * diff).sum(1))
    return (dist, idx) if return_index else dist
