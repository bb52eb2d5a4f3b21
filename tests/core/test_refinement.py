"""Adaptive refinement: nested reuse, the well-posed stopping rule, warnings by name, expected gradients,
and the failures the engine must name instead of returning NaN."""

import math
import warnings

import pytest
import torch

from sciattr import integrated_gradients
from sciattr.errors import ConvergenceWarning, InputError, ModelOutputError

F64 = torch.float64


def _sharp(x):
    """A sigmoid step on x0 + x1 = 1 plus a linear term: needs many nodes to integrate."""
    return torch.sigmoid(40 * (x[:, 0] + x[:, 1] - 1.0)) + x[:, 2]


class Counted:
    """Counts the path replicas the model is evaluated on."""

    def __init__(self, f):
        self.f, self.rows = f, 0

    def __call__(self, x):
        self.rows += x.shape[0]
        return self.f(x)


def test_nested_refinement_evaluates_each_node_once():
    f = Counted(_sharp)
    x = torch.tensor([[0.6, 0.6, 0.0], [0.0, 0.0, 1.0], [0.3, 0.9, 0.5]], dtype=F64)
    res = integrated_gradients(f, x, tolerance=1e-3)
    assert res.converged.all()
    # the linear example stops at the first level (16 intervals, 17 nodes with both ends)
    assert int(res.steps[1]) == 16 and int(res.evaluations[1]) == 17
    assert int(res.steps[0]) > 16
    # every node of a trapezoid level with k intervals is evaluated once: k + 1 evaluations
    torch.testing.assert_close(res.evaluations, res.steps + 1)
    # and the model saw exactly those replicas: no level was recomputed
    assert f.rows == int(res.evaluations.sum())
    # the values are those of the fixed trapezoid at the final level
    for i in range(3):
        fixed = integrated_gradients(_sharp, x[i:i + 1], steps=int(res.steps[i]), rule="trapezoid")
        torch.testing.assert_close(res.attributions["input"][i], fixed.attributions["input"][0], atol=1e-14,
                                   rtol=1e-12)


