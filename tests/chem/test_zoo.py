"""The shipped chemistry models: cards, weights, reproduced test metrics and attribution quality,
complete attributions under the default settings, the results table, and the training function."""

import hashlib
import json
import re
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from sciattr.chem.adapter import explain_molecules
from sciattr.chem.featurize import featurize_batch
from sciattr.chem.training import QUALITY_SETTINGS, TrainingRecipe, attribution_quality, train_model
from sciattr.datasets import TASKS, load_chembl2321810, load_nci, split_indices
from sciattr.errors import BaselineWarning, ConvergenceWarning, InputError
from sciattr.zoo import ZOO_DIR, available_models, load_featurizer, load_model, model_card
from sciattr.zoo.train_chem import (
    ENSEMBLES,
    classification_metrics,
    predict,
    regression_metrics,
    results_markdown,
)

CLASSIFIERS = [f"{arch}-{task}" for arch in ("w1n2", "w2n2", "gcn") for task in TASKS]
REGRESSION = "w2n2-chembl2321810"
POSITIVES = {
    "benzene": ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1", "CCOc1ccccc1"],
    "halide_carbonyl": ["ClCC(=O)Nc1ccccc1", "O=C(O)c1ccc(Br)cc1", "CC(=O)CCl"],
    "amine_ether_benzene": ["CCN(CC)CCOc1ccccc1", "CN(C)CCOc1ccc(Cl)cc1", "COc1ccc(CCN)cc1"],
    "nitro_or_nitrile": ["O=[N+]([O-])c1ccc(O)cc1", "N#Cc1ccccc1", "N#CCC(=O)O"],
    "halide_not_carbonyl": ["Clc1ccccc1", "BrCCCO", "Fc1ccc(N)cc1"],
    "halide_carbonyl_or_nitro": ["ClCC(=O)Nc1ccccc1", "O=[N+]([O-])c1ccc(O)cc1", "CC(=O)c1ccc(Br)cc1"],
}


def test_every_model_is_shipped_with_a_card():
    assert available_models() == sorted(CLASSIFIERS + [REGRESSION])
    for name in available_models():
        card = model_card(name)
        weights = ZOO_DIR / f"{name}.safetensors"
        assert weights.stat().st_size < 5 * 2**20
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["weights_sha256"]
        assert card["data"]["split"]["fractions"] == [0.8, 0.1, 0.1]
        if name == REGRESSION:
            assert card["seed"] == 0
        else:  # a seed ensemble: the mean of the logits of the models of seeds 0, 1, 2
            assert card["ensemble"] == {"seeds": [0, 1, 2], "combine": "mean of the members' logits"}
    assert (ZOO_DIR / "RESULTS.md").is_file()


def test_w1n2_and_w2n2_share_data_and_settings():
    for task in TASKS:
        w1, w2 = model_card(f"w1n2-{task}"), model_card(f"w2n2-{task}")
        assert w1["featurizer"] == w2["featurizer"] == {"class": "SimpleWeaveFeaturizer", "max_distance": 2}
        assert w1["data"] == w2["data"] and w1["training"] == w2["training"]
        assert (w1["architecture"], w2["architecture"]) == ("W1N2", "W2N2")


