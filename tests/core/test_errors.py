"""Bad input raises a SciAttrError that says what was expected and what was got."""

import pytest
import torch

from sciattr import integrated_gradients
from sciattr.errors import InputError, ModelOutputError, SciAttrError, TargetError

F64 = torch.float64


def lin(x):
    return x @ torch.ones(3, 2, dtype=x.dtype)


def test_baseline_shape_mismatch():
    with pytest.raises(InputError, match=r"baseline for 'input' has shape \(2, 2\); expected \(4, 3\)"):
        integrated_gradients(lin, torch.randn(4, 3, dtype=F64), target=0, baselines=torch.zeros(2, 2))


def test_target_out_of_range():
    with pytest.raises(TargetError, match=r"target 5 is out of range.*\[0, 1\]"):
        integrated_gradients(lin, torch.randn(4, 3, dtype=F64), target=5)
    with pytest.raises(TargetError, match="one entry per example"):
        integrated_gradients(lin, torch.randn(4, 3, dtype=F64), target=[0, 1])
    with pytest.raises(TargetError, match="one output value per example"):
        integrated_gradients(lin, torch.randn(4, 3, dtype=F64))


def test_non_finite_model_output():
    def f(x):
        return torch.log(x.sum(-1))  # log(0) at the baseline

    with pytest.raises(ModelOutputError, match=r"not finite for example\(s\) \[0\] \(at alpha in \[0.0\]\)"):
        integrated_gradients(f, torch.ones(1, 3, dtype=F64), steps=4)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "many"])
def test_bad_steps(steps):
    with pytest.raises(InputError, match="steps must be a positive integer, 'auto' or None; got "):
        integrated_gradients(lin, torch.randn(2, 3, dtype=F64), target=0, steps=steps)


def test_output_not_differentiable_in_input():
    def f(x, y):
        return (x.sum(-1) + y.detach().sum(-1))

    with pytest.raises(InputError, match="does not depend differentiably on input 'y'"):
        integrated_gradients(f, {"x": torch.randn(2, 3, dtype=F64), "y": torch.randn(2, 3, dtype=F64)})


def test_integer_and_non_finite_inputs():
    with pytest.raises(InputError, match="must be a floating-point tensor.*got dtype torch.int64"):
        integrated_gradients(lin, torch.ones(2, 3, dtype=torch.long), target=0)
    x = torch.randn(3, 3, dtype=F64)
    x[1, 2] = float("nan")
    with pytest.raises(InputError, match=r"non-finite values in rows \[1\]"):
        integrated_gradients(lin, x, target=0)


def test_misc_option_errors():
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(InputError, match="method must be one of"):
        integrated_gradients(lin, x, target=0, rule="simpson")
    with pytest.raises(InputError, match="unknown baseline 'blur'"):
        integrated_gradients(lin, x, target=0, baselines="blur")
    with pytest.raises(InputError, match="same number of examples"):
        integrated_gradients(lambda a, b: a.sum(-1) + b.sum(-1), {"a": x, "b": torch.randn(3, 3, dtype=F64)})
    with pytest.raises(InputError, match="one row per example"):
        integrated_gradients(lambda x, s: lin(x) * s, x, target=0, forward_kwargs={"s": torch.ones(5, 1)})
    with pytest.raises(InputError, match="memory_budget"):
        integrated_gradients(lin, x, target=0, memory_budget="lots")
    with pytest.raises(InputError, match="inputs must be a tensor or a mapping"):
        integrated_gradients(lin, [1.0, 2.0], target=0)


def test_errors_share_one_family():
    for cls in (InputError, TargetError, ModelOutputError):
        assert issubclass(cls, SciAttrError)
