"""How many steps, which rule, which baseline? Convergence of the integral and baseline sensitivity.

* :func:`completeness_convergence` -- the completeness gap ``|sum(attr) - (F(x) - F(x'))|`` for
  every quadrature rule and number of steps, with the fitted log-log slope per rule. On a
  smooth model left/right Riemann sums converge as ``O(1/n)`` (slope -1), the midpoint and
  trapezoid rules as ``O(1/n^2)`` (slope -2) and Gauss-Legendre faster than any power, until
  rounding. The papers' advice "20 to 300 steps, check that attributions add up" made measurable.
* :func:`baseline_sensitivity` -- attributions under several baselines (zeros, the data mean,
  uniform noise, custom ones) compared pairwise by Spearman rank correlation and L1 distance.

Both come with a table (``.table()``) and a plot function.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from sciattr.core.engine import attribute
from sciattr.diagnostics.features import FeatureMap
from sciattr.diagnostics.figures import new_figure, save_figure
from sciattr.diagnostics.ranking import spearman
from sciattr.errors import ConvergenceWarning, InputError, describe
from sciattr.settings import Settings, resolve_settings

__all__ = [
    "CONVERGENCE_RULES",
    "CONVERGENCE_STEPS",
    "SENSITIVITY_BASELINES",
    "BaselineSensitivity",
    "ConvergenceTable",
    "baseline_sensitivity",
    "completeness_convergence",
    "loglog_slope",
    "plot_baseline_sensitivity",
    "plot_convergence",
]

#: Rules compared by default (names understood by :func:`sciattr.quadrature`).
CONVERGENCE_RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")

#: Step counts compared by default.
CONVERGENCE_STEPS = (2, 4, 8, 16, 32, 64, 128)

#: Baselines compared by default: label -> baseline spec.
SENSITIVITY_BASELINES = {"zeros": "zeros", "mean": "mean", "uniform": "uniform"}


def loglog_slope(steps: Sequence[int], gaps: Sequence[float], floor: float = 0.0) -> float:
    """Least-squares slope of ``log(gap)`` against ``log(steps)``, over gaps above ``floor``.

    ``nan`` when fewer than two points are left (e.g. a rule exact from the first step count).
    """
    pts = [(math.log(s), math.log(g)) for s, g in zip(steps, gaps) if g > floor and math.isfinite(g)]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else float("nan")


@dataclass
class ConvergenceTable:
    """Completeness gaps per rule and step count.

    Attributes
    ----------
    rules:
        The quadrature rules (rows).
    steps:
        The step counts (columns).
    gaps:
        ``(R, S, m)`` absolute completeness gap of every example (and target) ``m``.
    delta:
        ``(m,)`` ``F(x) - F(x')``.
    floor:
        Gaps below this are rounding noise (excluded from slope fits).
    """

    rules: list[str]
    steps: list[int]
    gaps: torch.Tensor
    delta: torch.Tensor
    floor: float

    @property
    def mean_gap(self) -> torch.Tensor:
        """``(R, S)`` gap averaged over examples."""
        return self.gaps.mean(-1)

    @property
    def relative_gap(self) -> torch.Tensor:
        """``(R, S)`` mean gap divided by the mean ``|F(x) - F(x')|``."""
        return self.mean_gap / self.delta.abs().mean().clamp_min(torch.finfo(self.delta.dtype).tiny)

    def slopes(self) -> dict[str, float]:
        """rule -> fitted log-log slope of the mean gap against the steps."""
        return {
            rule: loglog_slope(self.steps, self.mean_gap[r].tolist(), self.floor)
            for r, rule in enumerate(self.rules)
        }

    def steps_to_reach(self, relative: float = 0.01) -> dict[str, int | None]:
        """rule -> smallest listed step count whose relative gap is at most ``relative``."""
        out = {}
        for r, rule in enumerate(self.rules):
            ok = [s for s, g in zip(self.steps, self.relative_gap[r].tolist()) if g <= relative]
            out[rule] = ok[0] if ok else None
        return out

    def table(self) -> str:
        """Mean absolute completeness gap per rule (rows) and steps (columns), and the slope."""
        head = f"{'rule':<18}" + "".join(f"{s:>10}" for s in self.steps) + f"{'slope':>8}"
        slopes = self.slopes()
        lines = [head]
        for r, rule in enumerate(self.rules):
            lines.append(
                f"{rule:<18}"
                + "".join(f"{g:>10.2e}" for g in self.mean_gap[r].tolist())
                + f"{slopes[rule]:>8.2f}"
            )
        return "\n".join(lines)


def _check_steps(steps) -> list[int]:
    if (
        isinstance(steps, (str, bytes))
        or not isinstance(steps, Sequence)
        or not steps
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps)
    ):
        raise InputError(
            f"expected steps as a non-empty sequence of positive integers; got {describe(steps)}"
        )
    return sorted(set(steps))


def completeness_convergence(
    model: Callable,
    inputs,
    *,
    rules: Sequence = CONVERGENCE_RULES,
    steps: Sequence[int] = CONVERGENCE_STEPS,
    target=None,
    settings: Settings | None = None,
    forward_kwargs=None,
    segments=None,
    **options,
) -> ConvergenceTable:
    """Completeness gap of integrated gradients for every rule and step count.

    Parameters
    ----------
    model, inputs, target, forward_kwargs, segments:
        As for :func:`sciattr.attribute`.
    settings, options:
        A :class:`sciattr.Settings` and/or its keyword options (``baselines``, ``batch_size``, ...);
        every rule and step count of the table replaces its ``rule`` and ``steps``.
    rules:
        Quadrature rule names.
    steps:
        Step counts (fixed, never refined: the table shows the gap of each).

    Returns
    -------
    ConvergenceTable
        ``gaps`` of shape ``(len(rules), len(steps), m)``.
    """
    if (
        isinstance(rules, str)
        or not isinstance(rules, Sequence)
        or not rules
        or not all(isinstance(r, str) for r in rules)
    ):
        raise InputError(f"expected rules as a non-empty sequence of rule names; got {describe(rules)}")
    step_list = _check_steps(steps)
    base = resolve_settings(settings, options).replace(method="integrated_gradients", tolerance=None)
    gaps, first = [], None
    for rule in rules:
        row = []
        for k in step_list:
            with warnings.catch_warnings():  # the table is the report: a gap above tolerance is its content
                warnings.simplefilter("ignore", ConvergenceWarning)
                res = attribute(model, inputs, target=target, forward_kwargs=forward_kwargs, segments=segments,
                                settings=base.replace(steps=k, rule=rule))
            row.append(res.completeness_gap.abs().reshape(-1))
            first = res if first is None else first
        gaps.append(torch.stack(row))
    if first is None:
        raise InputError("expected at least one rule and one step count")
    scale = float(torch.maximum(first.forward_x.abs(), first.forward_baseline.abs()).max().clamp_min(1.0))
    floor = 1e3 * torch.finfo(first.forward_x.dtype).eps * scale
    return ConvergenceTable(
        rules=list(rules), steps=step_list, gaps=torch.stack(gaps), delta=first.delta.reshape(-1), floor=floor
    )


def plot_convergence(table: ConvergenceTable, path, *, title: str | None = None):
    """Log-log plot of the mean completeness gap against the steps, one line per rule."""
    if not isinstance(table, ConvergenceTable):
        raise InputError(f"expected a ConvergenceTable; got {describe(table)}")
    fig, axes = new_figure(1, 1, size=(6.0, 4.5))
    ax = axes[0, 0]
    slopes = table.slopes()
    for r, rule in enumerate(table.rules):
        gaps = table.mean_gap[r].clamp_min(table.floor / 10).tolist()
        ax.loglog(table.steps, gaps, marker="o", label=f"{rule} (slope {slopes[rule]:.2f})")
    ax.axhline(table.floor, color="gray", ls=":", lw=1, label="rounding floor")
    ax.set_xlabel("steps")
    ax.set_ylabel("mean |completeness gap|")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "convergence of the path integral", fontsize=10)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- baselines