def test_non_nested_rule_recomputes_and_says_so_in_the_count():
    f = Counted(_sharp)
    x = torch.tensor([[0.6, 0.6, 0.0]], dtype=F64)
    res = integrated_gradients(f, x, rule="gausslegendre", tolerance=1e-3)
    assert res.converged.all() and int(res.steps[0]) > 16
    # Gauss-Legendre nodes do not nest: each level costs its own nodes (plus the two end points once)
    levels = [16 * 2 ** j for j in range(int(math.log2(int(res.steps[0]) // 16)) + 1)]
    assert int(res.evaluations[0]) == sum(levels) + 2 == f.rows


@pytest.mark.parametrize("chunking", [{"batch_size": 1}, {"batch_size": 5}, {"batch_size": 33},
                                      {"memory_budget": 3000}])
def test_refinement_does_not_depend_on_chunk_size(chunking):
    x = torch.tensor([[0.6, 0.6, 0.0], [0.0, 0.0, 1.0], [0.3, 0.9, 0.5], [0.5, 0.45, -1.0]], dtype=F64)
    ref = integrated_gradients(_sharp, x, tolerance=1e-4, batch_size=10**6)
    got = integrated_gradients(_sharp, x, tolerance=1e-4, **chunking)
    torch.testing.assert_close(got.steps, ref.steps, atol=0, rtol=0)
    torch.testing.assert_close(got.evaluations, ref.evaluations, atol=0, rtol=0)
    torch.testing.assert_close(got.attributions["input"], ref.attributions["input"], atol=1e-15, rtol=1e-13)


def _cubic_minus_linear(x):
    return x[:, 0] ** 3 - x[:, 1]


def test_stopping_rule_is_well_posed_when_the_end_points_score_alike():
    # F(x) = F(x') = 0 at x = (1, 1), x' = 0, while the attributions are (1, -1): the quadrature
    # error (trapezoid on 3 a^2, 16 intervals: h^2/12 * 6 = 1/512) is small against them.
    x = torch.tensor([[1.0, 1.0]], dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = integrated_gradients(_cubic_minus_linear, x)
    assert float(res.forward_x[0] - res.forward_baseline[0]) == 0.0
    assert res.converged.all() and res.criterion == ["scale"]
    assert int(res.steps[0]) == 16 and int(res.evaluations[0]) == 17
    torch.testing.assert_close(res.completeness_gap, torch.tensor([1 / 512], dtype=F64), atol=1e-15, rtol=1e-12)
    # relative gap: against max(|delta|, sum |A|) = 2 + 1/512
    torch.testing.assert_close(res.relative_gap, torch.tensor([(1 / 512) / (2 + 1 / 512)], dtype=F64))
    # a tighter tolerance refines: the error falls as h^2, 1e-4 is met at 64 intervals
    tight = integrated_gradients(_cubic_minus_linear, x, tolerance=1e-4)
    assert int(tight.steps[0]) == 64 and int(tight.evaluations[0]) == 65 and tight.converged.all()
    torch.testing.assert_close(tight.completeness_gap, torch.tensor([1 / 8192], dtype=F64), atol=1e-15,
                               rtol=1e-12)


def test_delta_criterion_and_exact_criterion():
    x = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=F64)
    res = integrated_gradients(lambda z: z[:, 0] ** 3 + z[:, 1] ** 2, x)
    assert res.criterion == ["delta", "delta"]
    lin = integrated_gradients(lambda z: z @ torch.tensor([1.0, 2.0], dtype=F64), x)
    assert lin.criterion == ["exact", "exact"] and (lin.evaluations == 17).all()


def test_unconverged_examples_are_named_with_the_reason():
    x = torch.tensor([[0.0, 0.0, 1.0], [0.6, 0.6, 0.0]], dtype=F64)

    def kink(z):  # a ReLU kink on the path of the second example: slow, piecewise convergence
        return 50 * torch.relu(z[:, 0] + z[:, 1] - 1.0) + z[:, 2]

    with pytest.warns(ConvergenceWarning) as caught:
        res = integrated_gradients(kink, x, tolerance=1e-9, max_steps=64, example_names=["CCO", "row 7"])
    text = str(caught[0].message)
    assert "1 example(s)" in text and "row 7" in text and "CCO" not in text and "max_steps=64" in text
    assert res.converged.tolist() == [True, False]
    assert res.meta["unconverged"].keys() == {"row 7"}
    assert int(res.steps[1]) == 64
    # a fixed step count is never refined; the warning says how to ask for more
    with pytest.warns(ConvergenceWarning, match="fixed steps=4"):
        integrated_gradients(_sharp, x[1:], steps=4)


def test_example_names_must_match_the_examples():
    with pytest.raises(InputError, match="one label per example"):
        integrated_gradients(_sharp, torch.zeros(2, 3, dtype=F64), example_names=["a"])


def test_expected_gradients_of_a_linear_model_are_x_minus_mean_baseline_times_w():
    torch.manual_seed(3)
    w = torch.randn(4, dtype=F64)
    x = torch.randn(3, 4, dtype=F64)
    refs = [torch.randn(3, 4, dtype=F64) for _ in range(5)]
    res = integrated_gradients(lambda z: z @ w, x, baselines=refs)
    mean = torch.stack(refs).mean(0)
    torch.testing.assert_close(res.attributions["input"], (x - mean) * w, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(res.forward_baseline, mean @ w, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(res.completeness_gap, torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)


def test_expected_gradients_average_the_per_baseline_attributions():
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x = torch.randn(2, 3, dtype=F64)
    refs = [torch.randn(2, 3, dtype=F64) for _ in range(3)]
    res = integrated_gradients(model, x, target=0, baselines=refs, steps=32)
    each = [integrated_gradients(model, x, target=0, baselines=b, steps=32).attributions["input"] for b in refs]
    torch.testing.assert_close(res.attributions["input"], torch.stack(each).mean(0), atol=1e-14, rtol=1e-12)


def test_non_finite_gradient_is_an_error_naming_the_example():
    def norm(z):  # finite output, but d/dz sqrt(|z|^2) is 0/0 at the zero baseline
        return torch.sqrt((z ** 2).sum(-1))

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    with pytest.raises(ModelOutputError, match=r"gradient .*not finite") as caught:
        integrated_gradients(norm, x, example_names=["mol A", "mol B"])
    assert "mol A" in str(caught.value)
    # Gauss-Legendre never evaluates the gradient at alpha = 0: the same model is fine there
    res = integrated_gradients(norm, x, steps=8, rule="gausslegendre")
    torch.testing.assert_close(res.attributions["input"].sum(-1), norm(x), atol=1e-12, rtol=1e-12)


def test_non_finite_output_in_another_column_does_not_touch_the_target():
    def two(z):
        s = z.sum(-1)
        return torch.stack([2 * s, torch.log(s)], -1)  # log(0) = -inf at the baseline

    x = torch.tensor([[1.0, 2.0]], dtype=F64)
    res = integrated_gradients(two, x, target=0, rule="gausslegendre", steps=4)
    torch.testing.assert_close(res.attributions["input"], 2 * x, atol=1e-14, rtol=0)
    with pytest.raises(ModelOutputError, match="not finite"):
        integrated_gradients(two, x, target=1)
    # where the bad column sits on a node the target needs, the cause is named, never NaN returned
    with pytest.raises(ModelOutputError, match=r"column\(s\) \[1\] \(not the target\)"):
        integrated_gradients(two, x, target=0, rule="trapezoid", steps=4)


def test_input_dtype_must_match_the_model():
    model = torch.nn.Linear(3, 1).double()
    with pytest.raises(InputError, match="float64.*float32|float32.*float64"):
        integrated_gradients(model, torch.randn(2, 3), target=0)


def test_batch_norm_statistics_of_a_training_mode_model_are_left_as_found():
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)).double()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="training mode"):
        integrated_gradients(model, torch.randn(5, 3, dtype=F64), target=0, steps=8)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], atol=0, rtol=0)
    assert model.training
