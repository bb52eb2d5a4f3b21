"""Do the attributions point at what the model uses? Ablation curves, AOPC, localization and ERASER.

* :func:`ablation_curve` -- remove features in order of attribution (replace them by the
  baseline), ``features_per_step`` at a time, and record the score. The *area over the
  perturbation curve* (Samek et al. 2017) is ``AOPC = 1/(L+1) sum_{k=0..L} (f(x) - f(x_(k)))``
  where ``x_(k)`` has the top ``k`` steps of features removed (Gradients of Counterfactuals,
  Fig. 5). :func:`compare_ablation` runs it for integrated gradients, gradients,
  gradient x input and a seeded random ranking.
* :func:`localization` -- AUROC and precision@k of the attributions against a ground-truth mask.
* :func:`eraser_scores` -- comprehensiveness ``f(x) - f(x without the rationale)`` and
  sufficiency ``f(x) - f(rationale only)`` (DeYoung et al. 2020), the rationale being the top
  ``k %`` of features, averaged over the bins 1, 5, 10, 20 and 50 %.

Features are input elements or groups of them (atoms, words; see :mod:`sciattr.diagnostics.features`).
All ablated copies of all examples are scored in a few batched forward passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from sciattr.core.engine import attribute as engine_attribute
from sciattr.diagnostics.evaluation import CopyEvaluator, check_segments
from sciattr.diagnostics.features import AttributionLike, FeatureMap, attribution_maps, named_values
from sciattr.diagnostics.figures import new_figure, save_figure
from sciattr.diagnostics.ranking import auroc
from sciattr.errors import InputError, describe
from sciattr.result import Attribution
from sciattr.settings import Settings, resolve_settings

__all__ = [
    "ABLATION_METHODS",
    "ERASER_FRACTIONS",
    "AblationCurve",
    "EraserScores",
    "Localization",
    "ablation_curve",
    "compare_ablation",
    "eraser_scores",
    "localization",
    "plot_ablation",
]

#: The rationale sizes over which ERASER's aggregate scores are averaged.
ERASER_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)

#: Methods compared by :func:`compare_ablation`.
ABLATION_METHODS = ("integrated_gradients", "gradient", "gradient_x_input", "random")

RANDOM = "random"


@dataclass
class AblationCurve:
    """Scores as the top-ranked features are removed.

    Attributes
    ----------
    method:
        Name of the attribution method that ranked the features.
    removed:
        ``(n, L+1)`` number of features removed at each step (0 at step 0).
    scores:
        ``(n, L+1)`` the score ``f(x_(k))``; ``scores[:, 0]`` is ``f(x)``.
    """

    method: str
    removed: torch.Tensor
    scores: torch.Tensor

    @property
    def drops(self) -> torch.Tensor:
        """``(n, L+1)`` score drop ``f(x) - f(x_(k))``."""
        return self.scores[:, :1] - self.scores

    @property
    def aopc(self) -> torch.Tensor:
        """``(n,)`` area over the perturbation curve of each example."""
        return self.drops.mean(1)

    @property
    def aopc_curve(self) -> torch.Tensor:
        """``(L+1,)`` AOPC over the first ``k`` steps, averaged over examples (Fig. 5)."""
        steps = torch.arange(1, self.drops.shape[1] + 1, dtype=self.drops.dtype, device=self.drops.device)
        return (torch.cumsum(self.drops, 1) / steps).mean(0)

    @property
    def mean_aopc(self) -> float:
        """AOPC averaged over examples."""
        return float(self.aopc.mean())


class _Ablator:
    """Feature ranking and batched scoring of ablated copies, shared by the faithfulness metrics."""

    def __init__(self, model, inputs, *, target, baselines, groups, segments, forward_kwargs, attributions=None):
        # baselines and segments default to those recorded in an Attribution
        if isinstance(attributions, Attribution):
            baselines = dict(attributions.baselines) if baselines is None else baselines
            segments = attributions.segments if segments is None else segments
        self.evaluator = CopyEvaluator(
            model, inputs, target=target, segments=segments, forward_kwargs=forward_kwargs
        )
        ev = self.evaluator
        self.named = ev.named
        self.base = ev.baselines(baselines)
        rows = {name: ev.example_of_rows(name) for name in self.named}
        self.features = FeatureMap(self.named, rows, ev.n, groups)
        self.has_feature = {name: ids >= 0 for name, ids in self.features.element_feature.items()}

    def rank(self, attributions: AttributionLike | str, order: str, seed: int) -> torch.Tensor:
        """``(n, G)`` removal position of each feature (0 first)."""
        if isinstance(attributions, str):
            if attributions != RANDOM:
                raise InputError(f"expected attributions or {RANDOM!r}; got {attributions!r}")
            keys = self.features.random_keys(seed, self.evaluator.device)
        else:
            keys = self.features.keys(attribution_maps(attributions, self.named), order)
        return self.features.ranks(keys)

    def scores(
        self, rank: torch.Tensor, removed: torch.Tensor, keep_only: torch.Tensor, batch_size: int | None
    ) -> torch.Tensor:
        """``(n, C)`` scores of copies: copy ``c`` of example ``e`` removes the features ranked
        below ``removed[e, c]`` -- or, where ``keep_only[c]``, all the others."""
        element_rank = self.features.element_ranks(rank)

        def make_rows(name, rows, example, copy):
            x = self.named[name]
            trailing = (1,) * (x.dim() - 1)
            first = element_rank[name][rows] < removed[example, copy].reshape((-1,) + trailing)
            drop = self.has_feature[name][rows] & (first ^ keep_only[copy].reshape((-1,) + trailing))
            return torch.where(drop, self.base[name][rows], x[rows])

        return self.evaluator.scores(int(removed.shape[1]), make_rows, batch_size=batch_size)

    def curve(
        self,
        method: str,
        rank: torch.Tensor,
        steps: int | None,
        features_per_step: int,
        batch_size: int | None,
    ) -> AblationCurve:
        counts = self.features.counts
        if (
            isinstance(features_per_step, bool)
            or not isinstance(features_per_step, int)
            or features_per_step < 1
        ):
            raise InputError(
                f"expected features_per_step as a positive integer; got {describe(features_per_step)}"
            )
        if steps is None:
            steps = max(1, math.ceil(int(counts.max()) / features_per_step))
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"expected perturbation_steps as a positive integer; got {describe(steps)}")
        k = torch.arange(steps + 1, device=counts.device) * features_per_step
        removed = torch.minimum(k[None, :], counts[:, None])
        keep_only = torch.zeros(steps + 1, dtype=torch.bool, device=counts.device)
        return AblationCurve(
            method=method, removed=removed, scores=self.scores(rank, removed, keep_only, batch_size)
        )


def ablation_curve(
    model: Callable,
    inputs,
    attributions: AttributionLike | str,
    *,
    method: str | None = None,
    target=None,
    baselines=None,
    groups: Mapping | None = None,
    segments=None,
    perturbation_steps: int | None = None,
    features_per_step: int = 1,
    order: str = "descending",
    seed: int = 0,
    forward_kwargs=None,
    batch_size: int | None = None,
) -> AblationCurve:
    """Remove features in order of attribution and record the model's score after every step.

    Parameters
    ----------
    model, inputs, target, forward_kwargs, segments:
        As for :func:`sciattr.integrated_gradients` (one target per example).
    attributions:
        An :class:`~sciattr.Attribution`, a tensor (one input) or a mapping name -> tensor of
        the inputs' shapes; or ``"random"`` for a seeded random ranking.
    method:
        Label of the curve (default: the Attribution's method, ``"random"`` or ``"attribution"``).
    baselines:
        What removed elements are replaced by (a baseline spec; default: the Attribution's
        baselines, else zeros).
    groups:
        name -> feature id per element (see :mod:`sciattr.diagnostics.features`).
    perturbation_steps, features_per_step:
        ``L`` perturbation steps of ``features_per_step`` features each (default: until every
        feature is removed). (``steps`` is the path's node count everywhere else in sciattr.)
    order:
        ``"descending"`` (largest attribution first), ``"ascending"`` or ``"absolute"``.
    seed:
        Seed of the random ranking.
    batch_size:
        Ablated copies per forward pass (default: bounded by input size).

    Returns
    -------
    AblationCurve
        ``scores`` and ``removed`` of shape ``(n, L+1)``; ``aopc`` per example.
    """
    ablator = _Ablator(model, inputs, target=target, baselines=baselines, groups=groups, segments=segments,
                       forward_kwargs=forward_kwargs, attributions=attributions)
    if method is None:
        method = (
            attributions.method
            if isinstance(attributions, Attribution)
            else (RANDOM if isinstance(attributions, str) else "attribution")
        )
    rank = ablator.rank(attributions, order, seed)
    return ablator.curve(method, rank, perturbation_steps, features_per_step, batch_size)


def compare_ablation(
    model: Callable,
    inputs,
    *,
    methods: Sequence[str] = ABLATION_METHODS,
    target=None,
    groups: Mapping | None = None,
    segments=None,
    perturbation_steps: int | None = None,
    features_per_step: int = 1,
    order: str = "descending",
    seed: int = 0,
    settings: Settings | None = None,
    forward_kwargs=None,
    **options,
) -> dict[str, AblationCurve]:
    """Ablation curves of several attribution methods on the same inputs, features and baseline.

    ``methods`` are names among :data:`ABLATION_METHODS`. Attributions are computed with the
    engine under ``settings`` (a :class:`sciattr.Settings`, or its keyword options: ``baselines``,
    ``steps``, ``tolerance``, ``batch_size``, ...; the method is each curve's own), and the same
    ``baselines`` replace the removed features. ``perturbation_steps`` and ``features_per_step``
    are those of :func:`ablation_curve`. Returns method -> :class:`AblationCurve`.
    """
    s = resolve_settings(settings, options)
    attribute = {
        name: (lambda name=name, **kw: engine_attribute(model, inputs, settings=s.replace(method=name), **kw))
        for name in ("integrated_gradients", "gradient", "gradient_x_input")
    }
    unknown = [m for m in methods if m not in attribute and m != RANDOM]
    if isinstance(methods, str) or not methods or unknown:
        raise InputError(f"expected methods among {ABLATION_METHODS}; got {describe(methods)}")
    ablator = _Ablator(model, inputs, target=target, baselines=s.baselines, groups=groups, segments=segments,
                       forward_kwargs=forward_kwargs)
    curves = {}
    for method in methods:
        source: Attribution | str
        if method == RANDOM:
            source = RANDOM
        else:
            source = attribute[method](target=target, segments=segments, forward_kwargs=forward_kwargs)
        curves[method] = ablator.curve(
            method, ablator.rank(source, order, seed), perturbation_steps, features_per_step, s.batch_size
        )
    return curves


# ---------------------------------------------------------------------- localization
@dataclass
class Localization:
    """Agreement of attributions with a ground-truth mask, per example.

    Attributes
    ----------
    auroc:
        ``(n,)`` area under the ROC curve of feature attributions vs the mask (``nan`` when an
        example has no positive or no negative feature).
    precision_at_k:
        ``(n,)`` fraction of the ``k`` top-ranked features that are in the mask.
    k:
        ``(n,)`` the ``k`` used (default: the number of positive features).
    """

    auroc: torch.Tensor
    precision_at_k: torch.Tensor
    k: torch.Tensor

    @property
    def mean_auroc(self) -> float:
        return float(torch.nanmean(self.auroc))

    @property
    def mean_precision(self) -> float:
        return float(torch.nanmean(self.precision_at_k))


def localization(
    attributions: AttributionLike,
    mask,
    *,
    groups: Mapping | None = None,
    segments=None,
    k: int | None = None,
    order: str = "descending",
) -> Localization:
    """AUROC and precision@k of attributions against a boolean ground-truth ``mask``.

    Parameters
    ----------
    attributions:
        An :class:`~sciattr.Attribution`, a tensor or a mapping name -> tensor.
    mask:
        Booleans of the same structure and shapes (or, per input, a prefix of the shape such as
        one flag per atom row; inputs left out of a mapping have no positives); with ``groups``,
        a feature is positive when any of its elements is.
    groups, segments:
        Features and ragged rows (default segments: the Attribution's).
    k:
        Number of top features for precision (default: the number of positives of each example).
    order:
        ``"descending"`` ranks by signed attribution, ``"absolute"`` by magnitude.
    """
    maps = named_values(attributions, None, "attributions")
    for name, t in maps.items():
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise InputError(
                f"expected attributions[{name!r}] as a tensor with a leading dimension; got {describe(t)}"
            )
    maps = attribution_maps(maps, maps)
    if isinstance(attributions, Attribution) and segments is None:
        segments = attributions.segments
    truth = _mask_per_input(mask, maps)
    n, segments = check_segments(maps, segments)
    rows = {
        name: (torch.arange(t.shape[0], device=t.device) if segments is None else segments[name])
        for name, t in maps.items()
    }
    features = FeatureMap(maps, rows, n, groups)
    labels = features.any({name: _expand_mask(truth[name], maps[name], name) for name in maps})
    keys = features.keys(maps, order)
    area = auroc(keys, labels, features.valid)
    positives = (labels & features.valid).sum(1)
    if k is None:
        top = positives
    elif isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"expected k as a positive integer; got {describe(k)}")
    else:
        top = torch.minimum(torch.full_like(positives, k), features.counts)
    hits = (labels & (features.ranks(keys) < top[:, None])).sum(1).to(torch.float64)
    precision = torch.where(top > 0, hits / top.clamp_min(1), torch.full_like(hits, float("nan")))
    return Localization(auroc=area, precision_at_k=precision, k=top)


def _mask_per_input(mask, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> boolean mask; inputs missing from a mapping have no positive element."""
    if isinstance(mask, Mapping):
        unknown = set(mask) - set(maps)
        if unknown:
            raise InputError(f"expected a mask only for the inputs {sorted(maps)}; got {sorted(unknown)}")
        return {
            name: mask[name] if name in mask else torch.zeros(maps[name].shape, dtype=torch.bool)
            for name in maps
        }
    return named_values(mask, maps, "mask")


def _expand_mask(mask, like: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise InputError(f"expected mask[{name!r}] as a boolean tensor; got {describe(mask)}")
    d = mask.dim()
    if d == 0 or tuple(mask.shape) != tuple(like.shape[:d]):
        raise InputError(
            f"expected mask[{name!r}] of shape {tuple(like.shape)} or a prefix of it; got {tuple(mask.shape)}"
        )
    return mask.to(like.device).reshape(tuple(mask.shape) + (1,) * (like.dim() - d)).expand(like.shape)


# ---------------------------------------------------------------------- ERASER
@dataclass
class EraserScores:
    """Comprehensiveness and sufficiency of top-``k %`` rationales (DeYoung et al. 2020).

    Attributes
    ----------
    fractions:
        ``(B,)`` rationale sizes as fractions of each example's features.
    full:
        ``(n,)`` the score ``f(x)``.
    comprehensiveness:
        ``(n, B)`` ``f(x) - f(x without the rationale)`` (higher: the rationale was needed).
    sufficiency:
        ``(n, B)`` ``f(x) - f(rationale only)`` (lower: the rationale suffices).
    """

    fractions: torch.Tensor
    full: torch.Tensor
    comprehensiveness: torch.Tensor
    sufficiency: torch.Tensor

    @property
    def aggregate_comprehensiveness(self) -> torch.Tensor:
        """``(n,)`` comprehensiveness averaged over the bins."""
        return self.comprehensiveness.mean(1)

    @property
    def aggregate_sufficiency(self) -> torch.Tensor:
        """``(n,)`` sufficiency averaged over the bins."""
        return self.sufficiency.mean(1)

    def summary(self) -> str:
        lines = [f"{'rationale':>9} {'comprehensiveness':>18} {'sufficiency':>12}"]
        for b, frac in enumerate(self.fractions.tolist()):
            lines.append(
                f"{frac:>9.0%} {float(self.comprehensiveness[:, b].mean()):>18.4f} "
                f"{float(self.sufficiency[:, b].mean()):>12.4f}"
            )
        lines.append(
            f"{'average':>9} {float(self.aggregate_comprehensiveness.mean()):>18.4f} "
            f"{float(self.aggregate_sufficiency.mean()):>12.4f}"
        )
        return "\n".join(lines)


def eraser_scores(
    model: Callable,
    inputs,
    attributions: AttributionLike | str,
    *,
    fractions: Sequence[float] = ERASER_FRACTIONS,
    target=None,
    baselines=None,
    groups: Mapping | None = None,
    segments=None,
    order: str = "descending",
    seed: int = 0,
    forward_kwargs=None,
    batch_size: int | None = None,
) -> EraserScores:
    """ERASER comprehensiveness and sufficiency at top-``k %`` rationales.

    The rationale of size ``k %`` holds the ``ceil(k % x features)`` top-ranked features (at least
    one). Removed features are replaced by the baseline (for tokens, e.g. a pad or zero
    embedding); features with group id ``-1`` are always kept. ERASER scores class
    probabilities: pass ``target=callable(output) -> probability`` to score those. All
    ``1 + 2 B`` copies of every example go through the model in batched passes.
    """
    try:
        fracs = torch.as_tensor(fractions, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"expected fractions as a sequence of numbers; got {describe(fractions)}") from None
    if fracs.numel() == 0 or not ((fracs > 0) & (fracs <= 1)).all():
        raise InputError(f"expected fractions in (0, 1]; got {fracs.tolist()}")
    ablator = _Ablator(model, inputs, target=target, baselines=baselines, groups=groups, segments=segments,
                       forward_kwargs=forward_kwargs, attributions=attributions)
    rank = ablator.rank(attributions, order, seed)
    counts = ablator.features.counts.to(torch.float64)
    sizes = torch.ceil(fracs.to(counts.device)[None, :] * counts[:, None] - 1e-9).clamp_min(1)
    sizes = torch.minimum(sizes, counts[:, None]).long()  # (n, B)
    B, dev = fracs.numel(), sizes.device
    removed = torch.cat([torch.zeros_like(sizes[:, :1]), sizes, sizes], 1)
    keep_only = torch.cat(
        [torch.zeros(1 + B, dtype=torch.bool, device=dev), torch.ones(B, dtype=torch.bool, device=dev)]
    )
    scores = ablator.scores(rank, removed, keep_only, batch_size)
    full = scores[:, 0]
    return EraserScores(
        fractions=fracs,
        full=full,
        comprehensiveness=full[:, None] - scores[:, 1 : 1 + B],
        sufficiency=full[:, None] - scores[:, 1 + B :],
    )


# ---------------------------------------------------------------------- figure
def plot_ablation(curves: Mapping[str, AblationCurve], path, *, title: str | None = None):
    """Two panels: mean score drop vs perturbation step, and AOPC vs step (Fig. 5)."""
    if (
        not isinstance(curves, Mapping)
        or not curves
        or not all(isinstance(c, AblationCurve) for c in curves.values())
    ):
        raise InputError(f"expected a non-empty mapping method -> AblationCurve; got {describe(curves)}")
    fig, axes = new_figure(1, 2, size=(10.0, 4.0))
    for label, curve in curves.items():
        steps = torch.arange(curve.scores.shape[1]).numpy()
        axes[0, 0].plot(
            steps,
            curve.drops.mean(0).detach().cpu().double().numpy(),
            label=f"{label} (AOPC {curve.mean_aopc:.3g})",
        )
        axes[0, 1].plot(steps, curve.aopc_curve.detach().cpu().double().numpy(), label=label)
    for ax, ylabel, sub in (
        (axes[0, 0], "mean f(x) - f(x_(k))", "(a) score drop"),
        (axes[0, 1], "AOPC", "(b) area over the perturbation curve"),
    ):
        ax.set_xlabel("perturbation step k")
        ax.set_ylabel(ylabel)
        ax.set_title(sub, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