@dataclass
class BaselineSensitivity:
    """Attributions under several baselines, compared pairwise per example.

    Attributes
    ----------
    labels:
        The baselines' labels, in order.
    attributions:
        label -> name -> attribution tensor.
    spearman:
        ``(n, B, B)`` Spearman rank correlation of the feature attributions.
    l1:
        ``(n, B, B)`` L1 distance between the feature attributions.
    """

    labels: list[str]
    attributions: dict[str, dict[str, torch.Tensor]]
    spearman: torch.Tensor
    l1: torch.Tensor

    @property
    def mean_spearman(self) -> torch.Tensor:
        """``(B, B)`` Spearman correlation averaged over examples (ignoring ``nan``)."""
        return torch.nanmean(self.spearman, 0)

    @property
    def mean_l1(self) -> torch.Tensor:
        """``(B, B)`` L1 distance averaged over examples."""
        return self.l1.mean(0)

    def table(self) -> str:
        """Mean Spearman correlation and L1 distance for every pair of baselines."""
        lines = [f"{'baseline A':<12} {'baseline B':<12} {'spearman':>9} {'L1':>10}"]
        rho, l1 = self.mean_spearman, self.mean_l1
        for i, a in enumerate(self.labels):
            for j in range(i + 1, len(self.labels)):
                lines.append(
                    f"{a:<12} {self.labels[j]:<12} {float(rho[i, j]):>9.3f} {float(l1[i, j]):>10.4g}"
                )
        return "\n".join(lines)


