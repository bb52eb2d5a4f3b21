"""Domain-free diagnostics: see how an attribution was reached, and test it.

Everything here works on tensors, models and :class:`sciattr.Attribution` results, dense or ragged
(``segments``), and evaluates the model in batched passes.

* :mod:`~sciattr.diagnostics.saturation` -- the score and gradients along the scaling path,
  the saturation index, saturation of intermediate layers (Gradients of Counterfactuals, Figs. 2,
  8, 12, 13);
* :mod:`~sciattr.diagnostics.interior` -- interior-gradient frames, cumulative (IG-so-far) frames
  and their animation (Fig. 3);
* :mod:`~sciattr.diagnostics.faithfulness` -- ablation curves and AOPC, localization against a
  ground-truth mask, ERASER comprehensiveness and sufficiency;
* :mod:`~sciattr.diagnostics.convergence` -- completeness gap against steps for each quadrature
  rule, and sensitivity of attributions to the baseline.

Plot functions need the ``viz`` extra (matplotlib, Pillow).
"""

from sciattr.diagnostics.convergence import (
    BaselineSensitivity,
    ConvergenceTable,
    baseline_sensitivity,
    completeness_convergence,
    loglog_slope,
    plot_baseline_sensitivity,
    plot_convergence,
)
from sciattr.diagnostics.faithfulness import (
    AblationCurve,
    EraserScores,
    Localization,
    ablation_curve,
    compare_ablation,
    eraser_scores,
    localization,
    plot_ablation,
)
from sciattr.diagnostics.features import FeatureMap
from sciattr.diagnostics.grid import alpha_grid, attribute_on_grid, grid_rule
from sciattr.diagnostics.interior import (
    PAPER_ALPHAS,
    InteriorFrames,
    animate_frames,
    frame_grid,
    frames_from_attribution,
    interior_frames,
    render_bars,
    render_heatmap,
)
from sciattr.diagnostics.ranking import auroc, average_ranks, spearman
from sciattr.diagnostics.saturation import (
    LayerSaturation,
    SaturationCurve,
    curve_from_attribution,
    layer_saturation,
    plot_layer_saturation,
    plot_saturation,
    saturation_curve,
)

__all__ = [
    "PAPER_ALPHAS",
    "AblationCurve",
    "BaselineSensitivity",
    "ConvergenceTable",
    "EraserScores",
    "FeatureMap",
    "InteriorFrames",
    "LayerSaturation",
    "Localization",
    "SaturationCurve",
    "ablation_curve",
    "alpha_grid",
    "animate_frames",
    "attribute_on_grid",
    "auroc",
    "average_ranks",
    "baseline_sensitivity",
    "compare_ablation",
    "completeness_convergence",
    "curve_from_attribution",
    "eraser_scores",
    "frame_grid",
    "frames_from_attribution",
    "grid_rule",
    "interior_frames",
    "layer_saturation",
    "localization",
    "loglog_slope",
    "plot_ablation",
    "plot_baseline_sensitivity",
    "plot_convergence",
    "plot_layer_saturation",
    "plot_saturation",
    "render_bars",
    "render_heatmap",
    "saturation_curve",
    "spearman",
]
