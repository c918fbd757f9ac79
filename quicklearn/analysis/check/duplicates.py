"""Grouping duplicates: exact ones by a content key, near ones by perceptual hash (Hamming distance) or by embedding
cosine similarity, and pairs joined into groups (union-find).

    groups = exact_groups(keys)                               # [[0, 7], [3, 9, 12]]: items with the same key
    pairs = hamming_pairs(phash(images), max_distance=6)      # [(i, j, distance)]
    pairs = cosine_pairs(embeddings, min_similarity=0.95)     # [(i, j, similarity)]
    groups = join_pairs(n, pairs)

The pairwise passes run in blocks (a 4,000-item set is 16 M comparisons, one matrix product per block), so memory
stays at block x n whatever the data set size.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np

__all__ = ["exact_groups", "join_pairs", "phash", "hamming_pairs", "cosine_pairs", "cosine_knn"]

_BLOCK = 1024


def exact_groups(keys: Sequence[Hashable]) -> list[list[int]]:
    """Indices that share a key (a content hash, a normalized text), groups of two or more, in first-seen order."""
    by_key: dict[Hashable, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        if k is not None:
            by_key[k].append(i)
    return [g for g in by_key.values() if len(g) > 1]


def join_pairs(n: int, pairs: Sequence[tuple[int, int, float]]) -> list[list[int]]:
    """Connected groups of the pairs (union-find over n items), each sorted, groups in order of their first item."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in sorted({i for p in pairs for i in p[:2]}):
        groups[find(i)].append(i)
    return [g for _, g in sorted(groups.items()) if len(g) > 1]


def phash(images: "np.ndarray") -> np.ndarray:
    """64-bit perceptual hashes (DCT hash: the 8x8 lowest frequencies of the 32x32 grayscale image, each bit above
    or below their median), one uint64 per image of a uint8 (N, C, H, W) array. Vectorized over the decoded-image
    cache rather than imagehash's one-PIL-image-at-a-time: the same hash, no second decode."""
    import torch
    import torch.nn.functional as F
    from scipy.fft import dctn

    x = torch.as_tensor(np.asarray(images)).float()
    gray = x.mean(1, keepdim=True) if x.shape[1] != 1 else x
    small = F.interpolate(gray, size=(32, 32), mode="area")[:, 0].numpy()
    low = dctn(small, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(small), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel()


def hamming_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, float]]:
    """Pairs (i < j) whose 64-bit hashes differ in at most `max_distance` bits, with that distance."""
    h = np.asarray(hashes, dtype=np.uint64)
    out: list[tuple[int, int, float]] = []
    for s in range(0, len(h), _BLOCK):
        d = np.bitwise_count(h[s:s + _BLOCK, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii + s
        out += [(int(i + s), int(j), float(d[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return out


def _normalized(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def cosine_pairs(emb: np.ndarray, min_similarity: float) -> list[tuple[int, int, float]]:
    """Pairs (i < j) of rows whose cosine similarity is at least `min_similarity`, with it."""
    e = _normalized(emb)
    out: list[tuple[int, int, float]] = []
    for s in range(0, len(e), _BLOCK):
        sim = e[s:s + _BLOCK] @ e.T
        ii, jj = np.nonzero(sim >= min_similarity)
        keep = jj > ii + s
        out += [(int(i + s), int(j), float(sim[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return out


def cosine_knn(emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by cosine similarity: (indices (N, k), similarities (N, k)), nearest first."""
    e = _normalized(emb)
    k = max(1, min(k, len(e) - 1))
    idx = np.zeros((len(e), k), dtype=np.int64)
    sims = np.zeros((len(e), k), dtype=np.float32)
    for s in range(0, len(e), _BLOCK):
        sim = e[s:s + _BLOCK] @ e.T
        rows = np.arange(len(sim))
        sim[rows, rows + s] = -np.inf  # not itself
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        order = np.argsort(-top_sim, axis=1)
        idx[s:s + len(sim)] = np.take_along_axis(top, order, axis=1)
        sims[s:s + len(sim)] = np.take_along_axis(top_sim, order, axis=1)
    return idx, sims
