"""Integrated gradients for molecules: atoms, atom pairs, accounting and the W1N2 dead features.

Reproduces Section 3.1 ("Ligand-based virtual screening") of Sundararajan, Taly & Yan,
"Gradients of Counterfactuals" and Figures 6/7 of "Axiomatic Attribution for Deep Networks"
(papers in ``/work/shared/papers/``), with the Weave models shipped in ``sciattr.zoo``:

1. **Counterfactuals {alpha * Features(mol)}** -- three NCI molecules of the test split are
   explained with the shipped W2N2 of the "has a benzene ring" task; atom features and atom-pair
   features are scaled together from zero. The script prints the atom table and checks
   completeness (the attributions add up to ``F(x) - F(x')``, the logit's change from the empty
   molecule), then draws every molecule with signed atom and bond colours (red positive, blue
   negative) and the atom x atom pair heat map of the paper's Fig. 7.
2. **Accounting** -- the paper's "atom pairs that have a bond between them cumulatively contribute
   46% of the prediction score, all other atom pairs -3%": our shares of atoms, bonded pairs and
   non-bonded pairs, by element and by bond type, and the total of SMARTS groups (benzene ring,
   nitro group ...).
3. **Dead features** -- the paper's W1N2 anecdote ("several carbon atoms ... received the same
   attribution of 0.0043 despite being bonded to different atoms"): the receptive-field
   diagnostic on the shipped W1N2 and W2N2 of the same task flags W1N2 and not W2N2, and the
   tied atoms are printed with their neighbours.
4. **Ground truth** -- on the SMARTS tasks the true atoms are known: the attribution AUROC of
   W1N2 and W2N2 on the positive test molecules of every task.
5. **Dataset level** -- attributions summed over functional groups and BRICS fragments of the
   test molecules predicted active (what the model looks for), and, on the measured
   CHEMBL2321810 series, the R-group substituents ranked by attribution against a Free--Wilson
   analysis of the pIC50.

6. **Baselines** -- F(x') beside F(x) and the baseline check on every row; the search for a
   baseline scoring at the decision threshold (:func:`sciattr.chem.neutral_baseline`); expected
   gradients over K baselines drawn from inactive test molecules
   (:class:`sciattr.chem.ReferenceBaselines`), each (molecule, baseline) checked for completeness;
   and what each does to the attribution AUROC of the benzene task.

Run: ``python tutorials/02_molecules.py [--fast] [--out DIR]`` (default ``tutorials/out/02_molecules``).
``--fast`` uses fewer molecules and quadrature nodes; every number is still computed.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem

from sciattr.chem import (
    ReferenceBaselines,
    account,
    aggregate_attribution,
    atom_scores,
    attribution_heatmap,
    compare_with_free_wilson,
    draw_attribution,
    draw_attribution_grid,
    draw_grid,
    explain_molecules,
    group_total,
    molecule_report,
    neutral_baseline,
    receptive_field_report,
    save_picture,
)
from sciattr.datasets import TASKS, load_chembl2321810, load_nci, score_attributions, split_indices
from sciattr.zoo import available_models, load_featurizer, load_model

#: NCI serial numbers of the molecules explained in detail (test-split positives of the benzene task).
SHOWCASE = ("7", "28", "371")
#: Groups whose attribution totals are printed when a molecule has them.
GROUPS = {
    "benzene ring": "c1ccccc1",
    "nitro group": "[N+](=O)[O-]",
    "carbonyl C=O": "[CX3]=[OX1]",
    "carboxylic acid": "C(=O)[OH]",
    "amine N": "[NX3;H2,H1;!$(NC=O)]",
    "chlorine": "[Cl]",
}
SPLIT = (
    (0.8, 0.1, 0.1),
    0,
)  # the shipped models' split: fractions and seed (see sciattr/zoo/chem/RESULTS.md)


@dataclass(frozen=True)
class Settings:
    """How much work each section does."""

    showcase_tolerance: float  # steps double until every showcase molecule's gap is below this share
    dead_molecules: int  # test positives (besides the showcase) given to the receptive-field diagnostic
    auroc_molecules: int | None  # positive test molecules per task (None: all)
    auroc_steps: int
    series_molecules: int | None  # CHEMBL2321810 compounds (None: all 1,017)
    series_steps: int
    baseline_molecules: int  # benzene positives explained against each baseline
    baseline_samples: int  # K reference baselines per molecule (expected gradients)


FULL = Settings(
    showcase_tolerance=0.002,
    dead_molecules=60,
    auroc_molecules=None,
    auroc_steps=50,
    series_molecules=None,
    series_steps=50,
    baseline_molecules=100,
    baseline_samples=16,
)
FAST = Settings(
    showcase_tolerance=0.004,
    dead_molecules=10,
    auroc_molecules=30,
    auroc_steps=24,
    series_molecules=240,
    series_steps=12,
    baseline_molecules=20,
    baseline_samples=4,
)


# ---------------------------------------------------------------------------------------- helpers
def explain(model_name: str, molecules, **options):
    """``(result, model)``: integrated gradients of a shipped model's logit (zero baseline)."""
    model = load_model(model_name)
    result = explain_molecules(model, molecules, featurizer=load_featurizer(model), target=0, **options)
    result.meta["model"] = model_name
    return result, model