@pytest.fixture(scope="module")
def nci_test_split():
    nci = load_nci()
    test = split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)[2]
    return [nci.mols[i] for i in test]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_reproduce_their_recorded_test_metrics(name, nci_test_split):
    model = load_model(name)
    assert not model.training
    graphs, _, errors = featurize_batch(load_featurizer(model), nci_test_split)
    assert not errors
    task = TASKS[model.card["task"]["name"]]
    labels = np.array([float(task.is_positive(g.mol)) for g in graphs])
    metrics = classification_metrics(predict(model, graphs), labels)
    recorded = model.card["test"]
    assert metrics["n_positive"] == recorded["n_positive"]
    assert metrics["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert metrics["roc_auc"] == pytest.approx(recorded["roc_auc"], abs=1e-6)
    assert recorded["roc_auc"] > 0.9


def test_regression_reproduces_its_recorded_test_metrics():
    series = load_chembl2321810()
    test = split_indices(len(series), (0.8, 0.1, 0.1), seed=0)[2]
    model = load_model(REGRESSION)
    graphs, _, _ = featurize_batch(load_featurizer(model), [series.mols[i] for i in test])
    metrics = regression_metrics(predict(model, graphs), series.values[test])
    assert metrics["rmse"] == pytest.approx(model.card["test"]["rmse"], rel=1e-5)
    assert metrics["r2"] > 0.4


@pytest.mark.parametrize("name", CLASSIFIERS + [REGRESSION])
def test_attributions_of_shipped_models_are_complete_under_the_default_settings(name):
    model = load_model(name)
    task = model.card["task"]["name"]
    smiles = POSITIVES.get(task) or load_chembl2321810().smiles[:3]
    if task in TASKS:
        graphs, _, _ = featurize_batch(load_featurizer(model), smiles)
        assert all(TASKS[task].is_positive(g.mol) for g in graphs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # the zeros baseline of a classifier anchored at logit 0 may sit just above 0: said, not an error here
        warnings.simplefilter("ignore", BaselineWarning)
        result = explain_molecules(model, smiles)  # adaptive steps until the gap is within the tolerance
    assert not result.errors
    assert bool(result.converged.all())
    assert float(result.relative_gap.max()) <= result.tolerance == 0.05
    assert result.delta.abs().min() > 0.5  # a real change of the score, not a cancellation


def _ensembles(card):
    return [{"seeds": card["ensemble"]["seeds"], "test": card["test"], "attribution": card["attribution"],
             "skeleton": card["skeleton"], "expected_gradients": card["expected_gradients"]}] + card["replicates"]


def _goal(runs):
    values = np.array([r["attribution"]["attribution_auroc"] for r in runs])
    roc = np.array([r["test"]["roc_auc"] for r in runs])
    return values, roc, bool(values.mean() >= 0.95 and values.std(ddof=1) <= 0.03 and roc.mean() >= 0.98)


def test_cards_hold_every_ensemble_and_member_and_results_table_reproduces_them():
    text = (ZOO_DIR / "RESULTS.md").read_text()
    met = {"ensembles": 0, "single": 0, "single_skeleton": 0, "skeleton": 0, "expected_gradients": 0}
    for name in CLASSIFIERS:
        card = model_card(name)
        runs = _ensembles(card)
        assert [r["seeds"] for r in runs] == [list(e) for e in ENSEMBLES]
        assert [m["seed"] for m in card["members"]] == sorted(s for e in ENSEMBLES for s in e)
        values, roc, goal = _goal(runs)
        met["ensembles"] += goal
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[3] == f"{roc.mean():.3f} ± {roc.std(ddof=1):.3f}"
        assert cells[4] == f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
        assert cells[7].startswith("yes") == goal
        # the single models (every member seed) and each ensemble, in the second table
        single, single_roc, single_goal = _goal(card["members"])
        met["single"] += single_goal
        rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
        # the skeleton baseline and expected gradients on the same ensembles, in the second table
        cells = [c.strip() for c in rows[1].split("|")[1:-1]]
        assert cells[2] == f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
        for measure, column, goal_column in (("skeleton", 3, 7), ("expected_gradients", 4, 8)):
            other = np.array([r[measure]["attribution_auroc"] for r in runs])
            other_goal = bool(other.mean() >= 0.95 and other.std(ddof=1) <= 0.03 and roc.mean() >= 0.98)
            met[measure] += other_goal
            assert cells[column] == f"{other.mean():.3f} ± {other.std(ddof=1):.3f}", (name, measure)
            assert cells[goal_column].startswith("yes") == other_goal
            for run in runs:
                assert run[measure]["max_relative_gap"] < 0.05
                assert run[measure]["n_scored"] == card["attribution"]["n_scored"]
        assert {r["skeleton"]["baseline"] for r in runs} == {"skeleton"}
        assert {(r["expected_gradients"]["k"], r["expected_gradients"]["reference_size"]) for r in runs} == {(16, 256)}
        second = [c.strip() for c in rows[2].split("|")[1:-1]]
        # every single network from the skeleton baseline too, in the last two columns
        sk, _, sk_goal = _goal([{**m, "attribution": m["skeleton"]} for m in card["members"]])
        met["single_skeleton"] += sk_goal
        assert second[-2] == f"{sk.mean():.3f} ± {sk.std(ddof=1):.3f}"
        assert second[-1].startswith("yes") == sk_goal
        assert second[1:4] == [f"{single_roc.mean():.3f} ± {single_roc.std(ddof=1):.3f}",
                               f"{single.mean():.3f} ± {single.std(ddof=1):.3f}", second[3]]
        assert second[3].startswith("yes") == single_goal
        assert second[4:4 + len(ENSEMBLES)] == [f"{v:.3f}" for v in values]
        for run in runs + card["members"]:
            assert run["attribution"]["max_relative_gap"] < 0.05
            assert run["attribution"]["n_scored"] == card["attribution"]["n_scored"] > 0
    assert (f"Goal met by the shipped ensembles for {met['ensembles']} of the {len(CLASSIFIERS)} classifiers; by "
            f"single models for {met['single']} ({met['single_skeleton']} from the skeleton baseline); instead of "
            "the zeros baseline, by the shipped ensembles for "
            f"{met['skeleton']} with the skeleton baseline and {met['expected_gradients']} with expected gradients "
            f"(of the {len(CLASSIFIERS)} measured so).") in text
    assert re.search(r"## Recipe study", text)


def test_results_table_shows_the_training_split_evidence_of_every_rule():
    from sciattr.datasets import rule_evidence

    text = (ZOO_DIR / "RESULTS.md").read_text()
    nci = load_nci()
    train = split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)[0]
    mols = [nci.mols[i] for i in train]
    section = text.split("## What the training split shows of each rule")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| task |")]
    expected = [[task, e["clause"], e["rule"], e["kind"], f"{e['contrasts']:,}", f"{e['positives']:,}"]
                for task in TASKS for e in rule_evidence(task, mols)]
    assert rows == expected
    # the benzene ring of amine AND ether AND benzene is the rule the split shows least
    aeb = {r[2]: int(r[4].replace(",", "")) for r in rows if r[0] == "amine_ether_benzene"}
    assert aeb["benzene"] < min(aeb["amine"], aeb["ether"]) / 10
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert (f"{aeb['benzene']} training molecules have an amine and an ether but no benzene ring, against "
            f"{aeb['amine']} and {aeb['ether']} that lack only the amine or only the ether") in readme


def test_readme_table_of_shipped_models_matches_the_cards():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    met = met_skeleton = met_eg = single_skeleton = 0
    for name in CLASSIFIERS:
        members = model_card(name)["members"]
        single_skeleton += _goal([{**m, "attribution": m["skeleton"]} for m in members])[2]
        runs = _ensembles(model_card(name))
        values, roc, goal = _goal(runs)
        skeleton, _, skeleton_goal = _goal([{**r, "attribution": r["skeleton"]} for r in runs])
        eg, _, eg_goal = _goal([{**r, "attribution": r["expected_gradients"]} for r in runs])
        met, met_skeleton, met_eg = met + goal, met_skeleton + skeleton_goal, met_eg + eg_goal
        row = next(line for line in readme.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[2:4] == [f"{roc.mean():.3f} ± {roc.std(ddof=1):.3f}",
                              f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"], name
        assert cells[5:7] == [f"{skeleton.mean():.3f} ± {skeleton.std(ddof=1):.3f}",
                              f"{eg.mean():.3f} ± {eg.std(ddof=1):.3f}"], name
    text = " ".join(readme.split())
    assert f"met for {met} of the {len(CLASSIFIERS)}" in text
    assert (f"the goal is met for {met_skeleton} of the {len(CLASSIFIERS)} with the skeleton and for {met_eg} with "
            "expected gradients") in text
    assert f"from the skeleton the goal holds for {single_skeleton} of their {len(CLASSIFIERS)}" in text


def test_recipe_study_table_reports_the_change_from_the_base_row_and_the_shipped_model():
    from sciattr.zoo import train_chem

    def row(arch, variant, auroc, seed=0, task="t"):
        return {"architecture": arch, "task": task, "variant": variant, "seed": seed, "best_epoch": 3,
                "recipe": {}, "options": {},
                "cpu_seconds": 1.0, "test": {"roc_auc": 0.99},
                "attribution": {"attribution_auroc": auroc, "attribution_auroc_atom_features": 0.5,
                                "baseline_above_threshold": 0.0, "median_delta": 1.0}}

    study = [row("gcn", "base", 0.80), row("gcn", "anchor", 0.90), row("gcn", "anchor", 0.70, task="u"),
             row("gcn", "base", 0.60, task="u"), row("w2n2", "anchor", 0.95), row("gcn", "anchor", 0.96, seed=1),
             row("gcn", "base", 0.90, seed=1)]
    study[1]["recipe"] = study[2]["recipe"] = study[5]["recipe"] = {"anchor_baseline": "negative"}

    def run(seed, auroc):
        return {"seed": seed, "test": {"accuracy": 0.9, "roc_auc": 0.99},
                "attribution": {"attribution_auroc": auroc, "attribution_auroc_atom_features": 0.5, "n_scored": 5,
                                "baseline_above_threshold": 0.0, "max_relative_gap": 0.01}}

    # the shipped gcn-t (its recipe: the base one): single models scored 0.85 and 0.91 on seeds 0 and 1
    card = {"name": "gcn-t", "task": {"description": "t"}, "training": asdict(train_chem.STUDY_BASE),
            "cpu_seconds": 1.0, "ensemble": {"seeds": [0, 1]}, **run(None, 0.97), "replicates": [],
            "members": [run(0, 0.85), run(1, 0.91)]}
    text = results_markdown([card], study)
    cells = {tuple(c.strip() for c in line.split("|")[1:4]): [c.strip() for c in line.split("|")[1:-1]]
             for line in text.splitlines() if line.startswith(("| t", "| u"))}
    # seeds 0 and 1 of the same variant are one row: mean ± sd, and the mean of the paired changes
    assert cells[("t", "gcn", "anchor")][3:8] == ["0, 1", "0.990 ± 0.000", "0.930 ± 0.042", "+0.080", "+0.050"]
    assert cells[("t", "gcn", "base")][6:8] == ["–", "same recipe"]
    assert cells[("u", "gcn", "anchor")][6:8] == ["+0.100", "–"]  # its base row comes later; no gcn-u card
    assert cells[("t", "w2n2", "anchor")][6] == "–"  # no w2n2 base row to compare with
    assert cells[("t", "w2n2", "anchor")][-1] == "yes" and cells[("t", "gcn", "anchor")][-1] == "no (AUROC, sd)"
    assert ("gcn, anchor: mean attribution AUROC 0.815 over 2 tasks, change from base +0.090, change from the "
            "shipped recipe +0.050, goal met on 0") in text
    assert "w2n2, anchor: mean attribution AUROC 0.950 over 1 task, goal met on 1" in text


def test_readme_quotes_the_recipe_study_of_deletion_consistency_and_homogeneous_networks():
    """The README's numbers for the two recipe variants of this kind are those RESULTS.md gives."""
    results = (ZOO_DIR / "RESULTS.md").read_text()
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())

    def summary(arch, variant):
        found = re.search(re.escape(f"{arch}, {variant}: ") + r"mean attribution AUROC [\d.]+ over (\d+) tasks, "
                          r"change from base [-+][\d.]+, change from the shipped recipe ([-+][\d.]+), goal met on "
                          r"(\d+)", results)
        assert found, (arch, variant)
        return found.groups()

    w1 = summary("w1n2", "neutral anchor + deletion consistency 1")
    w2 = summary("w2n2", "neutral anchor + deletion consistency 1")
    gcn = summary("gcn", "neutral anchor + weight decay 1e-3 + deletion consistency 1")
    assert (f"{w1[1]} for W1N2 over {w1[0]} tasks (goal met on {w1[2]} of them), {w2[1]} for W2N2 over {w2[0]} "
            f"tasks (goal met on {w2[2]}) and {gcn[1]} for GINE over {gcn[0]} tasks (goal met on {gcn[2]}") in readme
    homogeneous = [summary(arch, variant)[1] for arch, variant in (
        ("w1n2", "neutral anchor, homogeneous (bias-free ReLU layers)"),
        ("w2n2", "neutral anchor, homogeneous (bias-free ReLU layers)"),
        ("gcn", "neutral anchor + weight decay 1e-3, homogeneous (bias-free ReLU layers)"))]
    assert ("mean change from the shipped recipes " + ", ".join(v.replace("-", "−") for v in homogeneous[:2])
            + f" and {homogeneous[2].replace('-', '−')} for W1N2, W2N2 and GINE") in readme


def test_recipe_study_compares_model_options_with_the_shipped_card():
    """A study row is the shipped recipe only when its model options (the study's fixed options with
    the row's changes) are the card's too: GINE rows keep 64 hidden units when the shipped model has 128."""
    from sciattr.zoo import train_chem

    def row(variant, options, auroc):
        return {"architecture": "gcn", "task": "t", "variant": variant, "seed": 0, "best_epoch": 3,
                "recipe": {}, "options": options, "cpu_seconds": 1.0, "test": {"roc_auc": 0.99},
                "attribution": {"attribution_auroc": auroc, "attribution_auroc_atom_features": 0.5,
                                "baseline_above_threshold": 0.0, "median_delta": 1.0}}

    member = {"seed": 0, "test": {"accuracy": 0.9, "roc_auc": 0.99},
              "attribution": {"attribution_auroc": 0.95, "attribution_auroc_atom_features": 0.5, "n_scored": 5,
                              "baseline_above_threshold": 0.0, "max_relative_gap": 0.01}}
    card = {"name": "gcn-t", "task": {"description": "t"}, "training": asdict(train_chem.STUDY_BASE),
            "config": {"atom_features": 14, "bond_features": 7, "outputs": 1, "hidden": 128, "layers": 3},
            "cpu_seconds": 1.0, "ensemble": {"seeds": [0]}, **member, "replicates": [], "members": [member]}
    text = results_markdown([card], [row("base", {}, 0.80), row("wide", {"hidden": 128}, 0.95)])
    cells = {line.split("|")[3].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in text.splitlines() if line.startswith("| t |")}
    assert cells["base"][7] == "-0.150" and cells["wide"][7] == "same recipe"
    assert train_chem.STUDY_OPTIONS["gcn"] == {"hidden": 64, "layers": 3}


def test_recipe_study_writes_rows_as_they_finish_and_resumes(tmp_path, monkeypatch):
    from sciattr.zoo import train_chem

    calls = []

    def fake_fit(arch, task, data, *, seed, recipe, options):
        calls.append((arch, task, seed, recipe.anchor_baseline))
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted after two rows
        return None, {"seed": seed, "best_epoch": 1, "cpu_seconds": 1.0, "test": {"roc_auc": 0.9},
                      "attribution": {"attribution_auroc": 0.5 + seed / 10}}

    monkeypatch.setattr(train_chem, "fit_classifier", fake_fit)
    with pytest.raises(KeyboardInterrupt):
        train_chem.recipe_study(None, tmp_path, tasks=("benzene",), seeds=(0, 1), variants=[1, 2])
    rows = json.loads((tmp_path / train_chem.STUDY_FILE).read_text())
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("zeros baseline anchored at logit 0 (neutral)", 0), ("zeros baseline anchored at logit 0 (neutral)", 1)]
    calls.clear()
    rows = train_chem.recipe_study(None, tmp_path, tasks=("benzene",), seeds=(0, 1), variants=[1, 2])
    assert calls == [("gcn", "benzene", 0, "negative"), ("gcn", "benzene", 1, "negative")]  # the rest only
    assert len(rows) == 4 and len(json.loads((tmp_path / train_chem.STUDY_FILE).read_text())) == 4
    with pytest.raises(InputError, match="variant numbers"):
        train_chem.recipe_study(None, tmp_path, variants=[len(train_chem.STUDY_VARIANTS)])


@pytest.mark.parametrize("name", ["gcn-nitro_or_nitrile", "w2n2-halide_not_carbonyl"])
def test_recorded_attribution_auroc_is_reproduced(name, nci_test_split):
    model = load_model(name)
    featurizer = load_featurizer(model)
    graphs, _, _ = featurize_batch(featurizer, nci_test_split)
    task = TASKS[model.card["task"]["name"]]
    masks = [task.true_masks(g.mol) for g in graphs]
    quality = attribution_quality(model, graphs, masks, featurizer=featurizer, settings=QUALITY_SETTINGS)
    recorded = model.card["attribution"]
    assert quality["n_scored"] == recorded["n_scored"]
    assert quality["attribution_auroc"] == pytest.approx(recorded["attribution_auroc"], abs=1e-6)
    assert quality["attribution_auroc_atom_features"] == pytest.approx(recorded["attribution_auroc_atom_features"],
                                                                       abs=1e-6)


@pytest.mark.parametrize("name", ["w1n2-amine_ether_benzene", "gcn-nitro_or_nitrile"])
def test_recorded_expected_gradients_auroc_is_reproduced(name, nci_test_split):
    """Expected gradients from 256 seeded molecules of the training split, never a test or
    validation molecule, reproduce the card's measurement."""
    from sciattr import Settings
    from sciattr.chem.baselines import ReferenceBaselines
    from sciattr.zoo.train_chem import REFERENCE_K, REFERENCE_SIZE, REFERENCE_STEPS, reference_indices

    nci = load_nci()
    train, valid, test = split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)
    picked = reference_indices(train)
    assert picked.size == REFERENCE_SIZE == len(set(picked.tolist()))
    assert set(picked.tolist()) <= set(train.tolist()) and not set(picked.tolist()) & set(valid.tolist() + test.tolist())
    assert np.array_equal(picked, reference_indices(train))  # seeded
    model = load_model(name)
    featurizer = load_featurizer(model)
    reference, _, _ = featurize_batch(featurizer, [nci.mols[i] for i in picked])
    graphs, _, _ = featurize_batch(featurizer, nci_test_split)
    task = TASKS[model.card["task"]["name"]]
    masks = [task.true_masks(g.mol) for g in graphs]
    settings = Settings(steps=REFERENCE_STEPS, rule="gausslegendre",
                        baselines=ReferenceBaselines(reference, k=REFERENCE_K, seed=0))
    quality = attribution_quality(model, graphs, masks, featurizer=featurizer, settings=settings)
    recorded = model.card["expected_gradients"]
    assert quality["n_scored"] == recorded["n_scored"] == model.card["attribution"]["n_scored"]
    assert quality["attribution_auroc"] == pytest.approx(recorded["attribution_auroc"], abs=1e-6)
    assert quality["max_relative_gap"] == pytest.approx(recorded["max_relative_gap"], rel=1e-3)


