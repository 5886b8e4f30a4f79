"""What a GAN learned: FID, KID, precision/recall, density/coverage, class and mode counts.

All distances between sample sets work on features from any feature function
(InceptionV3 pool3 for FID proper, the MNIST classifier's penultimate layer for
"MNIST FID", or the raw points of a 2D mixture). Features are extracted batch by
batch (:func:`extract_features`), so a large sample set never sits in memory as
images; the real data's features are cached on disk (:func:`cached_features`).
Set-level maths runs in float64 NumPy, in chunks of rows, so it is exact enough
to compare against brute force and never forms more than ``chunk x N`` distances.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator

import jax
import numpy as np

_CHUNK = 1024


# ----------------------------------------------------------------------------- features


def extract_features(feature_fn: Callable, batches: Iterable) -> np.ndarray:
    """``feature_fn`` applied to each batch, concatenated as float64 ``(N, D)``.

    Args:
      feature_fn: images ``(B, ...)`` -> features ``(B, D)`` (jit it once, outside).
      batches: an iterable of image batches, e.g. :func:`array_batches` or
        :func:`generated_batches`; only one batch is held at a time.
    """
    (features,) = _extract((feature_fn,), batches)
    return features.reshape(len(features), -1).astype(np.float64)


def _extract(fns: tuple[Callable, ...], batches: Iterable) -> list[np.ndarray]:
    """Every function of ``fns`` on each batch, in one pass over ``batches``, concatenated per function."""
    outputs = [[np.asarray(fn(batch)) for fn in fns] for batch in batches]
    if not outputs:
        raise ValueError("no batches to extract features from")
    return [np.concatenate(column) for column in zip(*outputs)]


def array_batches(images, batch_size: int) -> Iterator:
    """Consecutive slices of ``images`` of at most ``batch_size`` rows."""
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def generated_batches(
    sample_fn: Callable[[jax.Array, int], jax.Array], key: jax.Array, n: int, batch_size: int
) -> Iterator[jax.Array]:
    """``n`` samples from ``sample_fn(key, batch_size)`` in batches, key ``fold_in(key, i)`` for batch ``i``.

    The last batch is cut to make exactly ``n``; ``sample_fn`` always sees
    ``batch_size``, so a jitted sampler compiles once.
    """
    for i, start in enumerate(range(0, n, batch_size)):
        yield sample_fn(jax.random.fold_in(key, i), batch_size)[: n - start]


def fingerprint(*arrays) -> str:
    """A short hex digest of the arrays' shapes, dtypes and bytes: equal only for equal arrays."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def cached_features(
    cache_dir: str | pathlib.Path, dataset: str, images, network: str, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """The features of the real ``images``, computed once and stored in ``cache_dir``.

    The file, ``{dataset}__{N}x{H}x{W}x{C}-{fingerprint of images}__{network}.npz``,
    is keyed by the images themselves (which, how many, at what resolution) and by the
    network, so another subset, size or network never reads stale features.

    Args:
      cache_dir: the cache folder (created if missing).
      dataset: a readable name of the data (its path or TFDS name).
      images: the real images whose features ``compute`` returns.
      network: a name that identifies the feature network and its weights (e.g. with their :func:`fingerprint`).
      compute: called on a cache miss; returns the features ``(N, D)`` of ``images``.
    """
    slug = lambda s: re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")
    shape = "x".join(str(n) for n in np.shape(images))
    path = pathlib.Path(cache_dir) / f"{slug(dataset)}__{shape}-{fingerprint(images)}__{slug(network)}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return stored["features"]
    features = np.asarray(compute(), np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, features=features)
    tmp.replace(path)
    return features


