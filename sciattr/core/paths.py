"""Paths from a baseline x' to an input x.

Integrated gradients along a path gamma (Gradients of Counterfactuals, Eq. 5)::

    attr_i = integral_0^1 dF(gamma(a))/dgamma_i * dgamma_i/da da

A path is an object with ``point(x, baseline, alpha)`` and ``velocity(x, baseline, alpha)``;
``alpha`` is broadcastable against ``x`` (one value per row). The straight line is the default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sciattr.errors import InputError, describe

__all__ = ["CustomPath", "StraightLine", "resolve_path", "straight_line"]


class StraightLine:
    """gamma(a) = x' + a (x - x'); its velocity is the constant x - x'."""

    constant_velocity = True

    def point(self, x: torch.Tensor, baseline: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return torch.lerp(baseline, x, alpha) if alpha.dtype == x.dtype else baseline + alpha * (x - baseline)

    def velocity(self, x: torch.Tensor, baseline: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return x - baseline

    def __repr__(self) -> str:
        return "StraightLine()"


straight_line = StraightLine()


class CustomPath:
    """A smooth path given by ``gamma(x, baseline, alpha)`` and optionally its derivative.

    Parameters
    ----------
    point:
        ``gamma(x, baseline, alpha) -> tensor`` with the shape of ``x``; must satisfy
        ``gamma(.., 0) = baseline`` and ``gamma(.., 1) = x`` for completeness to hold.
    velocity:
        ``dgamma/dalpha`` with the same signature. When omitted it is computed by forward-mode
        automatic differentiation of ``point``.
    """

    constant_velocity = False

    def __init__(self, point: Callable, velocity: Callable | None = None, name: str = "custom"):
        if not callable(point):
            raise InputError(f"path point must be callable; got {describe(point)}")
        self._point = point
        self._velocity = velocity
        self.name = name

    def point(self, x, baseline, alpha):
        return self._point(x, baseline, alpha)

    def velocity(self, x, baseline, alpha):
        if self._velocity is not None:
            return self._velocity(x, baseline, alpha)
        _, tangent = torch.func.jvp(lambda a: self._point(x, baseline, a), (alpha,), (torch.ones_like(alpha),))
        return tangent

    def __repr__(self) -> str:
        return f"CustomPath({self.name})"


def resolve_path(path, names) -> dict:
    """Map every input name to a path object."""
    if path is None or path == "straight" or path == "straight_line":
        return {name: straight_line for name in names}
    if hasattr(path, "point") and hasattr(path, "velocity"):
        return {name: path for name in names}
    if callable(path):
        custom = CustomPath(path)
        return {name: custom for name in names}
    if isinstance(path, dict):
        unknown = set(path) - set(names)
        if unknown:
            raise InputError(f"path given for unknown inputs {sorted(unknown)}; inputs are {list(names)}")
        out = {}
        for name in names:
            p = path.get(name)
            out[name] = resolve_path(p, [name])[name]
        return out
    raise InputError(
        f"path must be None, a path object, a callable gamma(x, baseline, alpha) or a dict of those; "
        f"got {describe(path)}"
    )
