"""The axioms of integrated gradients, checked on the papers' own counterexamples.

Reproduces Section 2 of Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks"
(ICML 2017) and Section 2.5-2.6 / Appendix B (Figure 14) of "Gradients of Counterfactuals":

* **Sensitivity** -- ``f(x) = 1 - ReLU(1 - x)`` at ``x = 2`` with baseline 0: the output changes
  by 1, yet the gradient (and gradient x input) is 0 there because ``f`` is flat for ``x > 1``.
  Integrated gradients give exactly 1.
* **Implementation invariance** -- the appendix networks ``f = ReLU(ReLU(x1) - 1 - ReLU(x2))``
  and ``g = ReLU(ReLU(x1 - 1) - ReLU(x2))`` compute the same function with different internals.
  At ``(x1, x2) = (3, 1)`` from the zero baseline, the straight path ``a (3, 1)`` switches the
  output unit on at ``a = 1/2`` and the gradient there is ``(1, -1)``, so integrated gradients
  are ``(3 * 1/2, -1 * 1/2) = (1.5, -0.5)`` for both networks (they sum to ``f(3, 1) - f(0, 0) = 1``).
  (Figure 14 of the draft prints ``(2, -1)``, which also sums to 1 but is not the integral along
  the straight line; the analytic value is derived above and checked numerically below.)
* **Dummy** -- a variable the function ignores gets exactly zero.
* **Linearity** -- attributions of ``a f1 + b f2`` are ``a`` times those of ``f1`` plus ``b`` times
  those of ``f2``.
* **Completeness** -- attributions add up to ``F(x) - F(x')`` (here for a smooth network, with the
  Gauss-Legendre rule).
* **Symmetry preservation** -- two variables the function treats symmetrically, given equal
  values (and equal baselines), get equal attributions.

The script prints one table (axiom, quantity, analytic value, integrated gradients, gradient,
gradient x input, whether IG satisfies the axiom) and writes it, with a figure of the
sensitivity example's path (score and gradient along ``a``), into ``--out``.

Run: ``python tutorials/01_axioms.py [--fast] [--out tutorials/out]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sciattr import gradient, gradient_x_input, integrated_gradients
from sciattr.diagnostics import plot_saturation, saturation_curve

F64 = torch.float64


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def one_minus_relu(x: torch.Tensor) -> torch.Tensor:
    """f(x) = 1 - ReLU(1 - x), one input."""
    return 1 - relu(1 - x[:, 0])


def network_f(x: torch.Tensor) -> torch.Tensor:
    """Appendix network f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2))."""
    return relu(relu(x[:, 0]) - 1 - relu(x[:, 1]))


def network_g(x: torch.Tensor) -> torch.Tensor:
    """Appendix network g(x1, x2) = ReLU(ReLU(x1 - 1) - ReLU(x2)), functionally equal to f."""
    return relu(relu(x[:, 0] - 1) - relu(x[:, 1]))


def ignores_x2(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x[:, 0]) * x[:, 0]


def smooth_one(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x[:, 0] * x[:, 1]) + x[:, 2] ** 2


def smooth_two(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x[:, 0] - 2 * x[:, 2]) * x[:, 1]


def symmetric(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x[:, 0] + x[:, 1]) * torch.cos(x[:, 2])


class Row:
    """One line of the table."""

    def __init__(self, axiom: str, quantity: str, analytic, ig, grad, gxi, holds: bool):
        self.cells = [
            axiom,
            quantity,
            _fmt(analytic),
            _fmt(ig),
            _fmt(grad),
            _fmt(gxi),
            "yes" if holds else "NO",
        ]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{v + 0.0:.4g}" for v in value) + ")"
    return f"{value + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


def _three(model, x, steps: int, rule: str = "riemann_middle"):
    """Integrated gradients, gradient and gradient x input of one example."""
    ig = integrated_gradients(model, x, steps=steps, rule=rule).attributions["input"][0]
    grad = gradient(model, x).attributions["input"][0]
    gxi = gradient_x_input(model, x).attributions["input"][0]
    return ig, grad, gxi


def axiom_rows(steps: int) -> list[Row]:
    rows = []
    # sensitivity: the kink at x = 1 sits at a = 1/2, a cell boundary of the midpoint rule (steps even)
    x = torch.tensor([[2.0]], dtype=F64)
    ig, grad, gxi = _three(one_minus_relu, x, steps)
    rows.append(
        Row(
            "sensitivity",
            "f=1-ReLU(1-x), x=2: attr(x)",
            1.0,
            ig,
            grad,
            gxi,
            abs(ig.item() - 1.0) < 1e-12 and grad.item() == 0.0,
        )
    )

    # implementation invariance
    x = torch.tensor([[3.0, 1.0]], dtype=F64)
    grid = torch.cartesian_prod(torch.linspace(-3, 3, 61, dtype=F64), torch.linspace(-3, 3, 61, dtype=F64))
    same_function = bool(torch.equal(network_f(grid), network_g(grid)))
    ig_f, grad_f, gxi_f = _three(network_f, x, steps)
    ig_g, grad_g, gxi_g = _three(network_g, x, steps)
    analytic = torch.tensor([1.5, -0.5], dtype=F64)
    rows.append(
        Row(
            "impl. invariance",
            "network f at (3, 1)",
            analytic,
            ig_f,
            grad_f,
            gxi_f,
            bool(torch.allclose(ig_f, analytic, atol=1e-12)),
        )
    )
    rows.append(
        Row(
            "impl. invariance",
            "network g at (3, 1)",
            analytic,
            ig_g,
            grad_g,
            gxi_g,
            same_function and bool(torch.allclose(ig_g, ig_f, atol=1e-12)),
        )
    )

    # dummy
    x = torch.tensor([[1.3, -2.0]], dtype=F64)
    ig, grad, gxi = _three(ignores_x2, x, steps, "gausslegendre")
    rows.append(Row("dummy", "f ignores x2: attr(x2)", 0.0, ig[1], grad[1], gxi[1], ig[1].item() == 0.0))

    # linearity
    x = torch.tensor([[0.7, -1.2, 0.4]], dtype=F64)

    def combined(z):
        return 2.0 * smooth_one(z) - 3.0 * smooth_two(z)

    ig_sum = integrated_gradients(combined, x, steps=steps).attributions["input"][0]
    ig_parts = (
        2.0 * integrated_gradients(smooth_one, x, steps=steps).attributions["input"][0]
        - 3.0 * integrated_gradients(smooth_two, x, steps=steps).attributions["input"][0]
    )
    rows.append(
        Row(
            "linearity",
            "2 f1 - 3 f2: max |diff|",
            0.0,
            (ig_sum - ig_parts).abs().max(),
            None,
            None,
            bool(torch.allclose(ig_sum, ig_parts, atol=1e-12)),
        )
    )

    # completeness on a smooth network
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(F64).eval()
    res = integrated_gradients(net, 2 * torch.randn(4, 3, dtype=F64), steps=min(steps, 64))
    gxi_res = gradient_x_input(net, res.inputs["input"])
    rows.append(
        Row(
            "completeness",
            "max |sum attr - (F(x)-F(x'))|",
            0.0,
            res.completeness_gap.abs().max(),
            None,
            gxi_res.completeness_gap.abs().max(),
            bool(res.relative_gap.max() < 1e-8),
        )
    )

    # symmetry preservation: x1 and x2 are symmetric in f and have equal values
    x = torch.tensor([[0.8, 0.8, 0.3]], dtype=F64)
    ig, grad, gxi = _three(symmetric, x, steps, "gausslegendre")
    rows.append(
        Row(
            "symmetry",
            "attr(x1) - attr(x2)",
            0.0,
            ig[0] - ig[1],
            grad[0] - grad[1],
            gxi[0] - gxi[1],
            abs((ig[0] - ig[1]).item()) < 1e-14,
        )
    )
    return rows


def table(rows: list[Row]) -> str:
    head = [
        "axiom",
        "quantity",
        "analytic",
        "integrated gradients",
        "gradient",
        "gradient x input",
        "IG holds",
    ]
    widths = [
        max(len(r.cells[i]) for r in rows + [Row(*head[:2], None, None, None, None, True)]) for i in range(7)
    ]
    widths = [max(w, len(h)) for w, h in zip(widths, head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r.cells, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer quadrature steps (for the test suite)")
    parser.add_argument("--out", type=Path, default=Path("tutorials/out"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    steps = 64 if args.fast else 512
    rows = axiom_rows(steps)
    text = table(rows)
    print(text)
    (args.out / "01_axioms.txt").write_text(text + "\n")

    # the sensitivity example along its path: the score rises until a = 1/2, then the gradient vanishes
    curve = saturation_curve(
        one_minus_relu, torch.tensor([[2.0]], dtype=F64), alphas=41 if args.fast else 201
    )
    figure = plot_saturation(
        curve, args.out / "01_sensitivity_path.png", title="f(x) = 1 - ReLU(1 - x) from x' = 0 to x = 2"
    )
    print(
        f"\nsensitivity path: F reaches {float(curve.progress()[0, -1]):.0%} of its change; "
        f"90% at alpha = {float(curve.alpha_reaching(0.9)[0]):.3f}; gradient at the input = "
        f"{float(curve.gradient_sum[0, -1]):.3g}"
    )
    print(f"all axioms hold for integrated gradients: {all(r.cells[-1] == 'yes' for r in rows)}")
    print(f"wrote {args.out / '01_axioms.txt'} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
