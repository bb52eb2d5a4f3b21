"""Faithfulness of atom attributions: ablation curves, AOPC, localization and ERASER scores.

Reproduces the evaluation of Section 2.5 of Sundararajan, Taly & Yan, "Gradients of
Counterfactuals" -- **Fig. 5**, the area over the perturbation curve (AOPC, Samek et al. 2017)
of integrated gradients against gradients at the input, and the localization study (how much
attribution falls on the part that carries the label) -- on the shipped ``w2n2-benzene`` model
(W2N2 Weave network, "does the molecule contain a benzene ring?"), where the ground truth is
known: the atoms of the benzene rings.

For the predicted probability of benzene-containing NCI molecules, four rankings of the atoms
are compared -- integrated gradients, the gradient at the molecule, gradient x input and a
seeded random ranking:

* **ablation curve / AOPC** -- atoms are removed (their features set to the zero baseline) in
  order of attribution, one per step, for ``L = 6`` steps (the size of a benzene ring; the paper
  removed the top 10 % of the pixels); AOPC = 1/(L+1) sum_k (f(x) - f(x_(k)));
* **localization** -- AUROC and precision@k of the atom attributions against the benzene atoms;
* **ERASER** (DeYoung et al. 2020) -- comprehensiveness and sufficiency of the top 1/5/10/20/50 %
  of the atoms.

Molecules are ragged inputs: all atoms of all molecules form one ``"atoms"`` table and all atom
pairs one ``"pairs"`` table, grouped by ``segments``. ``sciattr.chem.ragged_graphs`` gives these
inputs and the forward that the engine and the diagnostics call on the disjoint union of a
chunk's replicas (the same one ``explain_graphs`` uses). Atom pairs are kept as they are (group
id -1): only atoms are ranked and removed.

Run: ``python tutorials/07_faithfulness.py [--fast] [--out tutorials/out]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sciattr import gradient, gradient_x_input, integrated_gradients
from sciattr.chem import explain_graphs, featurize_batch, ragged_graphs
from sciattr.datasets.nci import load_nci
from sciattr.datasets.tasks import get_task
from sciattr.diagnostics import ablation_curve, eraser_scores, localization, plot_ablation
from sciattr.zoo import load_featurizer, load_model

MODEL = "w2n2-benzene"

#: Atoms removed, one per perturbation step (a benzene ring has six).
ABLATION_STEPS = 6


def probability(output: torch.Tensor) -> torch.Tensor:
    """The score: the predicted probability of the benzene class."""
    return torch.sigmoid(output[:, 0])


def random_attributions(inputs: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Seeded uniform noise of the inputs' shapes: a random ranking of the atoms."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(x.shape, generator=generator, dtype=x.dtype) for name, x in inputs.items()}


def benzene_mask(graphs: list) -> torch.Tensor:
    """``(N,)`` True for atom rows in a benzene ring (the ground truth of the task)."""
    task = get_task("benzene")
    masks = []
    for g in graphs:
        ring = {a for matches in task.rule_matches(g.mol) for match in matches for a in match}
        masks.append(torch.tensor([i in ring for i in range(g.atoms.shape[0])]))
    return torch.cat(masks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer molecules and quadrature steps")
    parser.add_argument("--out", type=Path, default=Path("tutorials/out"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    model, featurizer = load_model(MODEL), load_featurizer(MODEL)
    task = get_task("benzene")
    count, steps = (12, 32) if args.fast else (100, 64)
    molecules = [m for m in load_nci(limit=10 * count).mols if task.is_positive(m)][:count]
    graphs, _, errors = featurize_batch(featurizer, molecules)
    union = ragged_graphs(model, graphs)
    forward = union.forward
    groups = union.atom_groups()
    common = {"target": probability, "segments": union.segments}

    attributions = {
        "integrated_gradients": integrated_gradients(forward, union.inputs, steps=steps, **common),
        "gradient": gradient(forward, union.inputs, **common),
        "gradient_x_input": gradient_x_input(forward, union.inputs, **common),
        "random": random_attributions(union.inputs, seed=0),
    }
    ig = attributions["integrated_gradients"]
    adapter = explain_graphs(model, graphs, target=probability, steps=steps)
    agreement = (ig.attributions["atoms"] - adapter.attributions["atoms"]).abs().max()
    print(
        f"{len(graphs)} benzene molecules ({len(errors)} not featurized); IG of the union forward vs the "
        f"chemistry adapter: max |difference| {float(agreement):.2g}; max relative completeness gap "
        f"{float(ig.relative_gap.max()):.3g}"
    )

    truth = {"atoms": benzene_mask(graphs)}
    options = {"groups": groups, **common}
    curves, rows = {}, []
    for method, attribution in attributions.items():
        curves[method] = ablation_curve(
            forward, union.inputs, attribution, method=method, perturbation_steps=ABLATION_STEPS, **options
        )
        eraser = eraser_scores(forward, union.inputs, attribution, **options)
        loc = localization(attribution, truth, groups=groups, segments=union.segments)
        rows.append(
            (
                method,
                curves[method].mean_aopc,
                float(curves[method].drops[:, 3].mean()),
                loc.mean_auroc,
                loc.mean_precision,
                float(eraser.aggregate_comprehensiveness.mean()),
                float(eraser.aggregate_sufficiency.mean()),
            )
        )

    head = (
        "method",
        f"AOPC ({ABLATION_STEPS} atoms)",
        "drop@3 atoms",
        "AUROC",
        "precision@k",
        "comprehensiveness",
        "sufficiency",
    )
    lines = [f"{head[0]:<22}" + "".join(f"{h:>18}" for h in head[1:])]
    lines += [f"{r[0]:<22}" + "".join(f"{v:>18.4f}" for v in r[1:]) for r in rows]
    text = "\n".join(lines)
    print(text)
    (args.out / "07_faithfulness.txt").write_text(text + "\n")
    figure = plot_ablation(
        curves,
        args.out / "07_fig5_aopc.png",
        title=f"{MODEL}: atoms removed in order of attribution (probability)",
    )
    print(f"wrote {args.out / '07_faithfulness.txt'} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
