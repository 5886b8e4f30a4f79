"""FID against scipy's sqrtm, KID's unbiasedness, and the k-NN metrics against brute force."""

import jax
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from ganjax.evaluation import metrics


def _features(seed, n, d, shift=0.0, scale=1.0):
    """``n`` correlated Gaussian features; the correlation depends only on ``d``, the draw on ``seed``."""
    mix = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return shift + scale * np.random.default_rng(seed).normal(size=(n, d)) @ mix


def _reference_fid(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)


@pytest.mark.parametrize("d,shift,scale", [(8, 0.0, 1.0), (32, 0.5, 1.3), (64, -0.2, 0.7)])
def test_frechet_distance_matches_scipy_sqrtm(d, shift, scale):
    x, y = _features(0, 500, d), _features(1, 400, d, shift, scale)
    np.testing.assert_allclose(metrics.fid_from_features(x, y), _reference_fid(x, y), rtol=1e-5)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = _features(2, 300, 16)
    assert abs(metrics.fid_from_features(x, x)) < 1e-8
    assert abs(metrics.fid_from_features(x[:10], x[:10])) < 1e-8  # fewer rows than dimensions


@pytest.mark.parametrize("n1,n2", [(40, 50), (50, 40), (40, 200)])
def test_fid_with_fewer_samples_than_dimensions_equals_the_covariance_route(n1, n2):
    """2,000 InceptionV3 features of 2,048 dims: the nuclear norm of A1 A2ᵀ replaces the D x D matrix roots."""
    x, y = _features(3, n1, 64), _features(4, n2, 64, 0.3, 1.2)
    expected = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    np.testing.assert_allclose(metrics.fid_from_features(x, y), expected, rtol=1e-6)  # roots of a singular S
    np.testing.assert_allclose(metrics.fid_from_features(x, y), _reference_fid(x, y), rtol=1e-5)


def _reference_mmd2(x, y):
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * k(x, y).mean()
    )


def test_polynomial_mmd2_matches_formula():
    x, y = _features(3, 50, 6), _features(4, 40, 6, 0.3)
    np.testing.assert_allclose(metrics.polynomial_mmd2(x, y), _reference_mmd2(x, y), rtol=1e-12)


def test_kid_is_unbiased():
    """The mean KID over many small subsets matches the estimate on the full sets."""
    x, y = _features(5, 2000, 8), _features(6, 2000, 8, 0.15, 1.1)
    full = metrics.polynomial_mmd2(x, y)
    mean, std = metrics.kernel_inception_distance(x, y, jax.random.key(0), n_subsets=400, subset_size=20)
    assert full > 0.01
    assert abs(mean - full) < 3 * std / np.sqrt(400)
    assert std > 0


def test_kid_of_identical_distributions_is_near_zero():
    x, y = _features(7, 1000, 8), _features(8, 1000, 8)
    mean, std = metrics.kernel_inception_distance(x, y, jax.random.key(1), n_subsets=20, subset_size=500)
    assert abs(mean) < 3 * std


def _brute_radii(x, k):
    return np.sort(cdist(x, x), axis=1)[:, k]


def test_precision_recall_match_brute_force():
    real, fake = _features(9, 300, 5), _features(10, 250, 5, 0.4, 0.8)
    k = 3
    r_real, r_fake = _brute_radii(real, k), _brute_radii(fake, k)
    precision = np.mean((cdist(fake, real) <= r_real[None, :]).any(1))
    recall = np.mean((cdist(real, fake) <= r_fake[None, :]).any(1))
    got = metrics.precision_recall(real, fake, k)
    assert got == pytest.approx({"precision": precision, "recall": recall}, abs=1e-12)
    assert 0 < precision < 1 and 0 < recall < 1


def test_density_coverage_match_brute_force():
    real, fake = _features(11, 300, 5), _features(12, 250, 5, 0.4, 0.8)
    k = 5
    radii = _brute_radii(real, k)
    inside = cdist(fake, real) <= radii[None, :]
    density = inside.sum() / (k * len(fake))
    coverage = np.mean(inside.any(0))
    got = metrics.density_coverage(real, fake, k)
    assert got == pytest.approx({"density": density, "coverage": coverage}, abs=1e-12)
    assert 0 < coverage < 1


def test_chunked_knn_radii_match_brute_force():
    x = _features(13, metrics._CHUNK + 100, 3)
    np.testing.assert_allclose(metrics.knn_radii(x, 4), _brute_radii(x, 4), rtol=1e-9, atol=1e-9)


def test_extract_features_in_batches_and_cache(tmp_path):
    images = np.arange(50 * 4, dtype=np.float32).reshape(50, 2, 2, 1)
    feature_fn = jax.jit(lambda b: b.reshape(len(b), -1) * 2.0)
    features = metrics.extract_features(feature_fn, metrics.array_batches(images, 16))
    np.testing.assert_array_equal(features, images.reshape(50, -1) * 2.0)
    calls = []
    compute = lambda: calls.append(1) or features
    first = metrics.cached_features(tmp_path, "toy/train", images, "double", compute)
    second = metrics.cached_features(tmp_path, "toy/train", images, "double", compute)
    np.testing.assert_array_equal(first, second)
    assert calls == [1]
    assert (tmp_path / f"toy_train__50x2x2x1-{metrics.fingerprint(images)}__double.npz").is_file()