def test_recorded_deletion_checks_are_reproduced(nci_test_split):
    """A row of deletion_checks.json (w1n2-halide_carbonyl, the halide rule, zeros and skeleton) from
    the shipped weights; RESULTS.md's totals are those of the file."""
    from sciattr import Settings
    from sciattr.chem.adapter import explain_graphs
    from sciattr.chem.deletion import deletion_check
    from sciattr.zoo.train_chem import DELETION_FILE

    rows = json.loads((ZOO_DIR / DELETION_FILE).read_text())
    model = load_model("w1n2-halide_carbonyl")
    featurizer = load_featurizer(model)
    graphs, _, _ = featurize_batch(featurizer, nci_test_split)
    task = TASKS["halide_carbonyl"]
    positives = [g for g in graphs if task.true_masks(g.mol)]
    smarts = dict(task.rules)["halide"]
    for baseline in ("zeros", "skeleton"):
        recorded = next(r for r in rows if (r["name"], r["rule"], r["baseline"]) == ("w1n2-halide_carbonyl", "halide",
                                                                                      baseline))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BaselineWarning)
            result = explain_graphs(model, positives, target=0, featurizer=featurizer,
                                    settings=Settings(steps=64, rule="gausslegendre", baselines=baseline))
        report = deletion_check(model, result, smarts, featurizer=featurizer, threshold=0.0)
        assert (len(positives), len(report.checks), len(report.needed), len(report.missed), len(report.failed)) == \
            (recorded["positives"], recorded["with_rule"], recorded["flips"], recorded["missed"], recorded["failed"])
        assert np.median([c.attribution for c in report.checks]) == pytest.approx(recorded["median_attribution"],
                                                                                   rel=1e-4)
    zeros_missed = sum(r["missed"] for r in rows if r["baseline"] == "zeros")
    skeleton_missed = sum(r["missed"] for r in rows if r["baseline"] == "skeleton")
    flips = sum(r["flips"] for r in rows if r["baseline"] == "zeros")
    assert skeleton_missed < zeros_missed < flips
    text = (ZOO_DIR / "RESULTS.md").read_text()
    assert (f"the deletion flips the decision {flips:,} times; the zeros baseline credits the deleted atoms with "
            f"<= 0 in {zeros_missed:,} of them, the skeleton in {skeleton_missed:,}.") in text
    # the README quotes the same file
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert (f"over all of them the deletion flips the decision {flips:,} times, and the zeros baseline credits the "
            f"deleted atoms with ≤ 0 in {zeros_missed} of those, the skeleton in {skeleton_missed}.") in readme
    halide = {r["name"].split("-")[0]: r for r in rows
              if r["rule"] == "halide" and r["baseline"] == "zeros" and r["task"] == "halide_carbonyl"}
    assert (f"gcn-halide_carbonyl needs its halogens in {halide['gcn']['flips']} of its {halide['gcn']['positives']} "
            f"positive test molecules (without them the logit falls below 0), yet from zeros their attribution is ≤ 0 "
            f"in {halide['gcn']['missed']} (w1n2 {halide['w1n2']['missed']} of {halide['w1n2']['flips']}, w2n2 "
            f"{halide['w2n2']['missed']} of {halide['w2n2']['flips']})") in readme


