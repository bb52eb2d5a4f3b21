"""Saturation and interior gradients of a shipped W2N2 molecule network.

Reproduces, on the shipped ``w2n2-benzene`` model (Kearnes et al.'s W2N2 Weave architecture,
trained by ``python -m sciattr.zoo.train_chem`` to tell whether an NCI molecule has a benzene
ring), the saturation analysis of Sundararajan, Taly & Yan, "Gradients of Counterfactuals":

* **Fig. 13 (a)** -- the predicted probability ``sigmoid F(a x)`` along the scaling path for
  active (benzene-containing) molecules, and **Fig. 13 (b)** -- the sum of the input gradients
  along it. The paper saw saturation of the W2N2 network "near the vicinity of the input
  (0.9 <= a <= 1)"; we report the fraction of the score change left for the last 10 % of the
  path and the ``a`` at which 90 % of it is reached.
* **Fig. 2 (a) vs (b)** -- the same for the probability and for the pre-sigmoid logit: does the
  logit saturate too, or only the squashing function?
* **Fig. 3** -- interior gradients of one molecule: per-atom ``grad F(a x) * x`` for a range of
  ``a`` (the paper's 0.02 ... 1.0), as a still grid and as a GIF beside the trend of the mean
  absolute importance, and the gradients at the molecule compared with those inside the path.

Everything goes through the domain-free :mod:`sciattr.diagnostics` on the chemistry adapter's
result: ``explain_molecules(..., rule=grid_rule(...), store_path=True)`` records the path on a
grid, ``curve_from_attribution`` and ``frames_from_attribution`` read it.

Run: ``python tutorials/06_saturation_interior.py [--fast] [--out tutorials/out]``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch

from sciattr.chem import explain_molecules
from sciattr.datasets.nci import load_nci
from sciattr.datasets.tasks import get_task
from sciattr.diagnostics import (
    PAPER_ALPHAS,
    curve_from_attribution,
    frames_from_attribution,
    grid_rule,
    plot_saturation,
    render_bars,
)
from sciattr.zoo import load_featurizer, load_model

MODEL = "w2n2-benzene"


def probability(output: torch.Tensor) -> torch.Tensor:
    """The score of Fig. 13 (a): the predicted probability of the benzene class."""
    return torch.sigmoid(output[:, 0])


def active_molecules(count: int, scan: int) -> list:
    """The first ``count`` benzene-containing molecules among the first ``scan`` NCI records."""
    task = get_task("benzene")
    return [mol for mol in load_nci(limit=scan).mols if task.is_positive(mol)][:count]


def benzene_atoms(mol) -> set[int]:
    """Indices of the atoms in any benzene ring of ``mol`` (the task's ground truth)."""
    return {atom for matches in get_task("benzene").rule_matches(mol) for match in matches for atom in match}


def path_grid(points: int) -> torch.Tensor:
    """An even grid of ``points`` positions plus the paper's Fig. 3 positions."""
    grid = torch.cat(
        [torch.linspace(0, 1, points, dtype=torch.float64), torch.tensor(PAPER_ALPHAS, dtype=torch.float64)]
    )
    return torch.unique(torch.round(grid * 1e9) / 1e9)


def nearest(alphas: torch.Tensor, alpha: float) -> int:
    """Index of the grid position closest to ``alpha`` (grids follow the model's float32)."""
    return int((alphas - alpha).abs().argmin())


def report_curve(label: str, curve) -> str:
    """The curve's summary numbers, averaged over molecules."""
    start, end = float(curve.scores[:, 0].mean()), float(curve.scores[:, -1].mean())
    late = 1 - curve.saturation_index(at=0.9)
    grad_ratio = curve.gradient_norm[:, -1] / curve.gradient_norm.max(1).values
    lines = [
        f"{label}: {curve.scores.shape[0]} molecules",
        f"  mean F(x') = {start:.4g}, mean F(x) = {end:.4g}",
        f"  saturation index (change reached at a = 0.2): {float(curve.saturation_index().mean()):.3f}",
        f"  a at which 90% of the change is reached: mean {float(curve.alpha_reaching(0.9).mean()):.3f}",
        f"  change left for 0.9 <= a <= 1: mean {float(late.mean()):.4f}, max {float(late.max()):.4f}",
        f"  |gradient| at the molecule / largest on the path: median {float(grad_ratio.median()):.3g}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer molecules and path positions")
    parser.add_argument("--out", type=Path, default=Path("tutorials/out"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    model, featurizer = load_model(MODEL), load_featurizer(MODEL)
    molecules = active_molecules(8 if args.fast else 25, 200 if args.fast else 600)
    grid = path_grid(26 if args.fast else 101)
    rule = grid_rule(grid)
    explain = functools.partial(
        explain_molecules,
        model,
        molecules,
        featurizer=featurizer,
        steps=len(grid),
        rule=rule,
        store_path=True,
    )

    # Fig. 13 (a, b) and Fig. 2 (a): the probability; Fig. 2 (b): the logit
    prob = explain(target=probability)
    logit = explain(target=0)
    prob_curve, logit_curve = curve_from_attribution(prob), curve_from_attribution(logit)
    print(report_curve("probability (Fig. 13a / 2a)", prob_curve))
    print(report_curve("logit (Fig. 2b)", logit_curve))
    written = [
        plot_saturation(
            prob_curve,
            args.out / "06_fig13_probability.png",
            title=f"{MODEL}: probability along the path (Fig. 13)",
        ),
        plot_saturation(
            logit_curve,
            args.out / "06_fig2b_logit.png",
            normalize=True,
            title=f"{MODEL}: logit along the path, normalized (Fig. 2b)",
        ),
    ]

    # Fig. 3: interior gradients of the first molecule, one value per atom
    frames = frames_from_attribution(prob, "atoms")
    mol = prob.molecules[0]
    labels = [f"{atom.GetSymbol()}{atom.GetIdx()}" for atom in mol.GetAtoms()]
    render = functools.partial(render_bars, labels=labels, size=(5.0, 3.0))
    per_atom = frames.frames(0, sum_trailing=1)  # (K, atoms)
    trend = frames.magnitude()[0]
    peak = int(trend.argmax())
    ring = benzene_atoms(mol)
    print(
        f"\ninterior gradients of {prob.smiles[0]} ({mol.GetNumAtoms()} atoms, {len(ring)} in benzene rings)"
    )
    print(
        "  mean |importance| at a = 0.02 / 0.2 / 0.6 / 1.0: "
        + " / ".join(f"{float(trend[nearest(frames.alphas, a)]):.3g}" for a in (0.02, 0.2, 0.6, 1.0))
    )
    for label, k in (
        (f"the peak of the trend, a = {float(frames.alphas[peak]):.2f}", peak),
        ("the molecule, a = 1", -1),
    ):
        top = per_atom[k].abs().argsort(descending=True)[: len(ring)].tolist()
        print(
            f"  top {len(ring)} atoms at {label}: {[labels[i] for i in top]} "
            f"({sum(i in ring for i in top)} in a benzene ring)"
        )
    ig_atoms = frames.frames(0, cumulative=True, sum_trailing=1)[-1]
    print(
        f"  integrated gradients: atoms sum to {float(ig_atoms.sum()):.4f}, atom pairs to "
        f"{float(prob.per_example('pairs')[0]):.4f}; F(x) - F(x') = {float(prob.delta[0]):.4f} "
        f"(completeness gap of the grid: {float(prob.completeness_gap[0]):.2g})"
    )
    written.append(
        frames.grid(
            args.out / "06_fig3_interior_grid.png",
            0,
            alphas=PAPER_ALPHAS,
            sum_trailing=1,
            render_frame=render,
        )
    )
    written.append(
        frames.animate(
            args.out / "06_fig3_interior.gif", 0, sum_trailing=1, render_frame=render, duration_ms=250
        )
    )
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
