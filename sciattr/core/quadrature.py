"""Quadrature rules on [0, 1] for the path integral of integrated gradients.

Each rule is a pure function ``rule(n, dtype, device) -> (alphas, weights)`` returning two
``(n,)`` tensors in the requested dtype, with weights that sum to 1 (up to rounding), so that
``sum(w * f(alpha))`` approximates ``integral_0^1 f``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from sciattr.errors import InputError, describe

Rule = Callable[[int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]]

__all__ = [
    "RULES",
    "gauss_legendre",
    "quadrature",
    "riemann_left",
    "riemann_middle",
    "riemann_right",
    "trapezoid",
]


def _check_n(n, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise InputError(f"steps must be an integer >= {minimum}; got {describe(n)}")
    return int(n)


def _as(values: np.ndarray, dtype, device) -> torch.Tensor:
    # computed in float64, cast once: float64 stays exact to the last digit
    return torch.as_tensor(values, dtype=torch.float64).to(dtype=dtype, device=device)


def riemann_left(n: int, dtype=torch.float64, device="cpu"):
    """Left Riemann sum: alphas ``0, 1/n, ..., (n-1)/n``, weights ``1/n``."""
    n = _check_n(n)
    return _as(np.arange(n) / n, dtype, device), _as(np.full(n, 1.0 / n), dtype, device)


def riemann_right(n: int, dtype=torch.float64, device="cpu"):
    """Right Riemann sum: alphas ``1/n, ..., 1``, weights ``1/n`` (the papers' formula)."""
    n = _check_n(n)
    return _as(np.arange(1, n + 1) / n, dtype, device), _as(np.full(n, 1.0 / n), dtype, device)


def riemann_middle(n: int, dtype=torch.float64, device="cpu"):
    """Midpoint rule: alphas ``(k + 1/2)/n``, weights ``1/n``."""
    n = _check_n(n)
    return _as((np.arange(n) + 0.5) / n, dtype, device), _as(np.full(n, 1.0 / n), dtype, device)


def trapezoid(n: int, dtype=torch.float64, device="cpu"):
    """Trapezoid rule on ``n`` equally spaced nodes including both ends; weights sum to exactly 1.

    ``n = 1`` degenerates to the single node ``alpha = 1`` (gradient x input).
    """
    n = _check_n(n)
    if n == 1:
        return _as(np.ones(1), dtype, device), _as(np.ones(1), dtype, device)
    w = np.full(n, 1.0 / (n - 1))
    w[0] *= 0.5
    w[-1] *= 0.5
    return _as(np.linspace(0.0, 1.0, n), dtype, device), _as(w, dtype, device)


def _newton_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes/weights by Newton's method on P_n (O(n^2); the eigenvalue route is O(n^3)).

    Half the nodes are computed (the rule is symmetric), from Tricomi's initial guesses.
    """
    m = (n + 1) // 2
    x = np.cos(np.pi * (np.arange(1, m + 1) - 0.25) / (n + 0.5))
    for _ in range(50):
        p0, p1 = np.ones_like(x), x.copy()
        for j in range(2, n + 1):
            p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
        dp = n * (x * p1 - p0) / (x * x - 1.0)
        step = p1 / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-16:
            break
    p0, p1 = np.ones_like(x), x.copy()
    for j in range(2, n + 1):
        p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
    dp = n * (x * p1 - p0) / (x * x - 1.0)
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    if n % 2:
        x[-1] = 0.0
    xs = np.concatenate([-x, x[::-1][n % 2:]])
    ws = np.concatenate([w, w[::-1][n % 2:]])
    return xs, ws


@functools.lru_cache(maxsize=64)
def _legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n) if n <= 128 else _newton_legendre(n)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_legendre(n: int, dtype=torch.float64, device="cpu"):
    """Gauss-Legendre rule mapped to [0, 1]: exact for polynomials of degree ``2n - 1``.

    The nodes never include 0 or 1; the engine evaluates the end points separately (forward
    only) so that completeness can be checked.
    """
    n = _check_n(n)
    x, w = _legendre_nodes(n)
    return _as(0.5 * (x + 1.0), dtype, device), _as(0.5 * w, dtype, device)


RULES: dict[str, Rule] = {
    "riemann_left": riemann_left,
    "riemann_right": riemann_right,
    "riemann_middle": riemann_middle,
    "riemann_trapezoid": trapezoid,
    "trapezoid": trapezoid,
    "gausslegendre": gauss_legendre,
    "gauss_legendre": gauss_legendre,
}


def quadrature(method, n: int, dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Resolve ``method`` (a rule name, a rule function, or an explicit ``(alphas, weights)`` pair).

    Returns ``(alphas, weights)`` as ``(n,)`` tensors of ``dtype`` on ``device``.
    """
    if isinstance(method, str):
        rule = RULES.get(method.lower())
        if rule is None:
            raise InputError(f"method must be one of {sorted(RULES)}; got {method!r}")
        return rule(n, dtype, device)
    if callable(method):
        alphas, weights = method(n, dtype, device)
    elif isinstance(method, (tuple, list)) and len(method) == 2:
        alphas, weights = method
    else:
        raise InputError(
            f"method must be a rule name, a rule function or an (alphas, weights) pair; got {describe(method)}"
        )
    alphas = torch.as_tensor(alphas, dtype=torch.float64).to(dtype=dtype, device=device).reshape(-1)
    weights = torch.as_tensor(weights, dtype=torch.float64).to(dtype=dtype, device=device).reshape(-1)
    if alphas.shape != weights.shape or alphas.numel() == 0:
        raise InputError(
            f"alphas and weights must be non-empty and of equal length; got {alphas.numel()} and {weights.numel()}"
        )
    if not torch.isfinite(alphas).all() or not torch.isfinite(weights).all():
        raise InputError("alphas and weights must be finite")
    return alphas, weights