# ---------------------------------------------------------------------------------------- train_model
@pytest.fixture(scope="module")
def small_task():
    nci = load_nci(limit=160)
    task = TASKS["nitro_or_nitrile"]
    return nci.smiles, [float(task.is_positive(m)) for m in nci.mols]


def test_train_model_is_seeded_and_keeps_the_best_validation_epoch(small_task):
    smiles, labels = small_task
    recipe = TrainingRecipe(epochs=4, batch_size=32, patience=None)
    options = {"hidden": 8, "layers": 2}
    a = train_model(smiles, labels, architecture="GINENetwork", model_options=options, recipe=recipe, seed=3)
    b = train_model(smiles, labels, architecture="GINENetwork", model_options=options, recipe=recipe, seed=3)
    c = train_model(smiles, labels, architecture="GINENetwork", model_options=options, recipe=recipe, seed=4)
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), k
    assert any(not torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    assert len(a.history) == 4 and not a.model.training
    scores = [h["validation_score"] for h in a.history]
    assert a.best_epoch == int(np.argmax(scores))
    sizes = [len(p) for p in a.split]
    assert sizes == [128, 16, 16] and sorted(np.concatenate(a.split).tolist()) == list(range(160))
    # the recorded metrics are those of the returned weights
    test = a.split[2]
    logits = predict(a.model, [a.graphs[i] for i in test])
    assert a.metrics["test"] == classification_metrics(logits, a.labels[test].numpy())
    n_pos = float(a.labels[a.split[0]].sum())
    assert a.pos_weight == [pytest.approx((128 - n_pos) / n_pos)]


def test_train_model_stops_early_and_reports_bad_rows(small_task):
    smiles, labels = small_task
    lines = []
    trained = train_model(list(smiles[:60]) + ["not a smiles"], labels[:60] + [1.0], architecture="W1N2",
                          model_options={"n_hidden": 8, "n_atom_hidden": 8, "n_dense": 8},
                          recipe=TrainingRecipe(epochs=50, learning_rate=1e-6, patience=2), progress=lines.append)
    assert [e["row"] for e in trained.errors] == [60]
    assert len(trained.history) <= trained.best_epoch + 3 < 50
    assert len(lines) == len(trained.history) and "epoch 1 loss" in lines[0]


def test_anchored_zeros_baseline_lands_where_the_recipe_says(small_task):
    from sciattr.chem.training import _zeroed

    smiles, labels = small_task
    options = {"hidden": 8, "layers": 2}
    scores = {}
    for anchor in ("neutral", "negative"):
        trained = train_model(smiles, labels, architecture="GINENetwork", model_options=options, seed=0,
                              recipe=TrainingRecipe(epochs=8, batch_size=16, learning_rate=3e-3, patience=None,
                                                    anchor_baseline=anchor, anchor_weight=5.0))
        scores[anchor] = predict(trained.model, _zeroed(trained.graphs))[:, 0]
    assert np.abs(scores["neutral"]).mean() < 0.5
    assert (scores["negative"] < 0).all() and scores["negative"].mean() < -1


class _LinearWeave(torch.nn.Module):
    """A bias-free linear model in the Weave calling convention: F(x) = sum of atom features . w_atom
    + sum of pair features . w_pair, so F(a x) = a F(x) and gradient x input is exact."""

    def __init__(self, feat):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.w_atom = torch.nn.Parameter(torch.randn(feat.n_atom_features, generator=gen))
        self.w_pair = torch.nn.Parameter(torch.randn(feat.n_pair_features, generator=gen))

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_zeros(n_molecules).index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)[:, None]

    def score(self, graph) -> float:
        return float((graph.atoms @ self.w_atom.detach()).sum() + (graph.links @ self.w_pair.detach()).sum())


