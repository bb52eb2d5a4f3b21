import math

import pytest
import torch

from sciattr.core.quadrature import (
    gauss_legendre,
    quadrature,
    riemann_left,
    riemann_middle,
    riemann_right,
    trapezoid,
)
from sciattr.errors import InputError

RULES = [riemann_left, riemann_right, riemann_middle, trapezoid, gauss_legendre]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weights_sum_to_one_in_input_dtype(rule, dtype):
    for n in (1, 2, 3, 50, 301):
        a, w = rule(n, dtype, "cpu")
        assert a.dtype == dtype and w.dtype == dtype and a.shape == w.shape == (n,)
        assert float(w.sum()) == pytest.approx(1.0, abs=10 * torch.finfo(dtype).eps * n)
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_trapezoid_endpoints_and_sum_exact():
    a, w = trapezoid(5)
    assert a.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert w.tolist() == [0.125, 0.25, 0.25, 0.25, 0.125]


@pytest.mark.parametrize("n", [1, 3, 8])
def test_gauss_legendre_exact_for_degree_2n_minus_1(n):
    a, w = gauss_legendre(n)
    for deg in range(2 * n):
        assert float((w * a ** deg).sum()) == pytest.approx(1.0 / (deg + 1), abs=1e-14)


@pytest.mark.parametrize("rule,order", [(riemann_left, 1), (riemann_right, 1), (riemann_middle, 2), (trapezoid, 2)])
def test_convergence_order(rule, order):
    f = torch.exp
    exact = math.e - 1
    errs = []
    for n in (16, 32):
        a, w = rule(n)
        errs.append(abs(float((w * f(a)).sum()) - exact))
    assert math.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.1)


def test_explicit_pair_and_errors():
    a, w = quadrature(([0.25, 0.75], [0.5, 0.5]), 0, torch.float64)
    assert a.tolist() == [0.25, 0.75] and w.tolist() == [0.5, 0.5] and w.dtype == torch.float64
    with pytest.raises(InputError, match="method must be one of"):
        quadrature("simpson", 5)
    with pytest.raises(InputError, match="steps must be an integer >= 1"):
        riemann_left(0)
    with pytest.raises(InputError, match="equal length"):
        quadrature(([0.1, 0.2], [1.0]), 0)
