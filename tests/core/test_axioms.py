"""The axioms of Sundararajan, Taly & Yan (2017), checked against analytic values in float64."""

import pytest
import torch

from sciattr import gradient, integrated_gradients

F64 = torch.float64


def relu(x):
    return torch.relu(x)


def test_sensitivity_one_minus_relu():
    # f(x) = 1 - ReLU(1 - x): at x = 2 the gradient is 0, but f(2) - f(0) = 1, so IG must be 1.
    def f(x):
        return (1 - relu(1 - x)).sum(-1)

    x = torch.tensor([[2.0]], dtype=F64)
    ig = integrated_gradients(f, x, steps=1000, rule="riemann_middle")
    grad = gradient(f, x)
    assert grad.attributions["input"].item() == 0.0
    # the kink at x = 1 (alpha = 1/2) lies on a cell boundary of the midpoint rule: exact
    assert ig.attributions["input"].item() == pytest.approx(1.0, abs=1e-12)
    assert ig.forward_x.item() == 1.0 and ig.forward_baseline.item() == 0.0


def _f_appendix(x):
    x1, x2 = x[:, 0], x[:, 1]
    return relu(relu(x1) - 1 - relu(x2))


def _g_appendix(x):
    x1, x2 = x[:, 0], x[:, 1]
    return relu(relu(x1 - 1) - relu(x2))


def test_implementation_invariance_appendix_networks():
    x = torch.tensor([[3.0, 1.0]], dtype=F64)
    # f and g are the same function
    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 4, 29, dtype=F64),
                                      torch.linspace(-3, 4, 29, dtype=F64), indexing="ij"), -1).reshape(-1, 2)
    assert torch.equal(_f_appendix(grid), _g_appendix(grid))
    opts = {"steps": 6000, "rule": "riemann_middle"}
    a_f = integrated_gradients(_f_appendix, x, **opts).attributions["input"]
    a_g = integrated_gradients(_g_appendix, x, **opts).attributions["input"]
    # analytic: along (3a, a), h(a) = ReLU(2a - 1) with active region a > 1/2 (x1 > 1 and x1 - 1 > x2).
    # dh/dx1 = 1 there, dh/dx2 = -1 there: IG = (3 * 1/2, -1 * 1/2) = (1.5, -0.5); total 1 = f(x) - f(0)
    expected = torch.tensor([[1.5, -0.5]], dtype=F64)
    torch.testing.assert_close(a_f, expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(a_g, expected, atol=1e-9, rtol=0)
    # gradients differ at points where ReLU(x1) - 1 vs ReLU(x1 - 1) saturate differently? they are
    # the same function, so any gradient-based method of a function is implementation invariant too
    torch.testing.assert_close(a_f, a_g, atol=1e-12, rtol=0)


def test_dummy_feature_gets_zero():
    def f(x):
        return torch.tanh(x[:, 0] * 2.0) + x[:, 1] ** 2  # x[:, 2] is a dummy

    x = torch.tensor([[0.7, -1.3, 5.0], [1.0, 2.0, -3.0]], dtype=F64)
    res = integrated_gradients(f, x, steps=64)
    assert torch.all(res.attributions["input"][:, 2] == 0)


def test_linearity():
    w1 = torch.tensor([0.5, -1.0, 2.0], dtype=F64)

    def f1(x):
        return torch.tanh(x @ w1)

    def f2(x):
        return (x ** 3).sum(-1) * 0.1

    x = torch.randn(4, 3, dtype=F64)
    a, b = 2.5, -0.75
    ig1 = integrated_gradients(f1, x, steps=64).attributions["input"]
    ig2 = integrated_gradients(f2, x, steps=64).attributions["input"]
    ig = integrated_gradients(lambda z: a * f1(z) + b * f2(z), x, steps=64).attributions["input"]
    torch.testing.assert_close(ig, a * ig1 + b * ig2, atol=1e-13, rtol=1e-12)


def test_completeness_float64_smooth_model_reaches_1e_12():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                torch.nn.Softplus(), torch.nn.Linear(16, 3)).double()
    x = torch.randn(10, 6, dtype=F64)
    res = integrated_gradients(model, x, target=2, steps=64, baselines=0.3)
    assert res.completeness_gap.abs().max() < 1e-12
    torch.testing.assert_close(res.forward_x, model(x)[:, 2], atol=0, rtol=0)
    torch.testing.assert_close(res.forward_baseline, model(torch.full_like(x, 0.3))[:, 2], atol=0, rtol=0)


@pytest.mark.parametrize("rule", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                                  "gausslegendre"])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_linear_model_exact_at_any_step_count(rule, steps):
    if rule == "riemann_trapezoid" and steps == 1:
        steps = 2
    w = torch.tensor([1.5, -2.0, 0.25, 4.0], dtype=F64)
    x = torch.randn(5, 4, dtype=F64)
    base = torch.randn(1, 4, dtype=F64)
    res = integrated_gradients(lambda z: z @ w + 1.0, x, baselines=base, steps=steps, rule=rule)
    torch.testing.assert_close(res.attributions["input"], (x - base) * w, atol=1e-14, rtol=1e-13)


def test_symmetry_preserving():
    # F is symmetric in (x1, x2); equal inputs and baselines on them -> equal attributions
    def f(x):
        return torch.sigmoid(x[:, 0] * x[:, 1] + 0.3 * x[:, 2]) + torch.relu(x[:, 0] + x[:, 1] - 1)

    x = torch.tensor([[1.7, 1.7, -0.4]], dtype=F64)
    res = integrated_gradients(f, x, steps=200)
    a = res.attributions["input"][0]
    assert a[0].item() == pytest.approx(a[1].item(), abs=1e-12)
    assert a[0].item() != 0.0