def _small_gine(small_task, **recipe):
    """A small GINE trained 6 epochs on ``small_task`` with the neutral anchor and ``recipe``'s
    changes; returns it with its training molecules."""
    smiles, labels = small_task
    trained = train_model(smiles, labels, architecture="GINENetwork", model_options={"hidden": 8, "layers": 2},
                          seed=0, recipe=TrainingRecipe(epochs=6, batch_size=16, learning_rate=3e-3, patience=None,
                                                        anchor_baseline="neutral", **recipe))
    return trained, [trained.graphs[i] for i in trained.split[0]]


def test_attribution_prior_is_gradient_times_input_and_sparsifies(small_task):
    """The prior term of a linear model is sum |x_i w_i| exactly (the oracle), and training with it
    leaves less gradient x input on the training molecules than the same run without it."""
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.training import _forward_with_prior

    feat = SimpleWeaveFeaturizer()
    graphs, _, _ = featurize_batch(feat, ["CCO", "c1ccccc1N", "ClCC#N"])
    model = _LinearWeave(feat)
    scores, prior = _forward_with_prior(model, graphs, 1.0)
    expected = sum(float((g.atoms * model.w_atom.detach()).abs().sum() + (g.links * model.w_pair.detach()).abs().sum())
                   for g in graphs)
    assert float(prior.detach()) == pytest.approx(expected, rel=1e-6)
    assert scores.detach()[:, 0].tolist() == pytest.approx([model.score(g) for g in graphs], rel=1e-6)
    assert _forward_with_prior(model, graphs, 0.0)[1] is None
    prior.backward()  # kept in the graph: the prior trains the weights
    assert model.w_atom.grad is not None and float(model.w_atom.grad.abs().sum()) > 0

    spent = {}
    for weight in (0.0, 2.0):
        trained, train = _small_gine(small_task, attribution_prior=weight)
        spent[weight] = float(_forward_with_prior(trained.model, train, 1.0)[1].detach()) / len(train)
    assert spent[2.0] < 0.7 * spent[0.0]
    with pytest.raises(InputError, match="attribution_prior"):
        TrainingRecipe(attribution_prior=-1.0)


