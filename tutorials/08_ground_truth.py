"""Ground truth for atom attributions: a logic task, a model trained on it, and three ways to
read its integrated gradients -- which of them find the atoms that really decide the label.

The task is ``halide_carbonyl_or_nitro`` of :mod:`sciattr.datasets.tasks`: an NCI molecule is
positive when it carries a halogen *and* a carbonyl, *or* a nitro group, ``(A AND B) OR C``.
The true atoms of a positive molecule are those of whichever clause is present (a halogen
atom plus a carbonyl group, or a nitro group); a molecule with both clauses, or several
occurrences, has one true mask per way the formula holds plus the mask of all of them, and is
scored by the best one. The per-molecule score is the AUROC of the atom
attributions against the true atoms (0.5 is chance, 1 puts every true atom above every other).

Steps:

1. train a GINE network (:class:`sciattr.chem.gnn.GINENetwork`) on the labels with
   :func:`sciattr.chem.training.train_model` (seeded split, early stopping);
2. explain the positive test molecules from the all-zeros baseline and score
   **complete atom scores** (an atom's features plus half of every bond it is in, the default of
   every sciattr view) against **feature-only atom scores** (the atom's own features: they miss
   everything the network reads from bonds, e.g. the N=O and C=O double bonds);
3. look at the **baseline**: F(x') of the zeros baseline next to F(x), and what the
   ``BaselineWarning`` says when the baseline is not neutral (already on the "active" side of
   the decision threshold, so the attributions explain the difference between two "active"
   predictions);
4. **expected gradients**: the attributions averaged over K baselines drawn from inactive
   reference molecules (:class:`sciattr.chem.ReferenceBaselines`); the molecule's saturated
   carbon skeleton as the baseline (``baselines="skeleton"``); and the baseline the
   ``neutral_baseline`` search finds nearest the decision threshold;
5. the same model trained with the zeros baseline anchored at the decision threshold
   (``TrainingRecipe(anchor_baseline="neutral")``), so that the zeros baseline is neutral by
   construction;
6. the **shipped** model of this task, ``gcn-halide_carbonyl_or_nitro``: a seed ensemble
   (:class:`sciattr.chem.MeanEnsemble`, the mean of the logits of three GINE networks trained with
   the anchored recipe from seeds 0, 1 and 2 on all NCI molecules). Integrated gradients are
   linear in the model, so its attributions are the mean of its members' (checked here), and on
   the positives of its own test split it scores above its members' mean: where one seed's
   network misses a clause, the others outvote it;
7. the attribution against **deleting the group** (:func:`sciattr.chem.deletion_check`): every
   halogen of a positive is removed and the molecule rescored. The networks need the halogen
   (the deletion takes the logit below 0 where the halide AND carbonyl clause alone makes the
   molecule positive), yet from the zeros baseline the attribution credits it with nothing or
   less in some of those molecules; from the skeleton it does not. A network can implement
   "A AND B" as "A, minus a penalty when B is absent": at the all-zero baseline the penalty is
   off too, so B's role is invisible from there.

Pictures: ``08_complete.png`` and ``08_feature-only.png`` (the same molecules coloured by
complete and by feature-only scores), ``08_expected_gradients.png``, ``08_anchored.png`` and
``08_ensemble.png`` (the shipped ensemble where it gains most over its seed-0 network). The
summary table goes to ``08_ground_truth.txt``.

Run: ``python tutorials/08_ground_truth.py [--fast] [--out tutorials/out]`` (``--fast`` or the
environment variable ``SCIATTR_FAST=1``: the first 2,000 NCI molecules, a smaller network,
fewer epochs; under a minute on one CPU core).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sciattr import Settings
from sciattr.chem import (
    PyGFeaturizer,
    ReferenceBaselines,
    deletion_check,
    draw_attribution_grid,
    explain_graphs,
    featurize_batch,
    neutral_baseline,
    save_picture,
)
from sciattr.chem.training import TrainingRecipe, train_model
from sciattr.datasets import get_task, load_nci, score_attributions, split_indices
from sciattr.errors import BaselineWarning

TASK = "halide_carbonyl_or_nitro"


def scores_of(result, view: str) -> list[np.ndarray]:
    """Per-molecule atom scores of a result: ``"complete"`` or ``"features"``."""
    return [result.atom_values(i, view=view).detach().double().numpy() for i in range(result.n_examples)]


def explain(model, graphs, featurizer, settings: Settings):
    """Explain ``graphs``; return the result and the BaselineWarning messages it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BaselineWarning)
        result = explain_graphs(model, graphs, target=0, settings=settings, featurizer=featurizer,
                                decision_threshold=0.0)
    said = [str(w.message) for w in caught if issubclass(w.category, BaselineWarning)]
    return result, said


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer molecules, a smaller network, fewer epochs")
    parser.add_argument("--out", type=Path, default=Path("tutorials/out"), help="output folder")
    args = parser.parse_args(argv)
    fast = args.fast or os.environ.get("SCIATTR_FAST", "") not in ("", "0")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # ------------------------------------------------------------------ 1. data and training
    task = get_task(TASK)
    nci = load_nci(limit=2000 if fast else None)
    featurizer = PyGFeaturizer(atoms="simple")
    graphs, _, errors = featurize_batch(featurizer, nci.mols)
    masks = [task.true_masks(g.mol) for g in graphs]
    labels = [float(bool(m)) for m in masks]
    split = split_indices(len(graphs), (0.8, 0.1, 0.1), seed=0)
    options = {"hidden": 32, "layers": 3} if fast else {"hidden": 64, "layers": 3}
    epochs = 12 if fast else 30
    print(f"task {TASK}: {task.formula}; {len(graphs)} molecules ({len(errors)} not featurized), "
          f"{int(sum(labels))} positive")
    plain = train_model(graphs, labels, architecture="GINENetwork", featurizer=featurizer, model_options=options,
                        recipe=TrainingRecipe(epochs=epochs, patience=5), seed=0, split=split)
    test = split[2]
    positives = [i for i in test if masks[i]]
    picked = [graphs[i] for i in positives]
    truth = [masks[i] for i in positives]
    print(f"model: test ROC AUC {plain.metrics['test']['roc_auc']:.3f}, accuracy "
          f"{plain.metrics['test']['accuracy']:.3f} (best epoch {plain.best_epoch}); "
          f"{len(positives)} positive test molecules explained")

    # ------------------------------------------------------------------ 2. complete vs feature-only atoms
    steps = Settings(steps=32, rule="gausslegendre")
    zeros, zeros_said = explain(plain.model, picked, featurizer, steps.replace(baselines="zeros"))
    complete = score_attributions(scores_of(zeros, "complete"), truth)
    features = score_attributions(scores_of(zeros, "features"), truth)
    rows = [("complete atom scores, zeros baseline", complete.mean, zeros)]
    print(f"\nattribution AUROC, complete atom scores: {complete.mean:.3f}")
    print(f"attribution AUROC, feature-only atom scores: {features.mean:.3f}")
    print(f"max relative completeness gap: {float(zeros.relative_gap.max()):.2e}")

    # ------------------------------------------------------------------ 3. the zeros baseline
    fx = zeros.forward_x.double().reshape(-1).numpy()
    fb = zeros.forward_baseline.double().reshape(-1).numpy()
    above = float((fb > 0).mean())
    print(f"\nzeros baseline: F(x') > 0 (already 'active') for {above:.0%} of the positives; "
          f"median F(x) {np.median(fx):.3g}, median F(x') {np.median(fb):.3g}")
    print(f"BaselineWarning raised: {bool(zeros_said)}" + (f" -- {zeros_said[0][:160]}..." if zeros_said else ""))
    same_side = np.flatnonzero(fb > 0)
    other = np.flatnonzero(fb <= 0)
    per = complete.per_molecule
    if same_side.size:
        print(f"AUROC where the baseline is already 'active': {np.nanmean(per[same_side]):.3f} "
              f"({same_side.size} molecules); elsewhere: "
              f"{np.nanmean(per[other]) if other.size else float('nan'):.3f} ({other.size} molecules)")

    # ------------------------------------------------------------------ 4. expected gradients, neutral search
    inactive = [graphs[i] for i in split[0] if not masks[i]][:200]
    expected, _ = explain(plain.model, picked, featurizer,
                          steps.replace(baselines=ReferenceBaselines(inactive, k=4 if fast else 16, seed=0)))
    eg = score_attributions(scores_of(expected, "complete"), truth)
    rows.append(("expected gradients (inactive references)", eg.mean, expected))
    print(f"\nexpected gradients over {len(inactive)} inactive reference molecules: attribution AUROC {eg.mean:.3f}; "
          f"mean F(x') {float(expected.forward_baseline.double().mean()):.3g}")
    skeleton, _ = explain(plain.model, picked, featurizer, steps.replace(baselines="skeleton"))
    sk = score_attributions(scores_of(skeleton, "complete"), truth)
    rows.append(("saturated carbon skeleton baseline", sk.mean, skeleton))
    print(f"skeleton baseline (every atom a carbon, every bond single): attribution AUROC {sk.mean:.3f}; "
          f"mean F(x') {float(skeleton.forward_baseline.double().mean()):.3g}")
    neutral = neutral_baseline(plain.model, picked, featurizer=featurizer, threshold=0.0)
    searched, _ = explain(plain.model, picked, featurizer, steps.replace(baselines=neutral.baselines))
    ns = score_attributions(scores_of(searched, "complete"), truth)
    rows.append((f"neutral_baseline search ({neutral.name})", ns.mean, searched))
    print(f"neutral_baseline chose {neutral.name!r}: attribution AUROC {ns.mean:.3f}")

    # ------------------------------------------------------------------ 5. the zeros baseline anchored in training
    anchored = train_model(graphs, labels, architecture="GINENetwork", featurizer=featurizer, model_options=options,
                           recipe=TrainingRecipe(epochs=epochs, patience=5, anchor_baseline="neutral"), seed=0,
                           split=split)
    anchored_result, _ = explain(anchored.model, picked, featurizer, steps.replace(baselines="zeros"))
    an = score_attributions(scores_of(anchored_result, "complete"), truth)
    an_features = score_attributions(scores_of(anchored_result, "features"), truth)
    rows.append(("zeros baseline anchored at logit 0 in training", an.mean, anchored_result))
    print(f"\nanchored model: test ROC AUC {anchored.metrics['test']['roc_auc']:.3f}; median F(x') "
          f"{float(anchored_result.forward_baseline.double().median()):.3g}; attribution AUROC complete "
          f"{an.mean:.3f}, feature-only {an_features.mean:.3f}")

    # ------------------------------------------------------------------ 6. the shipped seed ensemble
    from sciattr.zoo import load_featurizer, load_model

    shipped = load_model(f"gcn-{TASK}")
    full = load_nci()  # the shipped model's own split: seed 0 over every readable NCI molecule
    shipped_test = split_indices(len(full), (0.8, 0.1, 0.1), seed=0)[2]
    test_graphs, _, _ = featurize_batch(load_featurizer(shipped), [full.mols[i] for i in shipped_test])
    test_masks = [task.true_masks(g.mol) for g in test_graphs]
    chosen = [k for k, m in enumerate(test_masks) if m][:40 if fast else None]
    ensemble_graphs, ensemble_truth = [test_graphs[k] for k in chosen], [test_masks[k] for k in chosen]
    ensemble_result, _ = explain(shipped, ensemble_graphs, featurizer, steps.replace(baselines="zeros"))
    member_results = [explain(member, ensemble_graphs, featurizer, steps.replace(baselines="zeros"))[0]
                      for member in shipped.members]
    linear = max(float((ensemble_result.attributions[name] - sum(r.attributions[name] for r in member_results)
                        / len(member_results)).abs().max()) for name in ("atoms", ensemble_result.link_name))
    member_scores = [score_attributions(scores_of(r, "complete"), ensemble_truth) for r in member_results]
    ensemble_score = score_attributions(scores_of(ensemble_result, "complete"), ensemble_truth)
    seeds = shipped.card["ensemble"]["seeds"]
    print(f"\nshipped gcn-{TASK}: the mean of {len(seeds)} networks (seeds {', '.join(map(str, seeds))}); "
          f"{len(chosen)} positives of its test split")
    print("  attribution AUROC per network: " + ", ".join(f"seed {s} {m.mean:.3f}" for s, m in zip(seeds, member_scores))
          + f" (mean {np.mean([m.mean for m in member_scores]):.3f}); ensemble: {ensemble_score.mean:.3f}")
    print(f"  ensemble attributions minus the mean of its networks': max |difference| {linear:.1e} (linearity)")
    rows.append(("shipped seed ensemble (its own test split)", ensemble_score.mean, ensemble_result))

    # ------------------------------------------------------------------ 7. the attribution against deleting the group
    # The shipped networks need the halogen of a "halide AND carbonyl" positive: deleting it takes the logit
    # below 0. Does the attribution credit it? From zeros, "carbonyl minus a penalty when no halogen" gives
    # the halogen nothing, because at the all-zero baseline the penalty is off too.
    halide = dict(task.rules)["halide"]
    skeleton_result, _ = explain(shipped, ensemble_graphs, featurizer, steps.replace(baselines="skeleton"))
    print(f"\ndeleting every halogen ({halide}) from the positives of shipped gcn-{TASK}:")
    for label, result in (("zeros baseline", ensemble_result), ("skeleton baseline", skeleton_result)):
        check = deletion_check(shipped, result, halide, featurizer=load_featurizer(shipped))
        print(f"  {label}: of {len(check.needed)} molecules whose decision the deletion flips, the attribution "
              f"credits the halogens with <= 0 in {len(check.missed)}")
        print("    " + check.summary().replace("\n", "\n    "))

    # ------------------------------------------------------------------ summary and pictures
    lines = [f"{'attribution':<52}{'AUROC':>8}"]
    lines += [f"{label:<52}{value:>8.3f}" for label, value, _ in rows]
    lines.append(f"{'feature-only atom scores, zeros baseline':<52}{features.mean:>8.3f}")
    text = "\n".join(lines)
    print("\n" + text)
    (args.out / "08_ground_truth.txt").write_text(text + "\n")

    shown = [int(i) for i in np.argsort(-np.nan_to_num(complete.per_molecule - features.per_molecule))[:4]]
    for view, name in (("complete", "complete"), ("features", "feature-only")):
        picture = draw_attribution_grid(zeros, shown, view=view, columns=4, image_format="png")
        save_picture(picture, args.out / f"08_{name}.png")
    grid = draw_attribution_grid(anchored_result, shown, columns=4, image_format="png")
    save_picture(grid, args.out / "08_anchored.png")
    save_picture(draw_attribution_grid(expected, shown, columns=4, image_format="png"), args.out / "08_expected_gradients.png")
    gain = np.nan_to_num(ensemble_score.per_molecule - member_scores[0].per_molecule)
    best = [int(i) for i in np.argsort(-gain)[:4]]
    save_picture(draw_attribution_grid(ensemble_result, best, columns=4, image_format="png"),
                 args.out / "08_ensemble.png")
    print(f"\nwrote {args.out / '08_ground_truth.txt'} and 5 pictures (08_complete.png, 08_feature-only.png, "
          f"08_expected_gradients.png, 08_anchored.png, 08_ensemble.png) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
