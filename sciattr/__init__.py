"""sciattr: integrated and interior gradients for molecular graph networks and text models.

The core is domain-free::

    from sciattr import integrated_gradients
    result = integrated_gradients(model, {"atoms": atoms, "pairs": pairs}, target=0)
    result.attributions["atoms"], result.completeness_gap, result.converged

Every option (steps, rule, tolerance, baselines, ...) is defined once, in :class:`Settings`;
keyword arguments build one.

Domains live in :mod:`sciattr.chem` and :mod:`sciattr.text` (optional dependencies).
"""

from sciattr.core import (
    CustomPath,
    StraightLine,
    attribute,
    gradient,
    gradient_x_input,
    integrated_gradients,
    quadrature,
    register_baseline,
)
from sciattr.errors import (
    BaselineWarning,
    ConvergenceWarning,
    InputError,
    MissingDependencyError,
    ModelOutputError,
    SciAttrError,
    TargetError,
)
from sciattr.result import Attribution, PathRecord
from sciattr.settings import Settings
from sciattr.storage import load

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "BaselineWarning",
    "ConvergenceWarning",
    "CustomPath",
    "InputError",
    "MissingDependencyError",
    "ModelOutputError",
    "PathRecord",
    "SciAttrError",
    "Settings",
    "StraightLine",
    "TargetError",
    "attribute",
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "load",
    "quadrature",
    "register_baseline",
]