def test_path_monotonicity_penalises_scores_going_the_wrong_way_along_the_path(small_task):
    """A linear model without bias has F(a x) = a F(x): the penalty of a molecule is
    (a2 - a1) |F(x)| when F(x) has the wrong sign for its label and 0 otherwise (the oracle, with
    the same draws); training with the penalty leaves fewer and smaller wrong-way steps."""
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.training import path_monotonicity_penalty

    feat = SimpleWeaveFeaturizer()
    graphs, _, _ = featurize_batch(feat, ["CCO", "c1ccccc1N", "ClCC#N", "OCCO"])
    model = _LinearWeave(feat)
    full = [model.score(g) for g in graphs]
    labels = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    penalty = path_monotonicity_penalty(model, graphs, labels, torch.Generator().manual_seed(5))
    pairs = torch.rand(4, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64).sort(dim=1).values
    wrong = [f < 0 if y else f > 0 for f, y in zip(full, labels[:, 0].tolist())]
    assert 0 < sum(wrong) < 4  # the oracle is not trivial
    expected = np.mean([float(b - a) * abs(f) * w for (a, b), f, w in zip(pairs.tolist(), full, wrong)])
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)

    measured = {}
    for weight in (0.0, 5.0):
        trained, train = _small_gine(small_task, path_monotonicity=weight)
        with torch.no_grad():
            measured[weight] = float(path_monotonicity_penalty(trained.model, train, trained.labels[trained.split[0]],
                                                               torch.Generator().manual_seed(0)))
    assert measured[5.0] < 0.5 * measured[0.0]
    with pytest.raises(InputError, match="path_monotonicity"):
        TrainingRecipe(path_monotonicity=-1.0)


