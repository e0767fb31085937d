"""Hand-checkable cases for tinygan.measure.metrics."""
import numpy as np
import pytest

from tinygan.measure import metrics


def _rand_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_feature_stats_shapes_and_values():
    feats = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = metrics.feature_stats(feats)
    assert mu.dtype == np.float64 and sigma.shape == (2, 2)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False))


def test_frechet_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(8), _rand_cov(rng, 8)
    assert metrics.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_frechet_same_features_is_zero():
    feats = np.random.default_rng(1).standard_normal((500, 16))
    mu, s = metrics.feature_stats(feats)
    assert metrics.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_frechet_shift_only_is_squared_mean_difference():
    rng = np.random.default_rng(2)
    s = _rand_cov(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    want = float(((mu1 - mu2) ** 2).sum())
    assert metrics.frechet_distance(mu1, s, mu2, s) == pytest.approx(want, rel=1e-8)


def test_frechet_one_dimensional():
    a, b, m1, m2 = 1.5, 0.5, 2.0, -1.0
    got = metrics.frechet_distance(m1, a ** 2, m2, b ** 2)
    assert got == pytest.approx((a - b) ** 2 + (m1 - m2) ** 2)


def test_frechet_diagonal_matches_closed_form():
    # diagonal covariances commute: Tr((S1 S2)^1/2) = sum sqrt(s1 s2)
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    want = float(((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    assert metrics.frechet_distance(np.zeros(3), np.diag(s1), np.zeros(3), np.diag(s2)) == pytest.approx(want)


def test_class_histogram_and_entropy():
    hist = metrics.class_histogram(np.array([0, 1, 1, 3]), n_classes=4)
    np.testing.assert_allclose(hist, [0.25, 0.5, 0.0, 0.25])
    scores = np.eye(10)[[2, 2, 7]]  # (N, C) scores -> argmax
    np.testing.assert_allclose(metrics.class_histogram(scores)[[2, 7]], [2 / 3, 1 / 3])
    assert metrics.normalized_entropy(np.full(10, 0.1)) == pytest.approx(1.0)
    assert metrics.normalized_entropy(np.eye(10)[3]) == pytest.approx(0.0)
    assert metrics.normalized_entropy([0.5, 0.5, 0, 0]) == pytest.approx(0.5)


def test_is_collapsed():
    one_digit = metrics.class_histogram(np.full(1000, 7))
    balanced = metrics.class_histogram(np.arange(1000) % 10)
    assert metrics.is_collapsed(one_digit)
    assert not metrics.is_collapsed(balanced)


def test_precision_recall_identical_sets():
    x = np.random.default_rng(3).standard_normal((300, 8))
    assert metrics.knn_precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_precision_recall_far_apart_clusters():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((300, 8))
    fake = rng.standard_normal((300, 8)) + 100.0
    p, r = metrics.knn_precision_recall(real, fake, k=3)
    assert p == 0.0 and r == 0.0


def test_precision_recall_half_covered():
    # fake covers only one of two real clusters: precision high, recall about a half
    rng = np.random.default_rng(5)
    real = np.concatenate([rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 50.0])
    fake = rng.standard_normal((400, 4))
    p, r = metrics.knn_precision_recall(real, fake, k=3, chunk=64)
    assert p > 0.9 and 0.4 < r < 0.55


def test_nearest_distance_zero_for_reference_samples():
    ref = np.random.default_rng(6).random((200, 28, 28))
    d, idx = metrics.nearest_distance(ref[[5, 17, 150]], ref, chunk=2, return_index=True)
    np.testing.assert_array_equal(idx, [5, 17, 150])
    assert np.all(d == 0.0)


def test_nearest_distance_matches_brute_force():
    rng = np.random.default_rng(7)
    ref, samples = rng.random((50, 28, 28)), rng.random((13, 28, 28))
    brute = np.sqrt(((samples.reshape(13, 1, -1) - ref.reshape(1, 50, -1)) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(metrics.nearest_distance(samples, ref, chunk=4), brute, rtol=1e-10)


def _non_commuting_pair(rng, d):
    """Two random covariances (full rank, different eigenvectors) whose product is not symmetric."""
    s1, s2 = _rand_cov(rng, d), _rand_cov(rng, d)
    assert np.abs(s1 @ s2 - s2 @ s1).max() > 1.0, "the test needs covariances that do not commute"
    return s1, s2


@pytest.mark.parametrize("d", [2, 5, 16, 40])
def test_frechet_matches_scipy_sqrtm_on_non_commuting_covariances(d):
    sqrtm = pytest.importorskip("scipy.linalg", reason="scipy is a test dependency: pip install -e '.[test]'").sqrtm
    rng = np.random.default_rng(d)
    s1, s2 = _non_commuting_pair(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = sqrtm(s1 @ s2).real  # (S1 S2)^1/2: not symmetric when S1, S2 do not commute
    want = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9, abs=1e-9)
    # the commuting shortcut Tr(sqrt(S1) sqrt(S2)) is measurably different here, so the test can tell them apart
    wrong = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * sqrtm(s1).real @ sqrtm(s2).real))
    assert abs(wrong - want) > 1e-3 * abs(want)


def test_frechet_is_symmetric_and_clipped_at_zero():
    rng = np.random.default_rng(11)
    s1, s2 = _non_commuting_pair(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(metrics.frechet_distance(mu2, s2, mu1, s1), rel=1e-10)
    s = np.diag([1.0, 1e-18])  # rounding could make the distance of a Gaussian to itself slightly negative
    assert metrics.frechet_distance(np.zeros(2), s, np.zeros(2), s) >= 0.0


def _brute_precision_recall(real, fake, k):
    """k-NN precision/recall by definition: full distance matrices, each point's k-th nearest other point."""
    def radii(x):
        d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself
    def coverage(query, ref):
        d = np.linalg.norm(query[:, None, :] - ref[None, :, :], axis=-1)
        return float((d <= radii(ref)[None, :]).any(axis=1).mean())
    return coverage(fake, real), coverage(real, fake)


@pytest.mark.parametrize("k, chunk, seed", [(1, 7, 0), (3, 50, 1), (5, 1000, 2), (3, 13, 3)])
def test_precision_recall_matches_brute_force(k, chunk, seed):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((120, 6))
    fake = 0.7 * rng.standard_normal((90, 6)) + 0.6  # overlapping sets: neither score is 0 or 1
    want = _brute_precision_recall(real, fake, k)
    assert 0 < min(want) and max(want) < 1
    assert metrics.knn_precision_recall(real, fake, k=k, chunk=chunk) == pytest.approx(want, abs=1e-12)


def test_precision_recall_needs_more_than_k_samples():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="more than k=3 samples"):
        metrics.knn_precision_recall(x, np.ones((10, 2)), k=3)
