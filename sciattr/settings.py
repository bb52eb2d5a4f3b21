"""One settings object for every attribution call: the engine, the adapters, the diagnostics and the CLI.

Each option is defined and documented here, once. Every public entry point takes
``settings=Settings(...)`` and, as a convenience, the same options as keywords (which build or
update a :class:`Settings`). Spellings used by other libraries or by earlier versions raise an
error naming the current word instead of being accepted silently.

Example
-------
>>> s = Settings(tolerance=0.01)
>>> s.replace(steps=64).steps
64
>>> resolve_settings(None, {"baseline": "zeros"})
Traceback (most recent call last):
...
sciattr.errors.InputError: unknown option 'baseline': use 'baselines' (one word for every input's reference point)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sciattr.errors import InputError, describe

__all__ = ["DEFAULT_TOLERANCE", "RENAMED", "Settings", "resolve_settings"]

#: The papers' advice: "check that the attributions add up to within 5 %".
DEFAULT_TOLERANCE = 0.05

#: Old or foreign spellings -> the word sciattr uses, with a reason shown in the error.
RENAMED: dict[str, str] = {
    "baseline": "baselines",
    "task": "target",
    "targets": "target",
    "n_steps": "steps",
    "num_steps": "steps",
    "internal_batch_size": "batch_size",
    "quadrature": "rule",
    "integration_rule": "rule",
    "tol": "tolerance",
}

_WHY = {
    "baselines": "one word for every input's reference point",
    "target": "a task index or name is a target",
    "steps": "the number of path nodes",
    "batch_size": "replicas (example x node) per forward pass",
    "rule": "the quadrature rule along the path",
    "tolerance": "the completeness tolerance",
}

METHODS = ("integrated_gradients", "gradient", "gradient_x_input")


@dataclass(frozen=True)
class Settings:
    """How attributions are computed. Frozen: derive variants with :meth:`replace`.

    Attributes
    ----------
    method:
        ``"integrated_gradients"`` (default), ``"gradient"`` (saliency) or ``"gradient_x_input"``.
    steps:
        ``None`` (default) or ``"auto"``: adaptive -- start from 16 intervals and refine, reusing
        every node already evaluated, only the examples whose completeness gap is above
        ``tolerance``, up to ``max_steps``. An integer fixes the step count -- intervals for the
        trapezoid rule (``steps + 1`` nodes with both end points, so that levels nest), nodes for
        the Riemann and Gauss-Legendre rules: then nothing is refined (unless ``tolerance`` is also given), but the gap is still checked and
        a :class:`~sciattr.errors.ConvergenceWarning` names the examples above the tolerance.
    rule:
        Quadrature rule along the path. ``None`` (default): the nested trapezoid rule when steps are
        adaptive (each refinement reuses every node; safe for piecewise-linear ReLU networks, whose
        path integrands are piecewise constant, and second order on smooth ones) and
        Gauss-Legendre when ``steps`` is fixed (exact for polynomials of degree ``2 steps - 1``).
        Or a name: ``"trapezoid"``, ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``,
        ``"gausslegendre"``, or an explicit ``(alphas, weights)`` pair. Trapezoid, left and right
        rules refine by reusing their nodes; the others are recomputed at each refinement.
    tolerance:
        Completeness tolerance: ``|sum(attributions) - (F(x) - F(x'))| <= tolerance * scale``
        with ``scale = max(|F(x) - F(x')|, sum |attributions|)`` (see
        :attr:`sciattr.Attribution.relative_gap`). ``None`` means the default 5 % (and, with an
        integer ``steps``, "check but do not refine").
    max_steps:
        Most intervals adaptive refinement may reach (default 1024).
    baselines:
        The reference point(s): ``None`` for the domain's default (zeros), a name
        (``"zeros"``, ``"mean"``, ``"uniform"``; chemistry ``"dummy"``, ``"skeleton"``; text ``"pad"``,
        ``"mask"``, ...), a number, a tensor, a callable, or a dict per named input.
    batch_size:
        Most replicas (example x node) per forward pass.
    memory_budget:
        Most autograd memory per pass, bytes or a string like ``"2GiB"`` (default 32 MiB on a
        CPU, up to 4 GiB on a GPU). Results do not depend on the chunking beyond the order of
        floating-point sums (the last bits in float32).
    store_path:
        Record ``F(gamma(alpha))`` and the interior gradients at every node.
    path:
        ``None`` for the straight line; a path object, a callable ``gamma(x, baseline, alpha)`` or a
        dict name -> path (Eq. 5 of the paper).
    """

    method: str = "integrated_gradients"
    steps: int | str | None = None
    rule: Any = None
    tolerance: float | None = None
    max_steps: int = 1024
    baselines: Any = None
    batch_size: int | None = None
    memory_budget: int | str | None = None
    store_path: bool = False
    path: Any = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"method must be one of {list(METHODS)}; got {self.method!r}")
        steps = self.steps
        if steps == "auto":
            object.__setattr__(self, "steps", None)
        elif steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise InputError(f"steps must be a positive integer, 'auto' or None; got {describe(steps)}")
        tol = self.tolerance
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1e300):
            raise InputError(f"tolerance must be a positive number; got {describe(tol)}")
        ms = self.max_steps
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
            raise InputError(f"max_steps must be a positive integer; got {describe(ms)}")
        if ms > MAX_STEPS_LIMIT:
            raise InputError(f"max_steps must be at most {MAX_STEPS_LIMIT}; got {ms}")
        if isinstance(self.steps, int) and self.steps > MAX_STEPS_LIMIT:
            raise InputError(f"steps must be at most {MAX_STEPS_LIMIT} (a path finer than that only adds "
                             f"rounding error); got {self.steps}")
        bs = self.batch_size
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
            raise InputError(f"batch_size must be a positive integer or None; got {describe(bs)}")
        if not isinstance(self.store_path, bool):
            raise InputError(f"store_path must be True or False; got {describe(self.store_path)}")

    # ------------------------------------------------------------------ derived
    @property
    def adaptive(self) -> bool:
        """Whether examples are refined until they meet the tolerance."""
        return self.method == "integrated_gradients" and (self.steps is None or self.tolerance is not None)

    @property
    def check_tolerance(self) -> float:
        """The tolerance completeness is checked against (the default 5 % when none is given)."""
        return DEFAULT_TOLERANCE if self.tolerance is None else float(self.tolerance)

    @property
    def first_steps(self) -> int:
        """Intervals of the first level: ``steps`` when fixed, else 16 (capped by ``max_steps``)."""
        return min(16, self.max_steps) if self.steps is None else int(self.steps)

    @property
    def resolved_rule(self):
        """The rule actually used: ``rule``, or the default for adaptive/fixed steps."""
        if self.rule is not None:
            return self.rule
        return "trapezoid" if self.adaptive else "gausslegendre"

    def replace(self, **changes) -> Settings:
        """A copy with ``changes`` applied (the same names and checks as the constructor)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """A JSON-friendly description (used in result metadata and run manifests)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, (bool, int, float, str)):
                out[f.name] = value
            elif isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, str)) for v in value):
                out[f.name] = list(value)
            elif callable(getattr(value, "describe", None)):  # e.g. ReferenceBaselines: what decides its draws
                out[f.name] = value.describe()
            else:
                out[f.name] = describe(value) if not callable(value) else getattr(value, "__qualname__", "callable")
        return out


#: Hard cap on steps: beyond this, quadrature nodes stop adding precision and only add memory.
MAX_STEPS_LIMIT = 1 << 16

_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))


def _check_names(options: Mapping[str, Any], extra: frozenset = frozenset()) -> None:
    for key in options:
        if key in _FIELDS or key in extra:
            continue
        if key in RENAMED:
            new = RENAMED[key]
            raise InputError(f"unknown option {key!r}: use {new!r} ({_WHY.get(new, new)})")
        raise InputError(f"unknown option {key!r}; the options are {sorted(_FIELDS | extra)}")


def resolve_settings(settings: Settings | None = None, options: Mapping[str, Any] | None = None,
                     **defaults) -> Settings:
    """The settings of one call: ``settings`` (or ``Settings(**defaults)``) updated by keyword ``options``.

    ``defaults`` are a domain's own defaults (e.g. ``baselines="dummy"``), applied only where neither
    ``settings`` nor ``options`` decide. Unknown names, and old spellings such as ``baseline`` or
    ``task``, raise :class:`~sciattr.errors.InputError` naming the current word.
    """
    options = dict(options or {})
    _check_names(options)
    _check_names(defaults)
    if settings is None:
        return Settings(**{**defaults, **options})
    if not isinstance(settings, Settings):
        raise InputError(f"settings must be a sciattr.Settings; got {describe(settings)}")
    return settings.replace(**options) if options else settings
