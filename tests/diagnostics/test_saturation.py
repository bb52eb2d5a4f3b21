"""Saturation curves and layer saturation against analytic values (float64)."""

import math

import pytest
import torch
from diagnostic_models import F64, LinearScore, RaggedLinear, Saturating

from sciattr import integrated_gradients
from sciattr.diagnostics import (
    curve_from_attribution,
    grid_rule,
    layer_saturation,
    plot_layer_saturation,
    plot_saturation,
    saturation_curve,
)
from sciattr.errors import InputError

W = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [0.4, 0.4, 0.4]], dtype=F64)  # s = w.x = 1, 2, 0.4


def test_saturating_model_follows_the_analytic_curve():
    curve = saturation_curve(Saturating(W), X, alphas=21)
    a = torch.linspace(0, 1, 21, dtype=F64)
    s = (X @ W)[:, None]
    assert torch.allclose(curve.alphas, a, atol=1e-15)
    assert torch.allclose(curve.scores, 1 - torch.exp(-10 * a * s), atol=1e-13)
    # dF/dx_i at a x is 10 w_i exp(-10 a s): the sum (Fig. 13b) and the norm are analytic
    assert torch.allclose(curve.gradient_sum, 10 * W.sum() * torch.exp(-10 * a * s), atol=1e-12)
    assert torch.allclose(curve.gradient_norm, 10 * W.norm() * torch.exp(-10 * a * s), atol=1e-12)


def test_saturation_index_and_alpha_at_90_percent():
    curve = saturation_curve(Saturating(W), X, alphas=401)
    s = X @ W
    expected_index = (1 - torch.exp(-2 * s)) / (1 - torch.exp(-10 * s))
    assert torch.allclose(curve.saturation_index(0.2), expected_index, atol=1e-12)
    assert curve.saturation_index()[1] > 0.98  # s = 2 saturates almost at once
    expected_alpha = -torch.log(1 - 0.9 * (1 - torch.exp(-10 * s))) / (10 * s)
    assert torch.allclose(curve.alpha_reaching(0.9), expected_alpha, atol=2e-4)  # linear between nodes


def test_clipped_relu_saturates_at_a_kink():
    # F(a x) = min(4 a, 1): 80 % of the change by a = 0.2, 90 % exactly at a = 0.225
    def model(x):
        return torch.clamp(torch.relu(x.sum(-1)), max=1.0)

    curve = saturation_curve(model, torch.tensor([[2.0, 2.0]], dtype=F64), alphas=21)
    assert curve.saturation_index().item() == pytest.approx(0.8, abs=1e-12)
    assert curve.alpha_reaching(0.9).item() == pytest.approx(0.225, abs=1e-12)
    assert curve.gradient_sum[0, -1].item() == 0.0  # flat at the input: gradients see nothing


def test_linear_model_has_no_saturation_and_constant_gradients():
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    curve = saturation_curve(LinearScore(w), X, alphas=[0.3, 0.7])
    assert curve.alphas.tolist() == [0.0, 0.3, 0.7, 1.0]  # end points added
    assert torch.allclose(curve.saturation_index(0.3), torch.full((3,), 0.3, dtype=F64), atol=1e-14)
    assert torch.allclose(curve.saturation_index(0.5), torch.full((3,), 0.5, dtype=F64), atol=1e-14)
    assert torch.allclose(curve.gradient_sum, torch.full((3, 4), w.sum().item(), dtype=F64), atol=1e-14)


def test_constant_model_gives_nan_progress():
    curve = saturation_curve(lambda x: x.sum(-1) * 0.0 + 1.0, X, alphas=5)
    assert torch.isnan(curve.saturation_index()).all()
    assert "mean saturation index" in curve.summary()


def test_ragged_curve_sums_gradients_per_example():
    w = torch.tensor([1.0, 2.0], dtype=F64)
    atoms = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [1.0, 1.0], [3.0, 0.0]], dtype=F64)
    seg = torch.tensor([0, 0, 1, 1, 1])
    res = integrated_gradients(
        RaggedLinear(w),
        {"atoms": atoms},
        segments={"atoms": seg},
        rule=(torch.linspace(0, 1, 6, dtype=F64), torch.full((6,), 0.2, dtype=F64)),
        steps=6,
        store_path=True,
    )
    curve = curve_from_attribution(res)
    totals = torch.tensor([1.0 + 2.0, 6.0 + 3.0 + 3.0], dtype=F64)  # F_e at the input
    assert torch.allclose(curve.scores, totals[:, None] * curve.alphas[None], atol=1e-13)
    # every atom row has gradient w: sum = rows_e * (1 + 2), norm = sqrt(rows_e) * |w|
    rows = torch.tensor([2.0, 3.0], dtype=F64)
    assert torch.allclose(curve.gradient_sum, (3 * rows)[:, None].expand(2, 6), atol=1e-13)
    assert torch.allclose(curve.gradient_norm, (rows.sqrt() * w.norm())[:, None].expand(2, 6), atol=1e-13)


