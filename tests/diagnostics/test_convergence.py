"""Convergence orders of the quadrature rules, rank statistics and baseline sensitivity."""

import math

import pytest
import torch
from diagnostic_models import F64, LinearScore, RaggedLinear, smooth_mlp

from sciattr.diagnostics import (
    average_ranks,
    baseline_sensitivity,
    completeness_convergence,
    loglog_slope,
    plot_baseline_sensitivity,
    plot_convergence,
    spearman,
)
from sciattr.errors import InputError

STEPS = (8, 16, 32, 64, 128)


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(4)
    x = 2 * torch.randn(6, 5, dtype=F64)
    return completeness_convergence(smooth_mlp(), x, steps=STEPS)


@pytest.mark.parametrize(
    "rule, order",
    [("riemann_left", -1.0), ("riemann_right", -1.0), ("riemann_middle", -2.0), ("riemann_trapezoid", -2.0)],
)
def test_loglog_slopes_show_the_expected_orders(table, rule, order):
    assert table.slopes()[rule] == pytest.approx(order, abs=0.15)


def test_gauss_legendre_converges_fastest(table):
    gl = table.rules.index("gausslegendre")
    others = [r for r in range(len(table.rules)) if r != gl]
    assert (table.mean_gap[gl] <= table.mean_gap[others].min(0).values).all()
    assert table.mean_gap[gl, STEPS.index(16)] < 1e-10
    reach = table.steps_to_reach(1e-5)
    assert reach["gausslegendre"] == 8 and reach["riemann_middle"] == 128 and reach["riemann_left"] is None
    text = table.table()
    assert all(rule in text for rule in table.rules) and "slope" in text


def test_linear_model_is_exact_for_every_rule():
    table = completeness_convergence(
        LinearScore(torch.tensor([1.0, -2.0, 3.0], dtype=F64)), torch.randn(4, 3, dtype=F64), steps=(1, 2, 4)
    )
    assert table.gaps.max() < 1e-12
    assert all(math.isnan(s) for s in table.slopes().values())  # nothing above the rounding floor


def test_loglog_slope_of_a_power_law():
    steps = [4, 8, 16, 32]
    assert loglog_slope(steps, [3.0 / s**2 for s in steps]) == pytest.approx(-2.0, abs=1e-12)
    assert loglog_slope(steps, [1.0, 1e-20, 1e-20, 1e-20], floor=1e-15) != loglog_slope(steps, [1.0] * 4)
    assert math.isnan(loglog_slope(steps, [1.0, 1e-20, 1e-20, 1e-20], floor=1e-15))


def test_spearman_of_identical_reversed_and_tied_rankings():
    a = torch.tensor([0.3, -1.0, 2.5, 0.0, 7.0], dtype=F64)
    assert spearman(a, a).item() == pytest.approx(1.0, abs=1e-15)
    assert spearman(a, -a).item() == pytest.approx(-1.0, abs=1e-15)
    assert spearman(a, a**3 + 10).item() == pytest.approx(1.0, abs=1e-15)  # monotone maps keep ranks
    tied = spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert tied.item() == pytest.approx(math.sqrt(0.9), abs=1e-15)  # worked by hand with average ranks
    assert math.isnan(spearman(torch.ones(4), torch.arange(4.0)).item())
    assert average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    batch = spearman(torch.stack([a, a]), torch.stack([a, -a]))
    assert batch.tolist() == pytest.approx([1.0, -1.0])
    with pytest.raises(InputError, match="one shape"):
        spearman(torch.zeros(3), torch.zeros(4))


def test_baseline_sensitivity_of_a_linear_model():
    w = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=F64)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, 1.0]], dtype=F64)
    shift = torch.tensor([0.5, 0.5, -1.0, 2.0], dtype=F64)
    result = baseline_sensitivity(
        LinearScore(w), x, {"zeros": "zeros", "again": 0.0, "shifted": shift}, steps=2
    )
    # IG of a linear model is w * (x - x'): the L1 distance between baselines a and b is sum |w (a - b)|
    assert result.labels == ["zeros", "again", "shifted"]
    assert torch.allclose(result.l1[:, 0, 2], (w * shift).abs().sum().expand(2), atol=1e-13)
    assert torch.allclose(result.l1[:, 0, 1], torch.zeros(2, dtype=F64))
    assert torch.allclose(result.spearman[:, 0, 1], torch.ones(2, dtype=F64))
    expected = spearman(w * x, w * (x - shift))
    assert torch.allclose(result.spearman[:, 0, 2], expected, atol=1e-15)
    assert torch.allclose(result.mean_spearman, result.mean_spearman.T)
    assert "shifted" in result.table()


def test_baseline_sensitivity_with_ragged_groups_and_defaults(tmp_path):
    atoms = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [1.0, -1.0], [3.0, 0.0]], dtype=F64)
    seg = {"atoms": torch.tensor([0, 0, 1, 1, 1])}
    result = baseline_sensitivity(
        RaggedLinear(torch.tensor([1.0, 2.0], dtype=F64)),
        {"atoms": atoms},
        segments=seg,
        groups={"atoms": torch.tensor([0, 1, 0, 1, 2])},
        steps=4,
    )
    assert result.labels == ["zeros", "mean", "uniform"] and result.spearman.shape == (2, 3, 3)
    assert torch.allclose(torch.diagonal(result.spearman, dim1=1, dim2=2), torch.ones(2, 3, dtype=F64))
    path = plot_baseline_sensitivity(result, tmp_path / "baselines.png")
    assert path.stat().st_size > 1000
    with pytest.raises(InputError, match="at least two"):
        baseline_sensitivity(
            RaggedLinear(torch.ones(2, dtype=F64)), {"atoms": atoms}, {"zeros": "zeros"}, segments=seg
        )


def test_convergence_plot_and_bad_arguments(table, tmp_path):
    assert plot_convergence(table, tmp_path / "conv.png").stat().st_size > 1000
    with pytest.raises(InputError, match="steps"):
        completeness_convergence(
            LinearScore(torch.ones(2, dtype=F64)), torch.ones(1, 2, dtype=F64), steps=[0]
        )
    with pytest.raises(InputError, match="rule"):
        completeness_convergence(
            LinearScore(torch.ones(2, dtype=F64)), torch.ones(1, 2, dtype=F64), rules="riemann_left"
        )


def test_diagnostics_take_one_settings_object_and_the_same_vocabulary():
    from sciattr import Settings
    from sciattr.diagnostics import saturation_curve

    x = torch.randn(3, 5, dtype=torch.float64)
    settings = Settings(baselines=0.5, batch_size=7)
    by_object = saturation_curve(smooth_mlp(), x, alphas=9, settings=settings)
    by_words = saturation_curve(smooth_mlp(), x, alphas=9, baselines=0.5, batch_size=7)
    torch.testing.assert_close(by_object.scores, by_words.scores, atol=0, rtol=0)
    # the curve starts at the baseline 0.5, not at zero
    torch.testing.assert_close(by_object.scores[:, 0], smooth_mlp()(torch.full_like(x, 0.5)).reshape(-1))
    table = completeness_convergence(smooth_mlp(), x, rules=["trapezoid"], steps=[4, 8], settings=settings)
    assert table.gaps.shape == (1, 2, 3)
    with pytest.raises(InputError, match="use 'baselines'"):
        saturation_curve(smooth_mlp(), x, baseline=0.5)
    with pytest.raises(InputError, match="unknown option 'colour'"):
        completeness_convergence(smooth_mlp(), x, colour="red")
