"""Baselines x' (the counterfactual "absence" of the input).

A baseline spec is one of:

* a registered name: ``"zeros"`` (the papers' choice for scaled features and embeddings),
  ``"mean"`` (the mean input row of the batch), ``"uniform"`` (seeded uniform noise in the input's range);
* a number (a constant baseline);
* a tensor broadcastable to the input;
* a callable ``fn(x) -> tensor``.

For named inputs, a dict maps each name to one of the above; missing names use ``"zeros"``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sciattr.errors import InputError, describe

__all__ = ["BASELINES", "register_baseline", "resolve_baseline"]

BASELINES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}


def register_baseline(name: str, fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Register a named baseline ``fn(x) -> tensor``; usable as a decorator."""

    def deco(f):
        BASELINES[name] = f
        return f

    return deco(fn) if fn is not None else deco


@register_baseline("zeros")
def _zeros(x):
    return torch.zeros_like(x)


@register_baseline("mean")
def _mean(x):
    return x.mean(dim=0, keepdim=True).expand_as(x).clone()


@register_baseline("uniform")
def _uniform(x):
    gen = torch.Generator(device="cpu").manual_seed(0)
    lo, hi = x.min(), x.max()
    noise = torch.rand(x.shape, generator=gen, dtype=torch.float64)
    return (lo + (hi - lo) * noise).to(dtype=x.dtype, device=x.device)


def resolve_baseline(spec, x: torch.Tensor, name: str) -> torch.Tensor:
    """Turn a baseline spec into a tensor of exactly ``x``'s shape, dtype and device."""
    if spec is None:
        spec = "zeros"
    if isinstance(spec, str):
        fn = BASELINES.get(spec)
        if fn is None:
            raise InputError(f"unknown baseline {spec!r} for input {name!r}; known: {sorted(BASELINES)}")
        value = fn(x)
    elif isinstance(spec, bool):
        raise InputError(f"baseline for {name!r} must be a name, number, tensor or callable; got {describe(spec)}")
    elif isinstance(spec, (int, float)):
        value = torch.full_like(x, float(spec))
    elif isinstance(spec, torch.Tensor):
        value = spec
    elif callable(spec):
        value = spec(x)
    else:
        raise InputError(
            f"baseline for {name!r} must be a name, number, tensor or callable; got {describe(spec)}"
        )
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value)
    try:
        value = torch.broadcast_to(value.to(dtype=x.dtype, device=x.device), x.shape)
    except RuntimeError:
        raise InputError(
            f"baseline for {name!r} has shape {tuple(value.shape)}; expected {tuple(x.shape)} "
            f"(the input's shape) or a shape broadcastable to it"
        ) from None
    if not torch.isfinite(value).all():
        raise InputError(f"baseline for {name!r} contains non-finite values")
    return value.detach().contiguous()
