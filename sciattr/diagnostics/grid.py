"""Grids of path positions alpha, and one engine run that records the path on such a grid.

Saturation curves and interior-gradient frames look at the model on a grid of ``alpha`` in
``[0, 1]``. :func:`attribute_on_grid` asks the engine for integrated gradients with the trapezoid
rule on exactly that grid and ``store_path=True``: one batched pass gives ``F(x' + a (x - x'))``,
the interior gradients at every node and the integrated gradients of the same grid.
"""

from __future__ import annotations

import warnings

import torch

from sciattr.core.engine import integrated_gradients, normalize_inputs
from sciattr.errors import ConvergenceWarning, InputError, describe
from sciattr.result import Attribution
from sciattr.settings import Settings, resolve_settings

__all__ = ["DEFAULT_ALPHAS", "alpha_grid", "attribute_on_grid", "cumulative_trapezoid", "trapezoid_weights"]

#: Default number of equally spaced grid points on [0, 1].
DEFAULT_ALPHAS = 21


def alpha_grid(alphas=None, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A strictly increasing ``(K,)`` grid in ``[0, 1]`` that contains both end points.

    ``alphas`` may be ``None`` (21 equally spaced points), an integer ``K >= 2`` (``K`` equally
    spaced points) or a sequence/tensor of positions; 0 and 1 are added when missing.
    """
    if alphas is None:
        alphas = DEFAULT_ALPHAS
    if isinstance(alphas, int) and not isinstance(alphas, bool):
        if alphas < 2:
            raise InputError(f"expected at least 2 grid points; got {alphas}")
        return torch.linspace(0.0, 1.0, alphas, dtype=torch.float64).to(dtype=dtype, device=device)
    try:
        grid = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(
            f"expected alphas as an integer or a sequence of numbers; got {describe(alphas)}"
        ) from None
    if not torch.isfinite(grid).all() or (grid < 0).any() or (grid > 1).any():
        raise InputError(f"expected alphas in [0, 1]; got {grid.tolist()[:10]}")
    if grid.numel() > 1 and not (grid[1:] > grid[:-1]).all():
        raise InputError(f"expected strictly increasing alphas; got {grid.tolist()[:10]}")
    ends = [e for e in (0.0, 1.0) if not bool((grid == e).any())]
    grid = torch.sort(torch.cat([grid, torch.tensor(ends, dtype=torch.float64)])).values
    return grid.to(dtype=dtype, device=device)


def trapezoid_weights(alphas: torch.Tensor) -> torch.Tensor:
    """``(K,)`` trapezoid weights on a sorted grid from 0 to 1 (they sum to 1)."""
    gaps = alphas[1:] - alphas[:-1]
    weights = torch.zeros_like(alphas)
    weights[:-1] += gaps / 2
    weights[1:] += gaps / 2
    return weights


def grid_rule(alphas=None, *, dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(alphas, weights)``: the trapezoid rule on exactly this grid, for the engine's ``rule=``.

    With ``store_path=True`` the recorded path is then this grid, e.g. to pass through a domain
    adapter: ``explain_molecules(model, smiles, rule=grid_rule(21), store_path=True)``.
    """
    grid = alpha_grid(alphas, dtype=dtype, device=device)
    return grid, trapezoid_weights(grid)


def cumulative_trapezoid(values: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Running integral ``int_0^{alpha_k} values`` along the first dimension (``(K, ...)``)."""
    gaps = (alphas[1:] - alphas[:-1]).reshape((-1,) + (1,) * (values.dim() - 1))
    pieces = gaps * (values[1:] + values[:-1]) / 2
    return torch.cat([torch.zeros_like(values[:1]), torch.cumsum(pieces, 0)])


def attribute_on_grid(
    model,
    inputs,
    alphas=None,
    *,
    target=None,
    settings: Settings | None = None,
    forward_kwargs=None,
    segments=None,
    **options,
) -> Attribution:
    """Integrated gradients on a grid of alphas (trapezoid rule) with the path recorded.

    Returns the engine's :class:`~sciattr.Attribution`; ``result.path.alphas`` is the grid,
    ``result.path.scores`` the ``(n, K)`` scores and ``result.path.gradients[name]`` the
    ``(K, *input_shape)`` interior gradients. ``settings`` (or keyword options such as
    ``baselines``, ``batch_size``, ``memory_budget``) are those of :class:`sciattr.Settings`; the grid
    decides the steps and the rule.
    """
    s = resolve_settings(settings, options)
    if s.method != "integrated_gradients":
        raise InputError(f"expected method 'integrated_gradients' for a path diagnostic; got {s.method!r}")
    named, _ = normalize_inputs(inputs)
    x0 = next(iter(named.values()))
    grid, weights = grid_rule(alphas, dtype=x0.dtype, device=x0.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = integrated_gradients(
            model, inputs, target=target, forward_kwargs=forward_kwargs, segments=segments,
            settings=s.replace(steps=int(grid.numel()), rule=(grid, weights), store_path=True, path=None),
        )
    for w in caught:  # the grid fixes the nodes: say so, in the words of this function
        if issubclass(w.category, ConvergenceWarning):
            text = str(w.message).replace(f"fixed steps={int(grid.numel())}; leave steps=None (adaptive) or give "
                                          f"more steps", f"a grid of {int(grid.numel())} alphas; give more alphas")
            warnings.warn(f"integrated gradients on the grid: {text}", ConvergenceWarning, stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if result.multi_target:
        raise InputError("expected one target per example for this diagnostic; got several")
    return result