def test_deletion_consistency_pushes_group_attributions_towards_their_deletions(small_task):
    """For a bias-free linear model, a group's gradient x input (its complete atom scores) and its
    deletion drop have closed forms: the penalty is their relu(0.1 |drop| - sign(drop) attribution)
    averaged over every group of the batch (the oracle); training with it leaves less of it."""
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.training import deletion_consistency_penalty, deletion_groups

    feat = SimpleWeaveFeaturizer()
    graphs, _, _ = featurize_batch(feat, ["ClCC=O", "c1ccccc1N", "OCC(Cl)C#N", "CCC"])
    groups = deletion_groups(graphs, feat)
    assert [len(g) for g in groups] == [2, 2, 3, 0]  # halogen + carbonyl; amine + ring; halogen + nitrile + OH
    assert [rows.tolist() for rows, _ in groups[0]] == [[0], [2, 3]]
    model = _LinearWeave(feat)
    expected = []
    for g, found in zip(graphs, groups):
        for rows, deleted in found:
            inside = torch.zeros(g.n_atoms, dtype=torch.bool)
            inside[rows] = True
            ends = inside[g.link_index].sum(0).float()  # 0, 1 or 2 ends of each pair in the group
            attribution = float((g.atoms[inside] @ model.w_atom.detach()).sum()
                                + 0.5 * ((g.links @ model.w_pair.detach()) * ends).sum())
            drop = model.score(g) - model.score(deleted)
            expected.append(max(0.0, 0.1 * abs(drop) - np.sign(drop) * attribution))
    assert 0 < sum(e > 0 for e in expected) < len(expected)  # the oracle is not trivial
    penalty = deletion_consistency_penalty(model, graphs, groups)
    assert float(penalty.detach()) == pytest.approx(np.mean(expected), rel=1e-5)
    penalty.backward()  # kept in the graph: it trains the weights
    assert float(model.w_atom.grad.abs().sum()) > 0
    assert float(deletion_consistency_penalty(model, graphs[3:], groups[3:])) == 0.0  # no group: nothing

    measured = {}
    for weight in (0.0, 5.0):
        trained, train = _small_gine(small_task, deletion_consistency=weight)
        measured[weight] = float(deletion_consistency_penalty(trained.model, train, deletion_groups(
            train, trained.featurizer)).detach())
    assert measured[5.0] < 0.5 * measured[0.0]
    with pytest.raises(InputError, match="deletion_consistency"):
        TrainingRecipe(deletion_consistency=-1.0)


def test_bad_training_input():
    with pytest.raises(InputError, match="anchor_baseline"):
        TrainingRecipe(anchor_baseline="zeros")
    with pytest.raises(InputError, match="epochs"):
        TrainingRecipe(epochs=0)
    with pytest.raises(InputError, match="architecture"):
        train_model(["CCO", "CCN"], [0, 1], architecture="GCN")
    with pytest.raises(InputError, match="one label"):
        train_model(["CCO", "CCN"], [0, 1, 1])
    with pytest.raises(InputError, match="0/1 labels"):
        train_model(["CCO", "CCN", "CCC"], [0, 1, 2], kind="classification")


