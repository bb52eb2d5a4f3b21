"""Saturation along the scaling path (Gradients of Counterfactuals, Figs. 2, 8, 12 and 13).

A network *saturates* when its score stops changing well before the input is fully "switched on":
``F(x' + a (x - x'))`` flattens early in ``a``, and the gradients at the input say little about
which features made the score. Three views, for any model and inputs:

* :func:`saturation_curve` -- the score along the path (Figs. 2, 8, 13a) and the sum and norm of
  the gradients there (Fig. 13b), with summary numbers: the *saturation index* (the fraction of
  the total score change already reached at ``a = 0.2``) and the ``a`` at which 90 % is reached;
* :func:`layer_saturation` -- L2 and cosine distances between a layer's activations at
  ``x' + a (x - x')`` and at ``x`` (Fig. 12), captured with forward hooks inside a ``with`` block;
* :func:`plot_saturation` and :func:`plot_layer_saturation` -- the figures, as PNG/SVG/PDF.

Example
-------
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid())
>>> curve = saturation_curve(model, 3 * torch.ones(2, 4, dtype=torch.float64))
>>> curve.scores.shape
torch.Size([2, 21])
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from sciattr.core.hooks import capture_output
from sciattr.core.targets import model_output_tensor
from sciattr.diagnostics.evaluation import CopyEvaluator
from sciattr.diagnostics.figures import new_figure, save_figure
from sciattr.diagnostics.grid import alpha_grid, attribute_on_grid
from sciattr.errors import ConvergenceWarning, InputError, describe
from sciattr.result import Attribution
from sciattr.settings import Settings

__all__ = [
    "LayerSaturation",
    "SaturationCurve",
    "curve_from_attribution",
    "first_crossing",
    "interpolate",
    "layer_saturation",
    "plot_layer_saturation",
    "plot_saturation",
    "saturation_curve",
]

Layers = str | torch.nn.Module | Sequence | Mapping[str, torch.nn.Module]


def interpolate(alphas: torch.Tensor, values: torch.Tensor, at: float) -> torch.Tensor:
    """Piecewise-linear value of each row of ``values`` (``(n, K)`` on the grid ``alphas``) at ``at``."""
    if not 0.0 <= float(at) <= 1.0:
        raise InputError(f"expected a position in [0, 1]; got {at!r}")
    k = int(torch.searchsorted(alphas, torch.tensor(float(at), dtype=alphas.dtype, device=alphas.device)))
    if k < alphas.numel() and float(alphas[k]) == float(at):
        return values[:, k]
    lo, hi = alphas[k - 1], alphas[k]
    t = (float(at) - lo) / (hi - lo)
    return values[:, k - 1] + t * (values[:, k] - values[:, k - 1])


def first_crossing(alphas: torch.Tensor, values: torch.Tensor, level: float) -> torch.Tensor:
    """``(n,)`` smallest alpha where each row of ``values`` first reaches ``level`` (linear between
    grid points); ``nan`` for rows that never do."""
    reached = values >= level
    hit = reached.any(1)
    k = torch.where(hit, reached.int().argmax(1), torch.zeros_like(hit, dtype=torch.long))
    prev = (k - 1).clamp_min(0)
    v_hi, v_lo = values.gather(1, k[:, None])[:, 0], values.gather(1, prev[:, None])[:, 0]
    a_hi, a_lo = alphas[k], alphas[prev]
    step = torch.where(v_hi > v_lo, (level - v_lo) / (v_hi - v_lo), torch.ones_like(v_hi))
    crossing = torch.where(k > 0, a_lo + step * (a_hi - a_lo), a_hi)
    return torch.where(hit, crossing, torch.full_like(crossing, float("nan")))


@dataclass
class SaturationCurve:
    """The model along the scaling path of every example.

    Attributes
    ----------
    alphas:
        ``(K,)`` path positions, ascending, from 0 to 1.
    scores:
        ``(n, K)`` score ``F(x' + a (x - x'))`` (Figs. 2, 8, 13a).
    gradient_sum:
        ``(n, K)`` sum of the gradient over all input elements at each position (Fig. 13b).
    gradient_norm:
        ``(n, K)`` Euclidean norm of the gradient over all input elements.
    """

    alphas: torch.Tensor
    scores: torch.Tensor
    gradient_sum: torch.Tensor
    gradient_norm: torch.Tensor

    @property
    def delta(self) -> torch.Tensor:
        """``(n,)`` total score change ``F(x) - F(x')``."""
        return self.scores[:, -1] - self.scores[:, 0]

    def progress(self) -> torch.Tensor:
        """``(n, K)`` fraction of the total change reached: ``(F(a) - F(0)) / (F(1) - F(0))``
        (``nan`` for examples whose score does not change)."""
        delta = self.delta[:, None]
        frac = (self.scores - self.scores[:, :1]) / torch.where(delta != 0, delta, torch.ones_like(delta))
        return torch.where(delta != 0, frac, torch.full_like(frac, float("nan")))

    def saturation_index(self, at: float = 0.2) -> torch.Tensor:
        """``(n,)`` fraction of the total score change reached at ``alpha = at`` (1 = saturated)."""
        return interpolate(self.alphas, self.progress(), at)

    def alpha_reaching(self, fraction: float = 0.9) -> torch.Tensor:
        """``(n,)`` the alpha at which ``fraction`` of the total score change is first reached."""
        return first_crossing(self.alphas, self.progress(), float(fraction))

    def summary(self, max_rows: int = 20) -> str:
        """A plain-text table: F(x'), F(x), saturation index and the alpha reaching 90 %."""
        index, a90 = self.saturation_index(), self.alpha_reaching(0.9)
        lines = [f"{'example':>7} {'F(baseline)':>12} {'F(x)':>12} {'sat@0.2':>8} {'alpha90':>8}"]
        for i in range(min(self.scores.shape[0], max_rows)):
            lines.append(
                f"{i:>7} {self.scores[i, 0].item():>12.6g} {self.scores[i, -1].item():>12.6g} "
                f"{index[i].item():>8.3f} {a90[i].item():>8.3f}"
            )
        lines.append(
            f"mean saturation index {float(torch.nanmean(index)):.3f}, "
            f"mean alpha at 90% {float(torch.nanmean(a90)):.3f}"
        )
        return "\n".join(lines)


def _per_example(values: torch.Tensor, result: Attribution, name: str) -> torch.Tensor:
    """``(K, rows, ...)`` -> ``(n, K)`` sums over each example's rows and elements."""
    per_row = values.reshape(values.shape[0], values.shape[1], -1).sum(-1)  # (K, rows)
    if result.segments is None or name not in result.segments:
        return per_row.T
    out = torch.zeros(result.n_examples, values.shape[0], dtype=values.dtype, device=values.device)
    return out.index_add_(0, result.segments[name].to(values.device), per_row.T)


def curve_from_attribution(result: Attribution) -> SaturationCurve:
    """The saturation curve recorded by an attribution run with ``store_path=True``."""
    path = result.path
    if path is None:
        raise InputError("expected an Attribution computed with store_path=True; got one without a path")
    if result.multi_target:
        raise InputError("expected an attribution of one target per example; got a multi-target result")
    missing = set(result.names) - set(path.gradients)
    if missing:
        raise InputError(f"expected recorded gradients for every input; missing {sorted(missing)}")
    total = torch.stack([_per_example(g, result, name) for name, g in path.gradients.items()]).sum(0)
    squares = torch.stack([_per_example(g * g, result, name) for name, g in path.gradients.items()]).sum(0)
    return SaturationCurve(
        alphas=path.alphas, scores=path.scores, gradient_sum=total, gradient_norm=torch.sqrt(squares)
    )


def saturation_curve(
    model: Callable,
    inputs,
    *,
    alphas=None,
    target=None,
    settings: Settings | None = None,
    forward_kwargs=None,
    segments=None,
    **options,
) -> SaturationCurve:
    """Score and gradients of ``model`` along the straight path from the baseline to each input.

    Parameters
    ----------
    model, inputs, target, forward_kwargs, segments:
        As for :func:`sciattr.attribute` (one target per example).
    settings, options:
        A :class:`sciattr.Settings` and/or its keyword options (``baselines``, ``batch_size``,
        ``memory_budget``, ...); the grid decides the steps and the rule.
    alphas:
        The grid: ``None`` (21 points), a number of points, or positions in ``[0, 1]``
        (0 and 1 are always included).

    Returns
    -------
    SaturationCurve
        ``scores``, ``gradient_sum`` and ``gradient_norm`` of shape ``(n, K)``.
    """
    with warnings.catch_warnings():  # the curve is exact at its nodes; only the grid's IG could be coarse
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = attribute_on_grid(model, inputs, alphas, target=target, settings=settings,
                                   forward_kwargs=forward_kwargs, segments=segments, **options)
    return curve_from_attribution(result)


# ---------------------------------------------------------------------- intermediate layers
@dataclass
class LayerSaturation:
    """Distances between a layer's activations along the path and at the input (Fig. 12).

    Attributes
    ----------
    layer:
        The layer's name.
    alphas:
        ``(K,)`` path positions.
    l2:
        ``(n, K)`` Euclidean distance ``|h(x' + a (x - x')) - h(x)|``.
    cosine:
        ``(n, K)`` cosine distance ``1 - cos(h(x' + a (x - x')), h(x))`` (``nan`` where an
        activation vector is zero).
    """

    layer: str
    alphas: torch.Tensor
    l2: torch.Tensor
    cosine: torch.Tensor

    def alpha_below(self, cosine: float = 0.01) -> torch.Tensor:
        """``(n,)`` smallest grid alpha from which the cosine distance stays below ``cosine``."""
        below = (torch.nan_to_num(self.cosine, nan=float("inf")) < cosine).int()
        stays = torch.flip(torch.cummin(torch.flip(below, [1]), 1).values, [1]).bool()  # below from here on
        first = self.alphas[stays.int().argmax(1)]
        return torch.where(stays.any(1), first, torch.full_like(first, float("nan")))


def _resolve_layers(model, layers: Layers) -> dict[str, torch.nn.Module]:
    named = dict(model.named_modules()) if isinstance(model, torch.nn.Module) else {}
    by_id = {id(m): name for name, m in named.items()}

    def one(layer, i):
        if isinstance(layer, str):
            if layer not in named:
                raise InputError(
                    f"expected a submodule name of the model (e.g. {list(named)[1:6]}); got {layer!r}"
                )
            return layer, named[layer]
        if isinstance(layer, torch.nn.Module):
            return by_id.get(id(layer), f"layer{i}"), layer
        raise InputError(f"expected a layer as a module or a submodule name; got {describe(layer)}")

    if isinstance(layers, Mapping):
        items = list(layers.items())
        for label, layer in items:
            if not isinstance(layer, torch.nn.Module):
                raise InputError(f"expected layers[{label!r}] to be a module; got {describe(layer)}")
        return dict(items)
    if isinstance(layers, (str, torch.nn.Module)):
        layers = [layers]
    if not isinstance(layers, Sequence) or not layers:
        raise InputError(
            f"expected a layer, a list of layers or a mapping name -> layer; got {describe(layers)}"
        )
    return dict(one(layer, i) for i, layer in enumerate(layers))


def _replica_vectors(act: torch.Tensor, reps, label: str) -> list[torch.Tensor]:
    """Split one forward's activations into one flat vector per replica."""
    R = reps.size
    if act.shape[0] == R:
        return list(act.reshape(R, -1))
    for row_replica in reps.row_replica.values():
        if row_replica.shape[0] == act.shape[0]:
            counts = torch.bincount(row_replica, minlength=R).tolist()
            return [chunk.reshape(-1) for chunk in torch.split(act, counts)]
    raise InputError(
        f"expected the output of layer {label!r} to have one row per replica ({R}) or per row of "
        f"an input; got shape {tuple(act.shape)}; pass activation=callable(output) -> tensor"
    )


def layer_saturation(
    model: Callable,
    inputs,
    layers: Layers,
    *,
    alphas=None,
    baselines=None,
    forward_kwargs=None,
    segments=None,
    batch_size: int | None = None,
    activation: Callable | None = None,
) -> dict[str, LayerSaturation]:
    """L2 and cosine distance of layer activations at ``x' + a (x - x')`` to those at ``x``.

    Parameters
    ----------
    model, inputs, baselines, forward_kwargs, segments:
        As for :func:`sciattr.integrated_gradients`.
    layers:
        A module, a submodule name, a list of these, or a mapping label -> module. Each must be
        called once per forward pass.
    alphas:
        The grid (see :func:`saturation_curve`).
    batch_size:
        Replicas (example x alpha) per forward pass; default: bounded by input size.
    activation:
        ``fn(layer_output) -> tensor`` with one row per replica (or per row of a ragged
        input); default: the output itself, the first element of a tuple.

    Returns
    -------
    dict
        label -> :class:`LayerSaturation` with ``(n, K)`` distances.
    """
    modules = _resolve_layers(model, layers)
    evaluator = CopyEvaluator(model, inputs, segments=segments, forward_kwargs=forward_kwargs)
    named, base = evaluator.named, evaluator.baselines(baselines)
    x0 = next(iter(named.values()))
    grid = alpha_grid(alphas, dtype=x0.dtype, device=x0.device)
    K, n = int(grid.numel()), evaluator.n

    def make_rows(name, rows, example, copy):
        a = grid[copy].reshape((-1,) + (1,) * (named[name].dim() - 1))
        b = base[name][rows]
        return b + a * (named[name][rows] - b)

    vectors: dict[str, list] = {label: [[None] * K for _ in range(n)] for label in modules}
    with contextlib.ExitStack() as stack:
        captured = {label: stack.enter_context(capture_output(m)) for label, m in modules.items()}
        for reps, copy, _ in evaluator.forwards(K, make_rows, alphas=grid, batch_size=batch_size):
            for label, outputs in captured.items():
                if len(outputs) != 1:
                    raise InputError(
                        f"expected layer {label!r} to run once per forward pass; it ran {len(outputs)} times"
                    )
                out = outputs.pop()
                act = activation(out) if activation is not None else model_output_tensor(out)
                for r, vec in enumerate(_replica_vectors(act.detach(), reps, label)):
                    vectors[label][int(reps.example[r])][int(copy[r])] = vec
    return {label: _distances(label, grid, per_example) for label, per_example in vectors.items()}


def _distances(label: str, grid: torch.Tensor, per_example: list) -> LayerSaturation:
    l2, cos = [], []
    for vecs in per_example:
        h = torch.stack(vecs).to(torch.float64)  # (K, D)
        end = h[-1:]
        l2.append(torch.linalg.vector_norm(h - end, dim=1))
        norms = torch.linalg.vector_norm(h, dim=1) * torch.linalg.vector_norm(end, dim=1)
        cosine = 1.0 - (h * end).sum(1) / torch.where(norms > 0, norms, torch.ones_like(norms))
        cos.append(torch.where(norms > 0, cosine, torch.full_like(cosine, float("nan"))))
    return LayerSaturation(layer=label, alphas=grid, l2=torch.stack(l2), cosine=torch.stack(cos))


# ---------------------------------------------------------------------- figures
def _lines(ax, alphas: torch.Tensor, rows: torch.Tensor, ylabel: str, title: str):
    a = alphas.detach().cpu().double().numpy()
    for row in rows.detach().cpu().double().numpy():
        ax.plot(a, row, lw=1.0, alpha=0.7)
    ax.set_xlabel("scaling parameter alpha")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def plot_saturation(curve: SaturationCurve, path, *, normalize: bool = False, title: str | None = None):
    """Two panels: the score along the path (Figs. 2, 8, 13a) and the gradient sum (Fig. 13b).

    ``normalize=True`` plots the fraction of the total score change instead of the raw score.
    Returns the written path.
    """
    if not isinstance(curve, SaturationCurve):
        raise InputError(f"expected a SaturationCurve; got {describe(curve)}")
    fig, axes = new_figure(1, 2, size=(10.0, 4.0))
    index = float(torch.nanmean(curve.saturation_index()))
    values = curve.progress() if normalize else curve.scores
    _lines(
        axes[0, 0],
        curve.alphas,
        values,
        "fraction of F(x) - F(x')" if normalize else "score F",
        f"(a) score along the path; mean saturation index {index:.2f}",
    )
    axes[0, 0].axvline(0.2, color="gray", ls=":", lw=1)
    _lines(
        axes[0, 1], curve.alphas, curve.gradient_sum, "sum of input gradients", "(b) gradients along the path"
    )
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_layer_saturation(layers: Mapping[str, LayerSaturation], path, *, title: str | None = None):
    """One row per layer: L2 and cosine distance to the activations at the input (Fig. 12)."""
    if (
        not isinstance(layers, Mapping)
        or not layers
        or not all(isinstance(v, LayerSaturation) for v in layers.values())
    ):
        raise InputError(f"expected a non-empty mapping label -> LayerSaturation; got {describe(layers)}")
    fig, axes = new_figure(len(layers), 2, size=(9.0, 3.0 * len(layers)))
    for row, (label, sat) in enumerate(layers.items()):
        _lines(axes[row, 0], sat.alphas, sat.l2, "L2 distance", f"{label}: L2 distance to h(x)")
        _lines(axes[row, 1], sat.alphas, sat.cosine, "cosine distance", f"{label}: cosine distance to h(x)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