# ----------------------------------------------------------------------------- Frechet and kernel distance


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)``, float64."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½)``, the Frechet distance of two Gaussians (FID).

    ``tr (S1 S2)^½`` is computed as the sum of the square roots of the
    eigenvalues of the symmetric ``S1^½ S2 S1^½``, which has the same spectrum
    and needs no general matrix square root.

    References:
      Heusel et al. 2017, GANs Trained by a Two Time-Scale Update Rule Converge
      to a Local Nash Equilibrium.
    """
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, np.float64) for a in (mu1, mu2, sigma1, sigma2))
    root1 = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def fid_from_features(features1, features2) -> float:
    """:func:`frechet_distance` between the Gaussians fitted to two feature sets.

    With fewer rows than dimensions (e.g. 2,000 InceptionV3 features of 2,048) it forms no
    ``D x D`` covariance: for the centred features ``A1``, ``A2``, the eigenvalues of
    ``S1 S2 = A1ᵀA1 A2ᵀA2 / (c1 c2)`` (``c = N - 1``) are the squared singular values of
    ``A1 A2ᵀ / sqrt(c1 c2)``, so ``tr (S1 S2)^½`` is that matrix's nuclear norm, exactly.
    """
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if min(len(f1), len(f2)) >= f1.shape[1]:
        return frechet_distance(*feature_stats(f1), *feature_stats(f2))
    a1, a2 = f1 - f1.mean(axis=0), f2 - f2.mean(axis=0)
    c1, c2 = len(f1) - 1, len(f2) - 1
    trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
    mean_term = np.sum((f1.mean(axis=0) - f2.mean(axis=0)) ** 2)
    return float(mean_term + np.sum(a1**2) / c1 + np.sum(a2**2) / c2 - 2.0 * trace_sqrt)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic kernel ``k(a, b) = (a·b / D + 1)³`` (the U-statistic)."""
    dim = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / dim + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean()
    )


def kernel_inception_distance(
    features1, features2, key: jax.Array, n_subsets: int = 100, subset_size: int = 1000
) -> tuple[float, float]:
    """KID: the mean and std of :func:`polynomial_mmd2` over random subsets of both sets.

    Each subset draws ``min(subset_size, N)`` rows of each set without
    replacement; every subset's estimate is unbiased, so the mean is too.

    References:
      Binkowski et al. 2018, Demystifying MMD GANs.
    """
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    size = min(subset_size, len(features1), len(features2))
    subsets = lambda k, n: np.argsort(np.asarray(jax.random.uniform(k, (n_subsets, n))), axis=1)[:, :size]
    key1, key2 = jax.random.split(key)
    estimates = [
        polynomial_mmd2(features1[i], features2[j])
        for i, j in zip(subsets(key1, len(features1)), subsets(key2, len(features2)))
    ]
    return float(np.mean(estimates)), float(np.std(estimates))


# ----------------------------------------------------------------------------- k-NN manifold metrics


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def knn_radii(features, k: int) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest other row."""
    features = np.asarray(features, np.float64)
    if not 0 < k < len(features):
        raise ValueError(f"knn_radii: k must be in [1, {len(features) - 1}], got {k}")
    radii = [
        np.sqrt(np.partition(_sq_dists(features[s : s + _CHUNK], features), k, axis=1)[:, k])
        for s in range(0, len(features), _CHUNK)
    ]
    return np.concatenate(radii)


def _ball_counts(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each query, how many balls ``B(centres[i], radii[i])`` contain it."""
    sq = radii**2
    return np.concatenate(
        [(_sq_dists(queries[s : s + _CHUNK], centres) <= sq[None, :]).sum(1) for s in range(0, len(queries), _CHUNK)]
    )


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """Improved precision and recall: the share of fakes inside the real k-NN manifold, and vice versa.

    References:
      Kynkaanniemi et al. 2019, Improved Precision and Recall Metric for
      Assessing Generative Models.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = np.mean(_ball_counts(fake, real, knn_radii(real, k)) > 0)
    recall = np.mean(_ball_counts(real, fake, knn_radii(fake, k)) > 0)
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5) -> dict[str, float]:
    """Density (mean count of real k-NN balls holding a fake, over k) and coverage (share of real balls holding one).

    References:
      Naeem et al. 2020, Reliable Fidelity and Diversity Metrics for Generative Models.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    radii = knn_radii(real, k)
    density = _ball_counts(fake, real, radii).sum() / (k * len(fake))
    nearest_fake = np.concatenate(
        [np.sqrt(_sq_dists(real[s : s + _CHUNK], fake).min(1)) for s in range(0, len(real), _CHUNK)]
    )
    return {"density": float(density), "coverage": float(np.mean(nearest_fake <= radii))}


def sample_diversity(samples, reference, duplicate_fraction: float = 0.1) -> dict[str, float]:
    """Mode-collapse signals: the share of near-duplicate samples and the pairwise-distance ratio to the data.

    A sample is a near-duplicate when its nearest other sample is closer than
    ``duplicate_fraction`` times the median nearest-neighbour distance of
    ``reference`` (the data). The ratio is the samples' mean pairwise distance
    over the data's; near 1 for a healthy G, near 0 when it has collapsed.
    """
    flat = lambda a: np.asarray(a, np.float64).reshape(len(a), -1)
    samples, reference = flat(samples), flat(reference)
    mean_dist = lambda a: np.sqrt(_sq_dists(a, a)).sum() / (len(a) * (len(a) - 1))
    threshold = duplicate_fraction * np.median(knn_radii(reference, 1))
    duplicates = np.mean(knn_radii(samples, 1) < threshold)
    return {
        "duplicate_share": float(duplicates),
        "pairwise_distance_ratio": float(mean_dist(samples) / mean_dist(reference)),
    }