def test_layer_distance_of_a_linear_layer_grows_linearly_in_one_minus_alpha():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).to(F64)
    layers = layer_saturation(model, X, {"first": model[0], "last": model[2]}, alphas=11)
    first = layers["first"]
    a = torch.linspace(0, 1, 11, dtype=F64)
    wx = X @ model[0].weight.T  # h(a x) - h(x) = (a - 1) W x
    assert torch.allclose(first.l2, (1 - a)[None] * wx.norm(dim=1, keepdim=True), atol=1e-13)
    h = a[None, :, None] * wx[:, None] + model[0].bias
    h1 = h[:, -1:]
    cosine = 1 - (h * h1).sum(-1) / (h.norm(dim=-1) * h1.norm(dim=-1))
    assert torch.allclose(first.cosine, cosine, atol=1e-13)
    assert set(layers) == {"first", "last"} and layers["last"].l2[:, -1].abs().max() == 0


def test_layer_names_and_cosine_threshold():
    model = LinearScore(torch.tensor([1.0, 1.0, 1.0], dtype=F64))
    with torch.no_grad():
        model.proj.bias.zero_()
    out = layer_saturation(model, X, "proj", alphas=11)
    sat = out["proj"]
    assert torch.isnan(sat.cosine[:, 0]).all()  # zero activation at a = 0 has no direction
    assert torch.allclose(sat.cosine[:, 1:], torch.zeros(3, 10, dtype=F64), atol=1e-14)
    assert torch.allclose(sat.alpha_below(0.01), torch.full((3,), 0.1, dtype=F64))


def test_ragged_layer_activations_per_atom_row():
    w = torch.tensor([1.0, 2.0], dtype=F64)
    model = RaggedLinear(w)
    atoms = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=F64)
    seg = torch.tensor([0, 1, 1])
    sat = layer_saturation(model, {"atoms": atoms}, model.embed, segments={"atoms": seg}, alphas=5)["embed"]
    a = torch.linspace(0, 1, 5, dtype=F64)
    norms = torch.tensor([1.0, math.sqrt(2.0**2 + 6.0**2)], dtype=F64)  # |W atoms_e| over its rows
    assert torch.allclose(sat.l2, (1 - a)[None] * norms[:, None], atol=1e-13)


def test_layer_called_twice_or_unknown_is_refused():
    lin = torch.nn.Linear(3, 3).to(F64)

    def twice(x):
        return lin(lin(x)).sum(-1)

    with pytest.raises(InputError, match="once per forward"):
        layer_saturation(twice, X, lin)
    with pytest.raises(InputError, match="submodule name"):
        layer_saturation(LinearScore(W), X, "nope")
    with pytest.raises(InputError, match="store_path"):
        curve_from_attribution(integrated_gradients(Saturating(W), X, steps=4))
    with pytest.raises(InputError, match="alphas in"):
        saturation_curve(Saturating(W), X, alphas=[0.5, 1.5])


def test_plots_are_written(tmp_path):
    curve = saturation_curve(Saturating(W), X, alphas=11)
    png = plot_saturation(curve, tmp_path / "sat.png", normalize=True, title="saturating")
    svg = plot_saturation(curve, tmp_path / "sat.svg")
    layers = layer_saturation(Saturating(W), X, "proj", alphas=11)
    lay = plot_layer_saturation(layers, tmp_path / "layers.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and lay.stat().st_size > 1000
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(InputError, match="ending in"):
        plot_saturation(curve, tmp_path / "sat.txt")


def test_grid_rule_records_the_path_on_exactly_that_grid():
    alphas, weights = grid_rule([0.25, 0.5])
    assert alphas.tolist() == [0.0, 0.25, 0.5, 1.0]
    assert weights.tolist() == [0.125, 0.25, 0.375, 0.25]  # trapezoid on uneven gaps, sums to 1
    res = integrated_gradients(Saturating(W), X, rule=(alphas, weights), steps=4, store_path=True)
    assert torch.equal(curve_from_attribution(res).alphas, alphas)
