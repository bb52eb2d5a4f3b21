"""Rank statistics over many examples at once: average ranks, Spearman correlation and AUROC.

Plain torch, batched over a leading dimension, so that a whole data set of attribution maps is
scored in one call. Ties share their average rank (the convention of Spearman's rho and of the
Mann-Whitney form of the AUROC).
"""

from __future__ import annotations

import torch

from sciattr.errors import InputError, describe

__all__ = ["auroc", "average_ranks", "spearman"]


def _as_float64(values, what: str) -> torch.Tensor:
    t = torch.as_tensor(values)
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise InputError(f"expected {what} as a real-valued tensor; got {describe(values)}")
    if t.dim() == 0:
        raise InputError(f"expected {what} with at least one dimension; got a scalar")
    return t.to(torch.float64)


def average_ranks(values) -> torch.Tensor:
    """1-based ranks along the last dimension, ties sharing their average rank.

    Parameters
    ----------
    values:
        ``(..., m)`` real values.

    Returns
    -------
    torch.Tensor
        ``(..., m)`` float64 ranks in ``[1, m]``.

    Example
    -------
    >>> average_ranks(torch.tensor([3.0, 1.0, 3.0])).tolist()
    [2.5, 1.0, 2.5]
    """
    x = _as_float64(values, "values").contiguous()
    ordered = torch.sort(x, dim=-1).values
    below = torch.searchsorted(ordered, x, right=False)
    up_to = torch.searchsorted(ordered, x, right=True)
    # the tied block occupies 0-based positions below .. up_to - 1
    return (below + up_to + 1).to(torch.float64) / 2.0


def spearman(a, b) -> torch.Tensor:
    """Spearman rank correlation of ``a`` and ``b`` along the last dimension.

    Parameters
    ----------
    a, b:
        ``(..., m)`` real values of one shape.

    Returns
    -------
    torch.Tensor
        ``(...)`` float64 correlations in ``[-1, 1]``; ``nan`` where either side is constant
        or ``m < 2``.
    """
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.shape != rb.shape:
        raise InputError(f"expected a and b of one shape; got {tuple(ra.shape)} and {tuple(rb.shape)}")
    ca = ra - ra.mean(-1, keepdim=True)
    cb = rb - rb.mean(-1, keepdim=True)
    denom = torch.sqrt((ca * ca).sum(-1) * (cb * cb).sum(-1))
    rho = (ca * cb).sum(-1) / denom
    return torch.where(denom > 0, rho, torch.full_like(rho, float("nan")))


def auroc(scores, labels, valid=None) -> torch.Tensor:
    """Area under the ROC curve of ``scores`` for boolean ``labels``, along the last dimension.

    It is the probability that a random positive scores above a random negative, ties counting
    one half (the Mann-Whitney statistic).

    Parameters
    ----------
    scores:
        ``(..., m)`` real values (higher means "more likely positive").
    labels:
        ``(..., m)`` booleans.
    valid:
        Optional ``(..., m)`` booleans; entries outside it are ignored (padding of examples
        with fewer features).

    Returns
    -------
    torch.Tensor
        ``(...)`` float64; ``nan`` where there are no positives or no negatives.
    """
    s = _as_float64(scores, "scores")
    y = torch.as_tensor(labels, device=s.device)
    if y.dtype != torch.bool or y.shape != s.shape:
        raise InputError(f"expected boolean labels of shape {tuple(s.shape)}; got {describe(labels)}")
    keep = torch.ones_like(y) if valid is None else torch.as_tensor(valid, device=s.device)
    if keep.dtype != torch.bool or keep.shape != s.shape:
        raise InputError(f"expected a boolean valid mask of shape {tuple(s.shape)}; got {describe(valid)}")
    # ignored entries rank below every kept entry, which shifts the kept ranks by their count
    ranks = average_ranks(torch.where(keep, s, torch.full_like(s, -torch.inf)))
    n_ignored = (~keep).sum(-1).to(torch.float64)
    pos = y & keep
    n_pos = pos.sum(-1).to(torch.float64)
    n_neg = (keep & ~y).sum(-1).to(torch.float64)
    rank_sum = torch.where(pos, ranks, torch.zeros_like(ranks)).sum(-1) - n_pos * n_ignored
    area = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), area, torch.full_like(area, float("nan")))
