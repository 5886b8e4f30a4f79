"""Balanced k-means: pseudo-labels for conditioning a GAN on clusters of its own data.

A GAN conditioned on clusters of unlabelled data learns each mode from its own
class code, so its generator no longer has to pass through in-between images
where its latent space crosses from one mode to another; sampled with the
clusters drawn as often as the data holds them, it is still a model of the
whole data (Sage et al. 2018, "Logo Synthesis and Manipulation with Clustered
Generative Adversarial Networks"; Liu et al. 2020, "Diverse Image Generation
via Self-Conditioned GANs"). The clusters here hold equal shares of the data
(Malinen and Fränti 2014, "Balanced K-Means for Clustering"), so drawing them
uniformly, as a conditional GAN draws its classes, draws them as the data does.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from ganjax import data

CLUSTER_SIDE = 32


class Clusters(NamedTuple):
    """``centroids (k, D)`` and each point's cluster, ``labels (N,)`` int32."""

    centroids: np.ndarray
    labels: np.ndarray


def cluster_sizes(n: int, k: int) -> np.ndarray:
    """The sizes of ``k`` balanced clusters of ``n`` points: ``n // k``, one more for the first ``n % k``."""
    return np.full(k, n // k) + (np.arange(k) < n % k)


def squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(N, k)`` squared Euclidean distances."""
    return np.sum(points**2, axis=1, keepdims=True) - 2.0 * points @ centroids.T + np.sum(centroids**2, axis=1)[None, :]


def balanced_assignment(distances: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each point's cluster, cluster ``j`` holding exactly ``sizes[j]`` points, near points first.

    Rounds of proposals: every unplaced point proposes to its nearest cluster
    with room left, and each cluster keeps its nearest proposers up to its room.
    A point goes to its nearest cluster unless nearer points have filled it.

    Args:
      distances: ``(N, k)`` distances (or any costs) of points to clusters.
      sizes: ``(k,)`` sizes that sum to ``N``.
    """
    n, k = distances.shape
    if sizes.shape != (k,) or int(sizes.sum()) != n:
        raise ValueError(f"balanced_assignment: sizes {sizes.tolist()} must be {k} sizes summing to {n}")
    labels = np.full(n, -1, np.int32)
    room = sizes.astype(np.int64)
    while (unplaced := np.flatnonzero(labels < 0)).size:
        costs = np.where(room[None, :] > 0, distances[unplaced], np.inf)
        proposal = np.argmin(costs, axis=1)
        cost = costs[np.arange(unplaced.size), proposal]
        order = np.lexsort((cost, proposal))  # by cluster, nearest first
        by_cluster = proposal[order]
        rank = np.arange(order.size) - np.searchsorted(by_cluster, by_cluster)
        accepted = order[rank < room[by_cluster]]
        labels[unplaced[accepted]] = proposal[accepted]
        room -= np.bincount(proposal[accepted], minlength=k)
    return labels


def kmeans_plus_plus(key: jax.Array, points: np.ndarray, k: int) -> np.ndarray:
    """``k`` starting centroids: a point drawn uniformly, then each next one with probability proportional to
    its squared distance to the nearest centroid so far (Arthur and Vassilvitskii 2007, "k-means++")."""
    keys = jax.random.split(key, k)
    chosen = [int(jax.random.randint(keys[0], (), 0, len(points)))]
    nearest = squared_distances(points, points[chosen])[:, 0]
    for draw in keys[1:]:
        weights = np.maximum(nearest, 0.0).astype(np.float64)
        if weights.sum() > 0:
            p = weights / weights.sum()
        else:  # every point sits on a centroid: any other will do
            p = np.full(len(points), 1.0 / len(points))
        chosen.append(int(jax.random.choice(draw, len(points), p=p)))
        nearest = np.minimum(nearest, squared_distances(points, points[chosen[-1:]])[:, 0])
    return points[chosen]


def balanced_kmeans(key: jax.Array, points: np.ndarray, k: int, iterations: int = 20) -> Clusters:
    """Lloyd's k-means with every cluster holding ``len(points) // k`` points (one more for the first few).

    Starts from :func:`kmeans_plus_plus`'s centroids; each iteration assigns
    the points with :func:`balanced_assignment` and moves each centroid to the
    mean of its points, stopping early once no point changes cluster. The same
    key and points give the same clusters.

    Args:
      key: the starting centroids' key.
      points: ``(N, D)`` float features, ``N >= k``.
      k: the number of clusters.
      iterations: the most assignment steps.

    >>> points = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> balanced_kmeans(jax.random.key(0), points, 2).labels.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    True
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or not 1 <= k <= len(points):
        raise ValueError(f"balanced_kmeans: needs (N, D) points with 1 <= k <= N, got {points.shape} and k={k}")
    if iterations < 1:
        raise ValueError(f"balanced_kmeans: iterations must be at least 1, got {iterations}")
    centroids, labels = kmeans_plus_plus(key, points, k), None
    sizes = cluster_sizes(len(points), k)
    for _ in range(iterations):
        new = balanced_assignment(squared_distances(points, centroids), sizes)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        members = np.eye(k, dtype=np.float32)[labels]  # (N, k) one-hot
        centroids = members.T @ points / sizes[:, None].astype(np.float32)
    return Clusters(centroids, labels)


def cluster_features(images: np.ndarray) -> np.ndarray:
    """What :func:`label_by_clusters` clusters: uint8 NHWC images' pixels in [0, 1], flattened; an image wider than
    ``CLUSTER_SIDE`` is first averaged over squares of the least whole size that brings it within."""
    n, side, _, channels = images.shape
    factor = -(-side // CLUSTER_SIDE)
    pixels = images[:, : side - side % factor, : side - side % factor].astype(np.float32) / np.float32(255.0)
    pooled = pixels.reshape(n, side // factor, factor, side // factor, factor, channels).mean(axis=(2, 4))
    return pooled.reshape(n, -1)


def label_by_clusters(key: jax.Array, dataset: data.ImageDataset, k: int, iterations: int = 20) -> data.ImageDataset:
    """``dataset`` with each image labelled by its cluster of :func:`balanced_kmeans` (from ``key``) of its
    :func:`cluster_features`, and no class names."""
    found = balanced_kmeans(key, cluster_features(dataset.images), k, iterations)
    return dataclasses.replace(dataset, labels=found.labels, class_names=None)