# ----------------------------------------------------------------------------- classes and modes


def _kl_to(histogram: np.ndarray, reference: np.ndarray) -> float:
    p = histogram / histogram.sum()
    q = reference / reference.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def class_metrics(predictions, num_classes: int, reference_counts=None) -> dict[str, float]:
    """Class coverage (classes predicted at least once) and KL(generated class histogram || reference).

    Args:
      predictions: the classifier's labels ``(N,)`` for generated samples.
      num_classes: the number of classes.
      reference_counts: the real data's class counts; uniform when None.
    """
    counts = np.bincount(np.asarray(predictions), minlength=num_classes).astype(np.float64)
    reference = np.ones(num_classes) if reference_counts is None else np.asarray(reference_counts, np.float64)
    return {"class_coverage": int(np.sum(counts > 0)), "class_kl": _kl_to(counts, reference)}


def readable_share(probabilities, confidence: float = 0.9) -> float:
    """The share of samples a classifier reads as some class with probability at least ``confidence``.

    A digit is "readable" when the MNIST classifier is sure of it: a sample
    between two classes, or a scrawl, spreads its probability and is not.

    Args:
      probabilities: class probabilities ``(N, num_classes)``.
      confidence: the least top probability of a readable sample.
    """
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"readable_share: confidence must be in (0, 1], got {confidence}")
    return float(np.mean(np.max(np.asarray(probabilities), axis=-1) >= confidence))


def mixture_metrics(samples, means, std: float, quality_stds: float = 3.0) -> dict[str, float]:
    """Mode metrics of 2D samples over a Gaussian mixture (usually 2,500 samples).

    Each sample is assigned to its nearest mean; it is high quality when within
    ``quality_stds`` standard deviations of it. A mode is captured when at least
    one high-quality sample is nearest to it. ``mode_kl`` is KL(histogram of
    nearest modes over all samples || uniform), between 0 and ``log K``.

    References:
      Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN.
    """
    samples, means = np.asarray(samples, np.float64), np.asarray(means, np.float64)
    dists = np.sqrt(_sq_dists(samples, means))
    nearest = dists.argmin(1)
    good = dists[np.arange(len(samples)), nearest] <= quality_stds * std
    counts = np.bincount(nearest, minlength=len(means)).astype(np.float64)
    return {
        "modes": len(np.unique(nearest[good])),
        "high_quality": float(good.mean()),
        "mode_kl": _kl_to(counts, np.ones(len(means))),
    }


# ----------------------------------------------------------------------------- everything at once


def evaluate_images(
    batches: Iterable,
    feature_fn: Callable,
    real_features,
    key: jax.Array,
    class_fn: Callable | None = None,
    num_classes: int = 10,
    confidence: float = 0.9,
    k: int = 3,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float]:
    """FID, KID (mean and std), precision/recall, density/coverage and, with ``class_fn``, the classes' metrics.

    One pass over ``batches`` (e.g. :func:`generated_batches` of G) computes the
    features and the class probabilities of each batch together. ``class_fn``
    maps images to class probabilities ``(N, num_classes)``; it adds class
    coverage and KL (:func:`class_metrics` of the most probable classes) and
    :func:`readable_share` at ``confidence``.
    """
    fns = (feature_fn,) if class_fn is None else (feature_fn, class_fn)
    outputs = _extract(fns, batches)
    fake = outputs[0].reshape(len(outputs[0]), -1).astype(np.float64)
    real = np.asarray(real_features, np.float64)
    kid, kid_std = kernel_inception_distance(real, fake, key, kid_subsets, kid_subset_size)
    result = {
        "fid": fid_from_features(real, fake),
        "kid": kid,
        "kid_std": kid_std,
        **precision_recall(real, fake, k),
        **density_coverage(real, fake),
    }
    if class_fn is not None:
        probabilities = outputs[1]
        result.update(class_metrics(np.argmax(probabilities, -1), num_classes))
        result["readable_share"] = readable_share(probabilities, confidence)
    return result