def test_feature_cache_key_covers_dataset_resolution_images_and_network(tmp_path):
    images = np.zeros((4, 2, 2, 1), np.uint8)
    calls = []

    def features(name, images, network):
        return metrics.cached_features(tmp_path, name, images, network, lambda: calls.append(1) or np.zeros((4, 3)))

    features("toy", images, "net-a")
    features("toy", images.copy(), "net-a")  # the same images: a hit
    assert len(calls) == 1
    features("other", images, "net-a")  # another dataset
    features("toy", np.zeros((4, 4, 4, 1), np.uint8), "net-a")  # another resolution
    features("toy", np.zeros((4, 2, 2, 3), np.uint8), "net-a")  # another channel count
    features("toy", np.ones((4, 2, 2, 1), np.uint8), "net-a")  # other images (a changed folder, subset or seed)
    features("toy", images[:3], "net-a")  # fewer images
    features("toy", images, "net-b")  # another network or weights
    assert len(calls) == 7
    assert len(list(tmp_path.glob("*.npz"))) == 7


def test_fingerprint_tells_arrays_apart():
    a = np.arange(6, dtype=np.float32)
    assert metrics.fingerprint(a) == metrics.fingerprint(a.copy())
    assert len({metrics.fingerprint(x) for x in (a, a.reshape(2, 3), a.astype(np.float64), a + 1)}) == 4


def test_generated_batches_give_exactly_n_with_distinct_keys():
    sample = jax.jit(lambda key, n: jax.random.normal(key, (n, 3)), static_argnums=1)
    batches = list(metrics.generated_batches(sample, jax.random.key(0), 70, 32))
    assert [len(b) for b in batches] == [32, 32, 6]
    assert not np.allclose(batches[0], batches[1])


def test_class_metrics():
    predictions = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    got = metrics.class_metrics(predictions, num_classes=4)
    p = np.array([2, 2, 4]) / 8
    assert got["class_coverage"] == 3
    np.testing.assert_allclose(got["class_kl"], np.sum(p * np.log(p * 4)))
    uniform = metrics.class_metrics(np.arange(40) % 4, 4, reference_counts=[1, 1, 1, 1])
    assert uniform == {"class_coverage": 4, "class_kl": 0.0}


def test_sample_diversity_flags_collapsed_samples():
    data = _features(14, 400, 4)
    healthy = metrics.sample_diversity(_features(15, 400, 4), data)
    collapsed = metrics.sample_diversity(np.repeat(data[:4], 100, axis=0), data)
    assert healthy["duplicate_share"] < 0.05 and 0.8 < healthy["pairwise_distance_ratio"] < 1.2
    assert collapsed["duplicate_share"] == 1.0


def test_evaluate_images_in_one_pass():
    real = _features(16, 400, 6)
    fake_images = _features(17, 300, 6, 0.2).reshape(300, 2, 3, 1)
    calls = []
    feature_fn = lambda b: calls.append(len(b)) or b.reshape(len(b), -1)
    # Class 1 with probability 0.95 where the first pixel is positive, else class 0 with 0.6: half readable.
    positive = lambda b: b.reshape(len(b), -1)[:, :1] > 0
    class_fn = lambda b: np.where(positive(b), [[0.05, 0.95]], [[0.6, 0.4]])
    got = metrics.evaluate_images(
        metrics.array_batches(fake_images, 128),
        feature_fn,
        real,
        jax.random.key(0),
        class_fn,
        num_classes=2,
        kid_subsets=10,
        kid_subset_size=100,
    )
    fake = fake_images.reshape(300, -1)
    assert calls == [128, 128, 44]
    assert got["fid"] == pytest.approx(metrics.fid_from_features(real, fake), rel=1e-12)
    assert got["precision"] == metrics.precision_recall(real, fake)["precision"]
    assert got["coverage"] == metrics.density_coverage(real, fake)["coverage"]
    assert got["class_coverage"] == 2 and got["kid_std"] > 0
    assert got["readable_share"] == np.mean(fake[:, 0] > 0)


@pytest.mark.parametrize(
    "probabilities, confidence, share",
    [
        ([[0.95, 0.05], [0.5, 0.5], [0.0, 1.0], [0.89, 0.11]], 0.9, 0.5),
        ([[0.95, 0.05], [0.5, 0.5], [0.0, 1.0], [0.89, 0.11]], 0.5, 1.0),
        ([[0.9, 0.1]], 0.9, 1.0),  # at the threshold is readable
    ],
)
def test_readable_share(probabilities, confidence, share):
    assert metrics.readable_share(np.array(probabilities), confidence) == share


def test_readable_share_refuses_a_confidence_outside_0_1():
    with pytest.raises(ValueError, match="confidence"):
        metrics.readable_share(np.ones((1, 2)) / 2, 1.5)