def percent(value: float) -> str:
    return f"{100 * value:+.1f}%"


def neighbourhood(mol, atom: int) -> str:
    """``"C4 [aromatic C3, single O7]"``: an atom and its bonded neighbours."""
    a = mol.GetAtomWithIdx(atom)
    bonds = sorted(
        f"{str(b.GetBondType()).lower()} {b.GetOtherAtom(a).GetSymbol()}{b.GetOtherAtomIdx(atom)}"
        for b in a.GetBonds()
    )
    return f"{a.GetSymbol()}{atom} [{', '.join(bonds)}]"


def section(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")


# ---------------------------------------------------------------------------------------- 1. molecules
def print_molecule(result, i: int, full_table: bool) -> None:
    score, base = float(result.forward_x[i]), float(result.forward_baseline[i])
    total = float(result.atom_feature_values(i).sum() + result.link_values(i).sum())
    print(f"\nmolecule {i + 1}: NCI {SHOWCASE[i]}  {result.smiles[i]}")
    print(
        f"  F(x) = {score:.4f} (logit; probability {1 / (1 + math.exp(-score)):.4f}),  F(x') = {base:.4f} "
        f"(the zero input),  F(x) - F(x') = {score - base:.4f}"
    )
    print(
        f"  sum of attributions = {total:.4f} over atoms + pairs "
        f"({int(result.steps[i])} intervals of the adaptive trapezoid rule); "
        f"completeness gap: {100 * float(result.relative_gap[i]):.4f}% of F(x) - F(x')"
    )
    if result.baseline_warnings[i]:
        print(f"  baseline check: {result.baseline_warnings[i]}")
    own = result.atom_feature_values(i).tolist()  # the atom's own features only
    scores = atom_scores(result, i).tolist()  # complete score: the default of to_atoms, tables and pictures
    rows = range(len(own)) if full_table else sorted(range(len(own)), key=lambda k: -abs(scores[k]))[:5]
    print(
        f"  {'atom and its bonds':<44} {'atom features':>14} {'complete score':>20}"
        + ("" if full_table else "   (5 largest |score|)")
    )
    for k in rows:
        print(f"  {neighbourhood(result.molecules[i], k):<44} {own[k]:>14.4f} {scores[k]:>20.4f}")


def draw_showcase(result, out: Path) -> list[Path]:
    """Molecule pictures (SVG + PNG), pair heat maps (Fig. 7) and an HTML report per molecule."""
    written = []
    for i in range(result.n_examples):
        title = f"W2N2 benzene, NCI {SHOWCASE[i]}"
        for suffix in ("svg", "png"):
            path = out / f"molecule_{i + 1}.{suffix}"
            draw_attribution(result, i, path, title=title)
            written.append(path)
        figure = attribution_heatmap(
            result, i, title=f"NCI {SHOWCASE[i]}: atom-pair attributions (atoms on the diagonal)"
        )
        figure.savefig(out / f"pair_heatmap_{i + 1}.png", dpi=110)
        written += [
            out / f"pair_heatmap_{i + 1}.png",
            molecule_report(result, out / f"molecule_{i + 1}.html", index=i, model_name="w2n2-benzene"),
        ]
    written.append(
        save_picture(draw_attribution_grid(result, image_format="png", columns=3), out / "molecules.png")
    )
    return written


# ---------------------------------------------------------------------------------------- 2. accounting
def print_accounting(result) -> None:
    for i in range(result.n_examples):
        parts = account(result, i)
        elements = ", ".join(f"{k} {percent(parts.share(v))}" for k, v in sorted(parts.by_element.items()))
        bonds = ", ".join(f"{k} {percent(parts.share(v))}" for k, v in sorted(parts.by_bond_type.items()))
        print(
            f"\nmolecule {i + 1} (F(x) - F(x') = {parts.delta:.3f}): "
            f"atoms {percent(parts.share(parts.atoms))}, "
            f"bonded pairs {percent(parts.share(parts.bonded))}, non-bonded pairs "
            f"{percent(parts.share(parts.nonbonded))} (sum {percent(1 + parts.share(parts.gap))})"
        )
        print(f"  by element: {elements}\n  bonded pairs by bond type: {bonds}")
        print_groups(result, i)


def print_groups(result, i: int) -> None:
    mol = result.molecules[i]
    for name, smarts in GROUPS.items():
        for match in mol.GetSubstructMatches(Chem.MolFromSmarts(smarts)):
            inside = group_total(result, i, match, links="internal")
            half = group_total(result, i, match, links="half")
            print(
                f"  {name:<16} atoms {list(match)}: {inside.total:+.3f} ({percent(inside.share)}) with its "
                f"internal pairs; {half.total:+.3f} ({percent(half.share)}) "
                "with half of every pair touching it"
            )


def print_dataset_accounting(result, label: str) -> None:
    parts = account(result)
    print(f"\nover {label} ({parts.n_molecules} molecules, F(x) - F(x') summed = {parts.delta:.1f}):")
    print(
        f"  atoms {percent(parts.share(parts.atoms))}, bonded pairs {percent(parts.share(parts.bonded))}, "
        f"non-bonded pairs {percent(parts.share(parts.nonbonded))}"
    )
    top = sorted(parts.by_element.items(), key=lambda kv: -abs(kv[1]))[:6]
    print("  by element: " + ", ".join(f"{k} {percent(parts.share(v))}" for k, v in top))
    print(
        "  by bond type: "
        + ", ".join(f"{k} {percent(parts.share(v))}" for k, v in sorted(parts.by_bond_type.items()))
    )


# ---------------------------------------------------------------------------------------- 3. dead features
def dead_features(molecules, showcase: int, out: Path) -> None:
    """The receptive-field diagnostic on W1N2 and W2N2; the largest W1N2 tie at radius 1, pictured."""
    results, reports = {}, {}
    for name in ("w1n2-benzene", "w2n2-benzene"):
        result, model = explain(name, molecules, steps=32)
        results[name], reports[name] = result, receptive_field_report(result)
        report, arch = reports[name], model.card["architecture"]
        print(
            f"\n{arch} ({name}; test ROC AUC {model.card['test']['roc_auc']:.3f} from its card), "
            f"{result.n_examples} molecules:"
        )
        head = [line for line in report.summary().splitlines() if not line.startswith("  molecule")]
        print("  " + "\n  ".join(head))
        bound = "at least " if report.effective_radius == report.max_radius else ""
        print(
            f"  {arch} flagged: {report.flagged} (effective radius {bound}{report.effective_radius}, "
            f"architecture {report.expected_radius})"
        )
    tie = first_tie(reports["w1n2-benzene"], showcase)
    print_tie(tie, results)
    picture_tie(tie, results, out / "w1n2_vs_w2n2.png")


def first_tie(report, showcase: int) -> dict:
    """The largest group of atoms of one showcase molecule tied at radius 1 (neighbours differ)."""
    groups: dict = {}
    for item in report.collapsed:
        if item["differ_at"] == 1 and item["molecule"] < showcase:
            key = (item["molecule"], item["attributions"][0])
            groups.setdefault(key, set()).update(item["atoms"])
    (molecule, value), atoms = max(groups.items(), key=lambda kv: (len(kv[1]), -kv[0][0]))
    return {"molecule": molecule, "value": value, "atoms": sorted(atoms)}


def print_tie(tie: dict, results: dict) -> None:
    i, atoms = tie["molecule"], tie["atoms"]
    mol = results["w1n2-benzene"].molecules[i]
    # the feature-only view: what flows through the atom's own representation (the diagnostic's view)
    w1 = results["w1n2-benzene"].atom_feature_values(i)
    w2 = results["w2n2-benzene"].atom_feature_values(i)
    print(
        f"\nW1N2 tie in molecule {i + 1} ({results['w1n2-benzene'].smiles[i]}): atoms "
        f"{', '.join(f'{mol.GetAtomWithIdx(a).GetSymbol()}{a}' for a in atoms)} all get {tie['value']:.4g} "
        "although they are bonded to different atoms (the paper: 0.0043)"
    )
    print(f"  {'atom and its bonds':<44} {'W1N2':>10} {'W2N2':>10}   (atom-feature attributions)")
    for a in atoms:
        print(f"  {neighbourhood(mol, a):<44} {float(w1[a]):>10.6f} {float(w2[a]):>10.6f}")
    spread = float(w2[atoms].max() - w2[atoms].min())
    print(
        f"  W1N2 spread {float(w1[atoms].max() - w1[atoms].min()):.2e}; W2N2 spread {spread:.4f} "
        "(a second weave module lets the neighbours' types in)"
    )


def picture_tie(tie: dict, results: dict, path: Path) -> None:
    i = tie["molecule"]
    names = ("w1n2-benzene", "w2n2-benzene")
    mol = Chem.Mol(results[names[0]].molecules[i])
    for a in tie["atoms"]:
        mol.GetAtomWithIdx(a).SetProp("atomNote", str(a))  # number the tied atoms in the picture
    mols = [mol, mol]
    atoms = [results[n].atom_feature_values(i).detach().double().numpy() for n in names]  # feature-only view
    bonds = [results[n].bond_values(i).detach().double().numpy() for n in names]
    legends = [
        f"{n.split('-')[0].upper()} atom features: atoms {tie['atoms']} tied"
        if n.startswith("w1n2")
        else f"{n.split('-')[0].upper()} atom features: same atoms differ"
        for n in names
    ]
    save_picture(
        draw_grid(
            mols,
            atoms,
            bonds,
            legends=legends,
            columns=2,
            panel=(420, 340),
            shared_scale=False,
            image_format="png",
        ),
        path,
    )


# ---------------------------------------------------------------------------------------- 4. ground truth
def localisation(nci, test: np.ndarray, settings: Settings) -> None:
    """Attribution AUROC of W1N2 and W2N2 on the positive test molecules of every task."""
    print(f"\n{'task':<22} {'model':<6} {'positives':>9} {'attribution AUROC':>18} {'max rel. gap':>13}")
    shipped = set(available_models())
    for task_name, task in TASKS.items():
        if not {f"w1n2-{task_name}", f"w2n2-{task_name}"} <= shipped:
            continue  # logic tasks: trained in tutorials/08_ground_truth.py
        positives = [int(i) for i in test if task.is_positive(nci.mols[i])][: settings.auroc_molecules]
        for arch in ("w1n2", "w2n2"):
            result, _ = explain(
                f"{arch}-{task_name}", [nci.mols[i] for i in positives], steps=settings.auroc_steps
            )
            masks = [task.true_masks(m) for m in result.molecules]  # on the processed (largest) fragment
            score = score_attributions([atom_scores(result, k) for k in range(result.n_examples)], masks)
            print(
                f"{task_name:<22} {arch.upper():<6} {score.n_scored:>9} {score.mean:>18.3f} "
                f"{float(result.relative_gap.abs().max()):>13.2e}"
            )
    print(
        "(0.5 is chance; atom scores = atom-feature attribution + half of each pair's; "
        "best over the true masks: one occurrence of the rules, or all of them)"
    )


# ---------------------------------------------------------------------------------------- 5. dataset level
def substructure_rankings(nci, test: np.ndarray, steps: int, limit: int | None, out: Path) -> None:
    molecules = [nci.mols[int(i)] for i in test][: None if limit is None else 4 * limit]
    result, _ = explain("w2n2-benzene", molecules, steps=steps)
    print_dataset_accounting(result, "the test molecules")
    for kind in ("functional_groups", "brics"):
        ranking = aggregate_attribution(result, kind=kind, min_count=3)
        print(
            f"\n{kind.replace('_', ' ')}: mean attribution per occurrence over the "
            f"{ranking.n_molecules} test "
            f"molecules predicted to have a benzene ring (logit > 0), units seen >= 3 times"
        )
        print("\n".join(str(ranking).splitlines()[1:13]))
        (out / f"ranking_{kind}.txt").write_text(str(ranking) + "\n")


def free_wilson_comparison(settings: Settings, out: Path) -> None:
    series = load_chembl2321810()
    chosen = slice(0, settings.series_molecules)
    result, model = explain("w2n2-chembl2321810", series.mols[chosen], steps=settings.series_steps)
    activity = np.asarray(series.values[chosen])[result.rows]
    comparison = compare_with_free_wilson(
        result.molecules, [atom_scores(result, k) for k in range(result.n_examples)], activity
    )
    print(
        f"\nW2N2 pIC50 regression (test R^2 {model.card['test']['r2']:.3f} from its card), "
        f"{result.n_examples} compounds, {comparison.n_molecules} decomposed on the scaffold (R1, R3, R10); "
        f"max completeness gap {100 * float(result.relative_gap.abs().max()):.2f}%"
    )
    print(
        f"Spearman(attribution, Free-Wilson coefficient), centred per position, over "
        f"{len(comparison.keys)} substituents seen >= 3 times: {comparison.spearman:.3f}"
    )
    print(
        "  per position: "
        + ", ".join(
            f"{k} {v:.3f}" if np.isfinite(v) else f"{k} n/a (< 3 substituents)"
            for k, v in sorted(comparison.per_position.items())
        )
    )
    print(
        f"  {'pos':<4} {'n':>3} {'attribution':>11} {'rank':>5} {'Free-Wilson':>11} {'rank':>5}  substituent"
    )
    for row in comparison.table()[:8]:
        print(
            f"  {row['position']:<4} {row['count']:>3} {row['attribution']:>11.3f} "
            f"{row['attribution_rank']:>5} "
            f"{row['free_wilson']:>11.3f} {row['free_wilson_rank']:>5}  {row['substituent']}"
        )
    scatter(comparison, out / "free_wilson.png")


def scatter(comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    a, f = comparison.centred("attribution"), comparison.centred("free_wilson")
    figure, ax = pyplot.subplots(figsize=(5.5, 4.5))
    for label in sorted({k[0] for k in comparison.keys}):
        keys = [k for k in comparison.keys if k[0] == label]
        ax.scatter([f[k] for k in keys], [a[k] for k in keys], label=label, s=18)
    ax.set_xlabel("Free-Wilson coefficient (pIC50, centred per position)")
    ax.set_ylabel("mean attribution (centred per position)")
    ax.set_title(f"CHEMBL2321810 substituents, Spearman {comparison.spearman:.2f}")
    ax.legend(title="position")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


# ---------------------------------------------------------------------------------------- 6. baselines
def baselines(nci, test: np.ndarray, settings: Settings) -> None:
    """Zero baseline, the neutral-baseline search and expected gradients on the benzene task."""
    import warnings

    from sciattr.errors import BaselineWarning

    task = TASKS["benzene"]
    positives = [nci.mols[int(i)] for i in test if task.is_positive(nci.mols[int(i)])][: settings.baseline_molecules]
    negatives = [nci.mols[int(i)] for i in test if not task.is_positive(nci.mols[int(i)])][:40]
    model = load_model("w2n2-benzene")
    found = neutral_baseline(model, positives, reference=negatives)  # its baselines fit exactly these molecules
    print(found.summary())
    choices = {
        "zeros": "zeros",
        f"neutral ({found.name})": found.baselines,
        f"expected gradients, K={settings.baseline_samples} inactive molecules": ReferenceBaselines(
            negatives, k=settings.baseline_samples, seed=0
        ),
    }
    head = ("baseline", "mean F(x)", "mean F(x')", "rows warned", "AUROC", "max gap")
    print("\n{:<48} {:>9} {:>10} {:>11} {:>6} {:>8}".format(*head))
    for label, spec in choices.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BaselineWarning)  # counted per row below instead
            result = explain_molecules(model, positives, baselines=spec)
        masks = [task.true_masks(m) for m in result.molecules]
        score = score_attributions([atom_scores(result, k) for k in range(result.n_examples)], masks)
        warned = sum(bool(w) for w in result.baseline_warnings)
        print(
            f"{label:<48} {float(result.forward_x.mean()):>9.2f} {float(result.forward_baseline.mean()):>10.2f} "
            f"{warned:>5} of {result.n_examples:<3} {score.mean:>6.3f} {float(result.relative_gap.max()):>8.2e}"
        )
    print(
        "(a row is warned when F(x') is on the same side of the threshold as F(x) or "
        "|F(x) - F(x')| is small; the expected-gradients gap is the largest over every (molecule, baseline))"
    )


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fast", action="store_true", help="fewer molecules and quadrature nodes (for the tests)"
    )
    parser.add_argument("--out", type=Path, default=Path("tutorials/out/02_molecules"), help="output folder")
    args = parser.parse_args(argv)
    settings = FAST if args.fast else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    nci = load_nci()
    test = split_indices(len(nci.mols), *SPLIT)[2]
    by_name = {name: k for k, name in enumerate(nci.names)}
    showcase = [nci.mols[by_name[name]] for name in SHOWCASE]

    section(
        "1. Three NCI molecules under the shipped W2N2 (task: has a benzene ring); atoms and pairs "
        "scaled together from zero"
    )
    result, _ = explain(
        "w2n2-benzene", showcase, steps="auto", tolerance=settings.showcase_tolerance, max_steps=2048
    )
    for i in range(result.n_examples):
        print_molecule(result, i, full_table=i == 0)
    written = draw_showcase(result, args.out)

    section("2. Accounting: who carries F(x) - F(x') (the paper: bonded pairs 46%, other pairs -3%)")
    print_accounting(result)

    section("3. Dead features: W1N2 (one weave module) against W2N2 on the same task")
    positives = [nci.mols[int(i)] for i in test if TASKS["benzene"].is_positive(nci.mols[int(i)])]
    extra = [m for m in positives if m not in showcase][: settings.dead_molecules]
    dead_features(showcase + extra, len(showcase), args.out)

    section("4. Ground truth: do the attributions find the SMARTS atoms that define each task?")
    localisation(nci, test, settings)

    section("5. Dataset level: substructures of the test molecules, and R-groups against Free-Wilson")
    substructure_rankings(nci, test, settings.auroc_steps, settings.auroc_molecules, args.out)
    free_wilson_comparison(settings, args.out)

    section("6. Baselines: F(x') beside F(x), a neutral baseline, expected gradients over inactive molecules")
    baselines(nci, test, settings)

    print(
        f"\nwrote {len(written) + 5} files to {args.out} (molecule_1.png, pair_heatmap_1.png, molecules.png, "
        f"w1n2_vs_w2n2.png, free_wilson.png, ...) in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