def test_loading_by_path_and_unknown_names(tmp_path):
    by_path = load_model(ZOO_DIR / "gcn-benzene.safetensors")
    by_name = load_model("gcn-benzene")
    for (k, a), (_, b) in zip(by_path.state_dict().items(), by_name.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(InputError, match="w2n2-benzene"):
        load_model("w3n2-benzene")
    card = tmp_path / "broken.json"
    card.write_text(json.dumps({**model_card("gcn-benzene"), "architecture": "Transformer"}))
    (tmp_path / "broken.safetensors").write_bytes((ZOO_DIR / "gcn-benzene.safetensors").read_bytes())
    with pytest.raises(InputError, match="architecture"):
        load_model(card)


def test_attribution_quality_takes_explicit_settings_and_expected_gradients(nci_test_split):
    from sciattr import Settings
    from sciattr.chem import ReferenceBaselines

    model = load_model("gcn-nitro_or_nitrile")
    featurizer = load_featurizer(model)
    graphs, _, _ = featurize_batch(featurizer, nci_test_split)
    task = TASKS["nitro_or_nitrile"]
    masks = [task.true_masks(g.mol) for g in graphs]
    negatives = [g for g, m in zip(graphs, masks) if not m][:30]
    fixed = attribution_quality(model, graphs, masks, featurizer=featurizer, limit=5,
                                settings=Settings(steps=32, rule="gausslegendre"))
    assert fixed["n_scored"] == 5 and fixed["steps"] == 32 and fixed["baseline"] == "zeros"
    per = [v for v in fixed["per_molecule"] if np.isfinite(v)]
    assert fixed["attribution_auroc"] == pytest.approx(np.mean(per))
    expected = attribution_quality(model, graphs, masks, featurizer=featurizer, limit=5,
                                   settings=Settings(steps=32, rule="gausslegendre",
                                                     baselines=ReferenceBaselines(negatives, k=2, seed=0)))
    assert "expected gradients" in expected["baseline"] and expected["n_scored"] == 5
    assert 0.5 < expected["attribution_auroc"] <= 1.0
    with pytest.raises(InputError, match="Settings"):
        attribution_quality(model, graphs, masks, settings={"steps": 32})
    with pytest.raises(InputError, match="positive molecule"):
        attribution_quality(model, graphs, [[] for _ in masks])


def test_the_seed_ensemble_explains_as_the_mean_of_its_members():
    from sciattr.chem import MeanEnsemble
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.weave import W2N2

    feat = SimpleWeaveFeaturizer()
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(W2N2(feat.n_atom_features, feat.n_pair_features, 1, n_hidden=8, n_atom_hidden=8,
                            n_dense=8).double().eval())
    smiles = ["CC(=O)Nc1ccc(O)cc1", "ClCCBr"]
    options = {"featurizer": feat, "steps": 32, "rule": "gausslegendre"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        both = explain_molecules(MeanEnsemble(members), smiles, **options)
        each = [explain_molecules(m, smiles, **options) for m in members]
    # linearity of integrated gradients: the ensemble's attributions are the members' mean, feature by feature
    for name in ("atoms", both.link_name):
        torch.testing.assert_close(both.attributions[name],
                                   (each[0].attributions[name] + each[1].attributions[name]) / 2,
                                   rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(both.forward_x, (each[0].forward_x + each[1].forward_x) / 2, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(each[0].attributions["atoms"], each[1].attributions["atoms"])  # members differ
    assert both.meta["receptive_radius"] == each[0].meta["receptive_radius"] == 2  # two weave modules, not 4
    with pytest.raises(InputError, match="one or more torch modules"):
        MeanEnsemble([])
    with pytest.raises(InputError, match="outputs of one shape"):
        MeanEnsemble([torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)])(torch.ones(1, 2))


def test_a_shipped_ensemble_is_the_mean_of_its_members_and_each_member_loads_alone(nci_test_split):
    from sciattr.chem import MeanEnsemble, receptive_radius

    model = load_model("gcn-halide_carbonyl")
    assert isinstance(model, MeanEnsemble) and len(model.members) == 3
    assert receptive_radius(model) == 3  # three GINE layers per member, not nine
    graphs, _, _ = featurize_batch(load_featurizer(model), nci_test_split[:64])
    alone = [load_model("gcn-halide_carbonyl", member=k) for k in range(3)]
    np.testing.assert_allclose(predict(model, graphs), np.mean([predict(m, graphs) for m in alone], axis=0),
                               rtol=1e-5, atol=1e-5)
    card = model_card("gcn-halide_carbonyl")
    for k, m in enumerate(alone):
        assert m.card["member"] == {"index": k, "seed": k, "of": "gcn-halide_carbonyl"}
        record = card["members"][k]
        assert m.card["test"] == record["test"] and m.card["attribution"] == record["attribution"]
        assert "ensemble" not in m.card and "replicates" not in m.card
    # member 0's recorded test metrics are reproduced from its weights alone
    nci = load_nci()
    test = split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)[2]
    full, _, _ = featurize_batch(load_featurizer(model), [nci.mols[i] for i in test])
    labels = np.array([float(TASKS["halide_carbonyl"].is_positive(g.mol)) for g in full])
    assert classification_metrics(predict(alone[0], full), labels)["roc_auc"] == pytest.approx(
        card["members"][0]["test"]["roc_auc"], abs=1e-6)
    # the name form "<name>:k" is the same member, wherever a model name is taken
    named = load_model("gcn-halide_carbonyl:1")
    assert named.card == alone[1].card and named.card["name"] == "gcn-halide_carbonyl:1"
    for (key, a), (_, b) in zip(named.state_dict().items(), alone[1].state_dict().items()):
        assert torch.equal(a, b), key
    assert model_card("gcn-halide_carbonyl:1") == card
    with pytest.raises(InputError, match="expected one member"):
        load_model("gcn-halide_carbonyl:1", member=2)
    with pytest.raises(InputError, match="name:k"):
        load_model("gcn-halide_carbonyl:one")
    for bad in (3, -1, "0", True):
        with pytest.raises(InputError, match=r"member= an int in 0\.\.2"):
            load_model("gcn-halide_carbonyl", member=bad)
    with pytest.raises(InputError, match="only for an ensemble"):
        load_model(REGRESSION, member=0)


def test_trained_members_are_cached_and_a_rerun_resumes(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sciattr.chem.gnn import GINENetwork
    from sciattr.zoo import train_chem

    config = {"atom_features": 4, "bond_features": 3, "outputs": 1, "hidden": 8, "layers": 2}
    calls = []

    def fake_fit(arch, task, data, *, seed, progress=False):
        calls.append(seed)
        torch.manual_seed(seed)
        trained = SimpleNamespace(model=GINENetwork(**config), config=config, pos_weight=[2.0])
        return trained, {"seed": seed, "best_epoch": 1, "cpu_seconds": 1.0, "test": {"roc_auc": 0.9},
                         "attribution": {"attribution_auroc": 0.5 + seed / 10}}

    monkeypatch.setattr(train_chem, "fit_classifier", fake_fit)
    data = SimpleNamespace(parts=([0, 1], [2], [3]))
    first = [train_chem.fit_member("gcn", "benzene", data, seed=s, cache=tmp_path) for s in (0, 1)]
    assert calls == [0, 1] and len(list(tmp_path.glob("gcn-benzene-seed*.safetensors"))) == 2
    again = [train_chem.fit_member("gcn", "benzene", data, seed=s, cache=tmp_path) for s in (0, 1, 2)]
    assert calls == [0, 1, 2]  # seeds 0 and 1 were loaded, only seed 2 trained
    for (m1, r1), (m2, r2) in zip(first, again):
        assert r1 == r2 and r1["config"] == config and r1["pos_weight"] == 2.0
        for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
            assert torch.equal(a, b), k
    # another recipe, task or seed is another member: never a stale one
    monkeypatch.setitem(train_chem.RECIPES, "gcn", TrainingRecipe(epochs=5))
    train_chem.fit_member("gcn", "benzene", data, seed=0, cache=tmp_path)
    assert calls == [0, 1, 2, 0]
    assert not list(tmp_path.glob("*.tmp*"))