def _pairwise(values: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` ``(B, n, G)`` -> ``(n, B, B)`` Spearman and L1 over each example's valid features."""
    B, n, _ = values.shape
    rho = torch.empty(n, B, B, dtype=torch.float64, device=values.device)
    l1 = torch.empty_like(rho)
    for i in range(B):
        for j in range(B):
            l1[:, i, j] = torch.where(valid, (values[i] - values[j]).abs(), torch.zeros_like(values[i])).sum(
                1
            )
    if bool(valid.all()):
        per_example = values.permute(1, 0, 2)  # (n, B, G)
        G = per_example.shape[-1]
        rho[:] = spearman(
            per_example[:, :, None, :].expand(n, B, B, G), per_example[:, None, :, :].expand(n, B, B, G)
        )
        return rho, l1
    for e in range(n):  # examples with different numbers of features
        v = values[:, e, valid[e]]
        rho[e] = spearman(v[:, None, :].expand(B, B, -1), v[None, :, :].expand(B, B, -1))
    return rho, l1


def baseline_sensitivity(
    model: Callable,
    inputs,
    baselines: Mapping | None = None,
    *,
    groups: Mapping | None = None,
    target=None,
    settings: Settings | None = None,
    forward_kwargs=None,
    segments=None,
    **options,
) -> BaselineSensitivity:
    """Attributions under several baselines, compared by rank correlation and L1 distance.

    Parameters
    ----------
    model, inputs, target, forward_kwargs, segments:
        As for :func:`sciattr.attribute`.
    baselines:
        label -> baseline spec (a name, number, tensor, callable, or a dict name -> spec);
        default: zeros, the batch mean and seeded uniform noise.
    settings, options:
        A :class:`sciattr.Settings` and/or its keyword options (method, steps, rule, tolerance,
        batch_size, ...), the same for every baseline.
    groups:
        Compare per feature group (e.g. per atom or token) instead of per element.

    Returns
    -------
    BaselineSensitivity
        ``spearman`` and ``l1`` of shape ``(n, B, B)``.
    """
    specs = SENSITIVITY_BASELINES if baselines is None else baselines
    if not isinstance(specs, Mapping) or len(specs) < 2:
        raise InputError(
            f"expected a mapping label -> baseline spec with at least two entries; got {describe(baselines)}"
        )
    base = resolve_settings(settings, options)
    if base.baselines is not None:
        raise InputError("give the baselines to compare as the mapping 'baselines' (label -> spec), "
                         "not in the settings")
    results = {
        str(label): attribute(model, inputs, target=target, forward_kwargs=forward_kwargs, segments=segments,
                              settings=base.replace(baselines=spec))
        for label, spec in specs.items()
    }
    first = next(iter(results.values()))
    if first.multi_target:
        raise InputError("expected one target per example for baseline sensitivity; got several")
    rows = {
        name: (torch.arange(x.shape[0], device=x.device) if first.segments is None else first.segments[name])
        for name, x in first.inputs.items()
    }
    features = FeatureMap(first.inputs, rows, first.n_examples, groups)
    values = torch.stack([features.aggregate(r.attributions) for r in results.values()])
    rho, l1 = _pairwise(values, features.valid)
    return BaselineSensitivity(
        labels=list(results),
        attributions={k: r.attributions for k, r in results.items()},
        spearman=rho,
        l1=l1,
    )


def plot_baseline_sensitivity(result: BaselineSensitivity, path, *, title: str | None = None):
    """Heatmaps of the mean Spearman correlation and mean L1 distance between baselines."""
    if not isinstance(result, BaselineSensitivity):
        raise InputError(f"expected a BaselineSensitivity; got {describe(result)}")
    fig, axes = new_figure(1, 2, size=(9.0, 4.0))
    B = len(result.labels)
    for ax, matrix, name, cmap, lims in (
        (axes[0, 0], result.mean_spearman, "Spearman rank correlation", "RdBu_r", (-1, 1)),
        (axes[0, 1], result.mean_l1, "L1 distance", "viridis", (None, None)),
    ):
        data = matrix.detach().cpu().double().numpy()
        image = ax.imshow(data, cmap=cmap, vmin=lims[0], vmax=lims[1])
        ax.set_xticks(range(B), result.labels, rotation=45)
        ax.set_yticks(range(B), result.labels)
        for i in range(B):
            for j in range(B):
                ax.text(j, i, f"{data[i, j]:.2g}", ha="center", va="center", fontsize=8)
        ax.set_title(name, fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
