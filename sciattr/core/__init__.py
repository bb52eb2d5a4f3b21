"""The shared engine: quadrature, paths, baselines, targets, batching and the IG engine."""

from sciattr.core.baselines import BASELINES, register_baseline
from sciattr.core.batching import Replicas, RowIndex
from sciattr.core.engine import attribute, gradient, gradient_x_input, integrated_gradients, normalize_inputs
from sciattr.core.hooks import replace_output
from sciattr.core.paths import CustomPath, StraightLine
from sciattr.core.quadrature import (
    gauss_legendre,
    quadrature,
    riemann_left,
    riemann_middle,
    riemann_right,
    trapezoid,
)

__all__ = [
    "BASELINES",
    "CustomPath",
    "Replicas",
    "RowIndex",
    "StraightLine",
    "attribute",
    "gauss_legendre",
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "normalize_inputs",
    "quadrature",
    "register_baseline",
    "replace_output",
    "riemann_left",
    "riemann_middle",
    "riemann_right",
    "trapezoid",
]
