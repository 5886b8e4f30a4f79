"""Balanced k-means: exact cluster sizes, nearest clusters first, blobs recovered, the same clusters per key."""

import jax
import numpy as np
import pytest

from ganjax import clusters


@pytest.mark.parametrize(
    ("n", "k", "sizes"),
    [(10, 5, [2, 2, 2, 2, 2]), (10, 3, [4, 3, 3]), (7, 7, [1] * 7), (5, 1, [5])],
)
def test_cluster_sizes_split_the_points_as_evenly_as_they_go(n, k, sizes):
    assert clusters.cluster_sizes(n, k).tolist() == sizes


@pytest.mark.parametrize(
    ("distances", "sizes", "expected"),
    [
        # every point's nearest cluster has room: each goes there
        ([[0, 9], [9, 0], [1, 8], [8, 1]], [2, 2], [0, 1, 0, 1]),
        # three points want cluster 0, which holds two: the farthest of them goes to its next cluster
        ([[0, 5], [1, 5], [2, 3], [9, 0]], [2, 2], [0, 0, 1, 1]),
        # unequal room, and a point displaced twice over
        ([[0, 1, 2], [1, 0, 2], [0.5, 0.6, 9], [3, 3, 0]], [1, 1, 2], [0, 1, 2, 2]),
    ],
)
def test_balanced_assignment_fills_each_cluster_to_its_size_nearest_points_first(distances, sizes, expected):
    labels = clusters.balanced_assignment(np.asarray(distances, np.float32), np.asarray(sizes))
    assert labels.tolist() == expected


def test_balanced_assignment_refuses_sizes_that_do_not_add_up():
    with pytest.raises(ValueError, match="summing to 3"):
        clusters.balanced_assignment(np.zeros((3, 2)), np.array([1, 1]))


def blobs(sizes, dim=5, seed=0):
    """Points of well-separated Gaussian blobs of the given sizes, and each point's blob."""
    rng = np.random.default_rng(seed)
    centres = 20.0 * rng.normal(size=(len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def same_partition(a, b) -> bool:
    """Whether two labellings group the points alike, whatever their cluster numbers."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_balanced_kmeans_recovers_equal_blobs_whatever_the_start():
    points, truth = blobs([40, 40, 40, 40])
    for seed in range(5):
        found = clusters.balanced_kmeans(jax.random.key(seed), points, 4)
        assert same_partition(found.labels, truth), seed
        np.testing.assert_allclose(found.centroids[found.labels[0]], points[truth == truth[0]].mean(0), rtol=1e-5)


def test_balanced_kmeans_splits_a_large_blob_rather_than_give_clusters_unequal_sizes():
    points, truth = blobs([60, 20, 20])
    found = clusters.balanced_kmeans(jax.random.key(0), points, 5)
    assert np.bincount(found.labels).tolist() == [20] * 5
    for blob in range(3):  # each cluster lies within one blob
        assert all(len(set(truth[found.labels == c])) == 1 for c in range(5)), blob


def test_balanced_kmeans_is_a_function_of_its_key():
    points, _ = blobs([30, 30, 30], seed=1)
    first, again = (clusters.balanced_kmeans(jax.random.key(3), points + 0.0, 6) for _ in range(2))
    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.centroids, again.centroids)


@pytest.mark.parametrize(
    ("points", "k", "iterations", "match"),
    [
        (np.zeros((4, 2)), 5, 20, "1 <= k <= N"),
        (np.zeros(4), 2, 20, r"\(N, D\)"),
        (np.zeros((4, 2)), 2, 0, "iterations"),
    ],
)
def test_balanced_kmeans_refuses_bad_arguments(points, k, iterations, match):
    with pytest.raises(ValueError, match=match):
        clusters.balanced_kmeans(jax.random.key(0), points, k, iterations)


def test_kmeans_plus_plus_starts_one_centroid_in_each_far_blob():
    points, truth = blobs([50, 50, 50, 50, 50])
    for seed in range(5):
        start = clusters.kmeans_plus_plus(jax.random.key(seed), points, 5)
        nearest = clusters.squared_distances(start, points).argmin(1)
        assert sorted(truth[nearest].tolist()) == [0, 1, 2, 3, 4], seed
