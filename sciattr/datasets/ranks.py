"""Rank statistics used to score attributions: average ranks, AUROC and Spearman correlation.

Plain NumPy so that scoring needs no SciPy or scikit-learn.
"""

from __future__ import annotations

import numpy as np

from sciattr.errors import InputError

__all__ = ["auroc", "average_ranks", "spearman"]


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (1-D), ties sharing their average rank."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise InputError(f"expected a 1-D array; got shape {x.shape}")
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    mean_rank = (starts + ends + 1) / 2.0  # average of 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive``.

    Equals the probability that a random positive scores above a random negative (ties count
    one half). ``nan`` when there are no positives or no negatives.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise InputError(f"expected scores and labels of one equal 1-D shape; got {s.shape} and {y.shape}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(a, b) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (``nan`` if either is constant)."""
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.shape != rb.shape:
        raise InputError(f"expected two arrays of equal length; got {ra.shape} and {rb.shape}")
    if ra.size < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
