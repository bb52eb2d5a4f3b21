"""The one result object returned by every attribution call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sciattr.errors import InputError

__all__ = ["Attribution", "PathRecord"]


def _row_sums(a: torch.Tensor, multi_target: bool) -> torch.Tensor:
    """Sum over every dimension but the first (and, for several targets, the last); works on 0 rows."""
    dims = tuple(range(1, a.dim() - 1 if multi_target else a.dim()))
    return a.sum(dims) if dims else a


def _ratio(gap: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    tiny = torch.finfo(denom.dtype).tiny if denom.is_floating_point() else 0
    return torch.where(denom > tiny, gap / denom.clamp_min(tiny), torch.where(gap > tiny, torch.inf, 0.0))


@dataclass
class PathRecord:
    """What happened along the path, recorded when ``store_path=True``.

    Attributes
    ----------
    alphas:
        ``(K,)`` path positions, ascending, including the end points 0 and 1.
    scores:
        ``(n_examples, K)`` -- or ``(n_examples, K, T)`` for several targets -- the score
        ``F(gamma(alpha))`` at each position (the saturation curve for the straight line).
    gradients:
        name -> ``(K, *input_shape)`` (``(K, *input_shape, T)`` for several targets): the
        interior gradients ``dF/dgamma`` at each position.
    """

    alphas: torch.Tensor
    scores: torch.Tensor
    gradients: dict[str, torch.Tensor]

    def to(self, device) -> PathRecord:
        return PathRecord(self.alphas.to(device), self.scores.to(device),
                          {k: v.to(device) for k, v in self.gradients.items()})


@dataclass
class Attribution:
    """Attributions of a model's scores to named inputs, with everything needed to check them.

    Shapes: ``n`` examples; for a single target ``attributions[name]`` has the input's shape,
    ``forward_x``/``forward_baseline``/``completeness_gap`` have shape ``(n,)``; with ``T``
    targets a trailing ``T`` dimension is added to each. Ragged inputs (atoms of many
    molecules) carry ``segments[name]``: the example index of each row.
    """

    attributions: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    baselines: dict[str, torch.Tensor]
    forward_x: torch.Tensor
    forward_baseline: torch.Tensor
    method: str
    rule: str
    steps: torch.Tensor  # (n,) steps used per example
    target: str
    multi_target: bool = False
    segments: dict[str, torch.Tensor] | None = None
    path: PathRecord | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``(n,)`` model evaluations (example x path node, end points included) spent per example.
    evaluations: torch.Tensor | None = None
    #: ``(n,)`` whether each example met the completeness tolerance.
    converged: torch.Tensor | None = None
    #: Per example, which term of the stopping rule it met: ``"delta"`` (``|gap| <= tol |F(x) - F(x')|``),
    #: ``"scale"`` (only against ``sum |attributions|``), ``"exact"`` (agreement to rounding),
    #: ``"n/a"`` (methods without a completeness property) or ``""`` (not met).
    criterion: list[str] | None = None
    #: ``(n,)`` estimated quadrature error (sum over features of the change between the last two
    #: levels; NaN with a single level of a non-nested rule).
    error_estimate: torch.Tensor | None = None
    #: The completeness tolerance the examples were checked against.
    tolerance: float | None = None

    # ------------------------------------------------------------------ basic views
    @property
    def names(self) -> list[str]:
        return list(self.attributions)

    @property
    def n_examples(self) -> int:
        return int(self.forward_x.shape[0])

    def per_example(self, name: str | None = None) -> torch.Tensor:
        """Sum of attributions of each example: over all inputs, or over input ``name``.

        Returns ``(n,)`` or ``(n, T)``.
        """
        names = self.names if name is None else [name]
        total = torch.zeros_like(self.forward_x)
        for nm in names:
            if nm not in self.attributions:
                raise InputError(f"no input named {nm!r}; inputs are {self.names}")
            a = self.attributions[nm]
            if self.multi_target:
                rows = _row_sums(a, True)
            else:
                rows = _row_sums(a, False)
            if self.segments is not None and nm in self.segments:
                total = total.index_add(0, self.segments[nm].to(a.device), rows.to(total.dtype))
            else:
                total = total + rows.to(total.dtype)
        return total

    @property
    def delta(self) -> torch.Tensor:
        """``F(x) - F(x')`` per example (and target)."""
        return self.forward_x - self.forward_baseline

    @property
    def completeness_gap(self) -> torch.Tensor:
        """``sum(attributions) - (F(x) - F(x'))`` per example (and target)."""
        return self.per_example() - self.delta

    def attribution_scale(self) -> torch.Tensor:
        """``sum |attributions|`` per example (and target): the size of what a reader looks at."""
        names = self.names
        total = torch.zeros_like(self.forward_x)
        for nm in names:
            a = self.attributions[nm].abs()
            rows = _row_sums(a, self.multi_target)
            if self.segments is not None and nm in self.segments:
                total = total.index_add(0, self.segments[nm].to(a.device), rows.to(total.dtype))
            else:
                total = total + rows.to(total.dtype)
        return total

    @property
    def relative_gap(self) -> torch.Tensor:
        """``|completeness_gap| / max(|F(x) - F(x')|, sum |attributions|)`` (0 where all are 0).

        The scale does not vanish when ``F(x) ~ F(x')`` (where ``|gap| / |F(x) - F(x')|`` is
        ill posed: a molecule scoring like its baseline can carry atoms of +-1); it equals
        ``|F(x) - F(x')|`` whenever the attributions all share one sign. The stopping rule of
        adaptive steps uses the same measure (see :func:`sciattr.attribute`).
        """
        denom = torch.maximum(self.delta.abs(), self.attribution_scale())
        return _ratio(self.completeness_gap.abs(), denom)

    @property
    def gap_to_delta(self) -> torch.Tensor:
        """``|completeness_gap| / |F(x) - F(x')|`` (infinite where ``F(x) = F(x')`` but the gap is not)."""
        return _ratio(self.completeness_gap.abs(), self.delta.abs())

    def example_rows(self, name: str, example: int) -> torch.Tensor:
        """Attributions of input ``name`` belonging to one example."""
        if not 0 <= example < self.n_examples:
            raise InputError(f"example must lie in [0, {self.n_examples - 1}]; got {example}")
        a = self.attributions[name]
        if self.segments is not None and name in self.segments:
            return a[self.segments[name].to(a.device) == example]
        return a[example]

    def specialize(self, cls, **extra) -> Attribution:
        """The same result as an instance of a domain subclass ``cls`` with extra fields."""
        if not (isinstance(cls, type) and issubclass(cls, Attribution)):
            raise InputError(f"cls must be a subclass of Attribution; got {cls!r}")
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(Attribution)}
        return cls(**base, **extra)

    # ------------------------------------------------------------------ presentation
    def summary(self, max_rows: int = 20) -> str:
        """A plain-text table: F(x), F(x'), sum of attributions and the completeness gap."""
        fx, fb, tot, gap = self.forward_x, self.forward_baseline, self.per_example(), self.completeness_gap
        if self.multi_target:
            fx, fb, tot, gap = (t[:, 0] for t in (fx, fb, tot, gap))
        lines = [f"{self.method} ({self.rule}, steps={int(self.steps.max())}, target={self.target})",
                 (f"{'example':>7} {'F(x)':>12} {'F(baseline)':>12} {'sum attr':>12} {'gap':>10} {'rel gap':>8} "
                 f"{'evals':>6} {'met':>4}")]
        rel = self.relative_gap if not self.multi_target else self.relative_gap[:, 0]
        evals = self.evaluations if self.evaluations is not None else self.steps
        met = self.converged if self.converged is not None else torch.ones(self.n_examples, dtype=torch.bool)
        for i in range(min(self.n_examples, max_rows)):
            lines.append(f"{i:>7} {fx[i].item():>12.6g} {fb[i].item():>12.6g} {tot[i].item():>12.6g} "
                         f"{gap[i].item():>10.2e} {rel[i].item():>8.2%} {int(evals[i]):>6} "
                         f"{'yes' if bool(met[i]) else 'NO':>4}")
        if self.n_examples > max_rows:
            lines.append(f"... {self.n_examples - max_rows} more")
        return "\n".join(lines)

    def to_dataframe(self, level: str = "example"):
        """A pandas DataFrame (pandas is optional: ``pip install pandas``).

        ``level="example"``: one line per example with ``example``, ``target``, ``prediction`` (F(x)),
        ``baseline_score`` (F(x')), ``sum_attributions``, ``gap``, ``relative_gap``, ``steps``,
        ``evaluations``, ``converged`` and ``criterion``. ``level="feature"``: one line per example,
        input and feature (flattened index) with its ``value``, ``baseline`` and ``attribution``.
        Multi-target results carry one line per target. Domain results add their own levels
        (atoms, bonds, tokens, words)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from sciattr.errors import MissingDependencyError
            raise MissingDependencyError("to_dataframe needs pandas: pip install pandas") from exc
        if level not in ("example", "feature"):
            raise InputError(f"level must be 'example' or 'feature' for a {type(self).__name__}; got {level!r}")
        T = self.forward_x.shape[1] if self.multi_target else 1

        def col(t, j):
            return t[:, j] if self.multi_target else t

        rows: list[dict] = []
        if level == "example":
            per, gap, rel = self.per_example(), self.completeness_gap, self.relative_gap
            for j in range(T):
                for i in range(self.n_examples):
                    rows.append({
                        "example": i, "target": j if self.multi_target else self.target,
                        "prediction": float(col(self.forward_x, j)[i]),
                        "baseline_score": float(col(self.forward_baseline, j)[i]),
                        "sum_attributions": float(col(per, j)[i]), "gap": float(col(gap, j)[i]),
                        "relative_gap": float(col(rel, j)[i]), "steps": int(self.steps[i]),
                        "evaluations": None if self.evaluations is None else int(self.evaluations[i]),
                        "converged": None if self.converged is None else bool(self.converged[i]),
                        "criterion": None if self.criterion is None else self.criterion[i],
                    })
            return pd.DataFrame(rows)
        for name in self.names:
            a, x, b = self.attributions[name], self.inputs[name], self.baselines[name]
            for j in range(T):
                aj = a[..., j] if self.multi_target else a
                for i in range(self.n_examples):
                    if self.segments is not None and name in self.segments:
                        mask = self.segments[name].to(aj.device) == i
                        ai, xi, bi = aj[mask], x[mask], b[mask]
                    else:
                        ai, xi, bi = aj[i], x[i], b[i]
                    for f, (av, xv, bv) in enumerate(zip(ai.reshape(-1).tolist(), xi.reshape(-1).tolist(),
                                                         bi.reshape(-1).tolist())):
                        rows.append({"example": i, "target": j if self.multi_target else self.target,
                                     "input": name, "feature": f, "value": xv, "baseline": bv,
                                     "attribution": av})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.attributions.items()}
        return (f"{type(self).__name__}(method={self.method!r}, rule={self.rule!r}, n={self.n_examples}, "
                f"inputs={shapes}, max_rel_gap={float(self.relative_gap.max()) if self.n_examples else 0:.3g})")

    # ------------------------------------------------------------------ movement and storage
    def to(self, device) -> Attribution:
        def mv(d):
            return None if d is None else {k: v.to(device) for k, v in d.items()}

        return dataclasses.replace(
            self, attributions=mv(self.attributions), inputs=mv(self.inputs), baselines=mv(self.baselines),
            forward_x=self.forward_x.to(device), forward_baseline=self.forward_baseline.to(device),
            steps=self.steps.to(device), segments=mv(self.segments),
            evaluations=None if self.evaluations is None else self.evaluations.to(device),
            converged=None if self.converged is None else self.converged.to(device),
            error_estimate=None if self.error_estimate is None else self.error_estimate.to(device),
            path=None if self.path is None else self.path.to(device),
        )

    def _state(self) -> dict:
        """Field name -> value of every field, as :mod:`sciattr.storage` saves them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def save(self, path) -> Path:
        """Save to one safetensors file (tensors) with JSON metadata (everything else); no pickle.

        Read it back with :func:`sciattr.load` (or ``type(result).load``); see
        :mod:`sciattr.storage` for the layout. Returns the path.
        """
        from sciattr import storage

        return storage.save(self, path)

    @classmethod
    def load(cls, path) -> Attribution:
        """Read a result saved by :meth:`save`, as the class it was saved as.

        Raises :class:`sciattr.storage.ResultFileError` (an :class:`~sciattr.errors.InputError`)
        when the file is not a sciattr result, or holds a class that is not ``cls`` or a subclass.
        """
        from sciattr import storage

        return storage.load(path, cls=cls)
