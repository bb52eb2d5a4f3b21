"""Scalar rank statistics for 1-D data sets: thin float wrappers over :mod:`sciattr.diagnostics.ranking`.

The batched, tensor-valued versions live in :mod:`sciattr.diagnostics.ranking`; these return
plain Python floats (or a NumPy array of ranks) for the data-set scorers and model cards.
"""

from __future__ import annotations

import numpy as np
import torch

from sciattr.diagnostics import ranking
from sciattr.errors import InputError

__all__ = ["auroc", "average_ranks", "spearman"]


def _vector(values, dtype, what: str) -> torch.Tensor:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise InputError(f"expected {what} as a 1-D array; got shape {array.shape}")
    return torch.from_numpy(array)


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (1-D), ties sharing their average rank."""
    return ranking.average_ranks(_vector(values, np.float64, "values")).numpy()


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive``.

    Equals the probability that a random positive scores above a random negative (ties count
    one half). ``nan`` when there are no positives or no negatives.
    """
    s, y = _vector(scores, np.float64, "scores"), _vector(positive, bool, "labels")
    if s.shape != y.shape:
        raise InputError(f"expected scores and labels of one equal 1-D shape; got {tuple(s.shape)} and "
                         f"{tuple(y.shape)}")
    return float(ranking.auroc(s, y))


def spearman(a, b) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (``nan`` if either is constant)."""
    ra, rb = _vector(a, np.float64, "a"), _vector(b, np.float64, "b")
    if ra.shape != rb.shape:
        raise InputError(f"expected two arrays of equal length; got {tuple(ra.shape)} and {tuple(rb.shape)}")
    if ra.numel() < 2:
        return float("nan")
    return float(ranking.spearman(ra, rb))
