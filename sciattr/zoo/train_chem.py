"""Train the shipped chemistry models (seeded, one CPU thread).

Run ``python -m sciattr.zoo.train_chem`` (all models, seeds 0 to 8) or
``... --only w2n2-benzene gcn-nitro_or_nitrile``. For every model it writes, under
``sciattr/zoo/chem/``, ``<name>.safetensors`` (float32 weights of the seed ensemble: a
:class:`~sciattr.chem.architectures.MeanEnsemble` of the models of seeds 0, 1 and 2, the mean of
their logits) and ``<name>.json`` (its card: recipe, data split, seeds, test metrics and
attribution quality of that ensemble; the same measurements of the replicate ensembles of
seeds 3-5 and 6-8 under ``"replicates"``, and of every single model under ``"members"``), then
``RESULTS.md`` (mean ± sd over the ensembles, and over the single models). ``--members`` and
``--replicates`` change the ensembles' size and number. Trained members are kept in a cache
(``--cache``; default ``~/.cache/sciattr/train_chem``, keyed by recipe, task, split, seed and
torch version), so an interrupted run resumes and a rerun only re-measures. ``--study`` reruns
the recipe comparison of single models (``recipe_study.json``) from which the recipes below were
chosen: ``--tasks``, ``--variants`` (numbers of ``STUDY_VARIANTS``) and
``--seeds`` pick its rows; each row is written as it finishes and kept, so a rerun resumes.

Models
------
* ``w1n2-<task>``, ``w2n2-<task>``: Weave models (one / two weave modules) on the "simple"
  featurization (element one-hot per atom; bond type and graph distance per pair within
  distance 2) -- the setting of "Gradients of Counterfactuals". W1N2 and W2N2 are trained on
  the same split with the same recipe, for the dead-feature comparison.
* ``gcn-<task>``: :class:`~sciattr.chem.gnn.GINENetwork` (3 layers of 64 hidden units) on
  ``PyGFeaturizer(atoms="simple")``
  (element one-hot per atom; bond type, conjugation and ring membership per bond edge).
* tasks: every ground-truth task of :data:`sciattr.datasets.TASKS` (conjunctions and the logic
  tasks with disjunctions and exclusions) over the 4,991 NCI molecules RDKit parses (largest
  fragment), one single-logit classifier per task, trained with a positive-class weight
  ``n_neg / n_pos``.
* ``w2n2-chembl2321810``: W2N2 regression of pIC50 on the 1,017 CHEMBL2321810 compounds.

Protocol: one seeded 80/10/10 split for every seed (``split_indices(n, (0.8, 0.1, 0.1), seed=0)``
over the molecules in file order; the seeds change the initial weights and the batch order),
:func:`sciattr.chem.training.train_model` (Adam, early stopping on the validation ROC AUC, the
best validation epoch kept), metrics on the test split. Attribution AUROC:
:func:`sciattr.chem.training.attribution_quality` -- integrated gradients of the logit from
the zeros baseline (64 Gauss-Legendre nodes) for every positive test molecule, complete atom
scores (atom features plus half of every pair/bond the atom is in) scored against the task's
true atoms with :func:`sciattr.datasets.score_attributions` (best true mask: one occurrence or all).
Every ensemble is also measured from the saturated carbon skeleton (``baselines="skeleton"``,
:data:`SKELETON_SETTINGS`) and with expected gradients (:func:`reference_settings`: 16 baselines
per molecule drawn from 256 seeded molecules of the training split, 32 nodes each), the same
atom scores and metric; RESULTS.md also shows what the training split shows of each rule
(:func:`sciattr.datasets.rule_evidence`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from sciattr.chem.architectures import MeanEnsemble
from sciattr.chem.baselines import ReferenceBaselines
from sciattr.chem.featurize import featurize_batch
from sciattr.chem.training import (
    QUALITY_SETTINGS,
    TrainingRecipe,
    attribution_quality,
    classification_metrics,
    predict_graphs,
    regression_metrics,
    train_model,
)
from sciattr.datasets import TASKS, load_chembl2321810, load_nci, rule_evidence, split_indices
from sciattr.errors import InputError, describe
from sciattr.run.output import atomic_write_bytes
from sciattr.settings import Settings
from sciattr.zoo import ZOO_DIR, ensemble_seeds, make_featurizer

__all__ = ["ENSEMBLES", "RECIPES", "all_model_names", "classification_metrics", "main", "predict", "regression_metrics",
           "results_markdown"]

SEED = 0
#: The seeds of each shipped ensemble: the first is shipped, the others are its replicates for the statistics.
ENSEMBLES = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
FRACTIONS = (0.8, 0.1, 0.1)
WEAVE_FEATURIZER = {"class": "SimpleWeaveFeaturizer", "max_distance": 2}
GCN_FEATURIZER = {"class": "PyGFeaturizer", "atoms": "simple"}
WEAVE_OPTIONS = {"n_hidden": 50, "n_atom_hidden": 128, "n_dense": 128, "reduction": "sum"}
GCN_OPTIONS = {"hidden": 64, "layers": 3}

ARCHITECTURES = {"w1n2": ("W1N2", WEAVE_FEATURIZER, WEAVE_OPTIONS), "w2n2": ("W2N2", WEAVE_FEATURIZER, WEAVE_OPTIONS),
                 "gcn": ("GINENetwork", GCN_FEATURIZER, GCN_OPTIONS)}
#: The recipe of each architecture (chosen in ``recipe_study.json``; see RESULTS.md).
RECIPES = {"w1n2": TrainingRecipe(epochs=30, patience=10, anchor_baseline="neutral"),
           "w2n2": TrainingRecipe(epochs=30, patience=10, anchor_baseline="neutral"),
           "gcn": TrainingRecipe(epochs=30, patience=10, anchor_baseline="neutral", weight_decay=1e-3)}
#: Expected gradients as the ensembles are also measured: ``REFERENCE_K`` baselines per molecule
#: drawn from ``REFERENCE_SIZE`` molecules of the training split (any label; seeded), with
#: ``REFERENCE_STEPS`` Gauss-Legendre nodes per baseline.
REFERENCE_SIZE, REFERENCE_K, REFERENCE_STEPS = 256, 16, 32
#: The skeleton baseline as the ensembles are also measured (64 Gauss-Legendre nodes, as the zeros
#: baseline).
SKELETON_SETTINGS = Settings(steps=64, rule="gausslegendre", baselines="skeleton")
REGRESSION = "w2n2-chembl2321810"
REGRESSION_RECIPE = TrainingRecipe(epochs=150, batch_size=32, patience=None)
STUDY_FILE = "recipe_study.json"
#: Where :func:`deletion_study` keeps its rows (next to the cards).
DELETION_FILE = "deletion_checks.json"


def all_model_names() -> list[str]:
    return [f"{arch}-{task}" for arch in ARCHITECTURES for task in TASKS] + [REGRESSION]


def predict(model, graphs, chunk: int = 512) -> np.ndarray:
    """``(n_graphs, outputs)`` scores of featurized molecules, without gradients."""
    return predict_graphs(model, graphs, chunk)


# ---------------------------------------------------------------------------------------- data
def _featurized(featurizer_spec: dict, mols) -> list:
    graphs, _, errors = featurize_batch(make_featurizer(featurizer_spec), mols)
    if errors:
        raise InputError(f"expected every molecule to be featurized; {len(errors)} failed, e.g. {errors[0]}")
    return graphs


class NciData:
    """NCI molecules featurized both ways, with the true masks of every task (per featurization)."""

    def __init__(self):
        nci = load_nci()
        self.graphs = {spec["class"]: _featurized(spec, nci.mols) for spec in (WEAVE_FEATURIZER, GCN_FEATURIZER)}
        self.parts = split_indices(len(nci), FRACTIONS, SEED)
        self._masks: dict = {}

    def masks(self, featurizer_class: str, task: str) -> list:
        key = (featurizer_class, task)
        if key not in self._masks:  # the processed molecules (largest fragment), atom rows as featurized
            self._masks[key] = [TASKS[task].true_masks(g.mol) for g in self.graphs[featurizer_class]]
        return self._masks[key]


def _rounded(value):
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def fit_classifier(arch: str, task: str, data: NciData, *, seed: int, recipe: TrainingRecipe | None = None,
                   options: dict | None = None, progress=False):
    """Train one (architecture, task, seed) and measure it. Returns ``(TrainedModel, measurements)``."""
    architecture, featurizer_spec, default_options = ARCHITECTURES[arch]
    graphs = data.graphs[featurizer_spec["class"]]
    masks = data.masks(featurizer_spec["class"], task)
    featurizer = make_featurizer(featurizer_spec)
    trained = train_model(graphs, [float(bool(m)) for m in masks], architecture=architecture, featurizer=featurizer,
                          model_options={**default_options, **(options or {})}, recipe=recipe or RECIPES[arch],
                          seed=seed, split=data.parts, kind="classification", progress=progress,
                          name=f"{arch}-{task} seed {seed}")
    quality = measure_attribution(trained.model, arch, task, data)
    measured = {"seed": seed, "best_epoch": trained.best_epoch, "epochs_run": len(trained.history),
                "cpu_seconds": round(trained.cpu_seconds, 1), "validation": _rounded(trained.metrics["validation"]),
                "test": trained.metrics["test"], "attribution": quality}
    return trained, measured


def reference_indices(train: Sequence[int]) -> np.ndarray:
    """The reference molecules of expected gradients: ``REFERENCE_SIZE`` of the training-split
    indices ``train`` drawn without replacement with seed ``SEED``, ascending."""
    train = np.asarray(train)
    return np.sort(np.random.default_rng(SEED).choice(train, min(REFERENCE_SIZE, train.size), replace=False))


def reference_settings(arch: str, data: NciData) -> Settings:
    """Expected gradients for architecture ``arch``: :class:`ReferenceBaselines` over
    ``REFERENCE_SIZE`` molecules of the training split drawn with seed ``SEED`` (any label: what a
    user has without knowing the rule), ``REFERENCE_K`` baselines per molecule,
    ``REFERENCE_STEPS`` Gauss-Legendre nodes."""
    picked = reference_indices(data.parts[0])
    graphs = data.graphs[ARCHITECTURES[arch][1]["class"]]
    return Settings(steps=REFERENCE_STEPS, rule="gausslegendre",
                    baselines=ReferenceBaselines([graphs[i] for i in picked], k=REFERENCE_K, seed=SEED))


def measure_attribution(model, arch: str, task: str, data: NciData, settings: Settings | None = None) -> dict:
    """:func:`attribution_quality` of ``model`` (of architecture ``arch``'s featurization) on the
    positives of the test split of ``task`` (without the per-molecule list); ``settings``
    default :data:`QUALITY_SETTINGS` (zeros baseline)."""
    featurizer_spec = ARCHITECTURES[arch][1]
    graphs, masks, test = data.graphs[featurizer_spec["class"]], data.masks(featurizer_spec["class"], task), \
        data.parts[2]
    quality = attribution_quality(model, [graphs[i] for i in test], [masks[i] for i in test],
                                  featurizer=make_featurizer(featurizer_spec), settings=settings or QUALITY_SETTINGS)
    quality.pop("per_molecule")
    if settings is not None and isinstance(settings.baselines, ReferenceBaselines):
        quality.update({"baseline": "expected gradients over training molecules",
                        "reference_size": len(settings.baselines.reference), "k": settings.baselines.k})
    return quality


# ---------------------------------------------------------------------------------------- saving
def _weights_bytes(model) -> bytes:
    """The model's state dict as float32 safetensors bytes."""
    from safetensors.torch import save as to_bytes

    return to_bytes({k: v.detach().float().contiguous() for k, v in model.state_dict().items()})


def save(model, card: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{card['name']}.safetensors"
    data = _weights_bytes(model)
    atomic_write_bytes(weights, data)
    weights.chmod(0o644)
    card["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (out / f"{card['name']}.json").write_text(json.dumps(card, indent=2) + "\n")


def base_card(name: str, architecture: str, config: dict, featurizer: dict, recipe: TrainingRecipe,
              data: dict) -> dict:
    return {"name": name, "architecture": architecture, "config": config, "featurizer": featurizer,
            "data": data, "training": asdict(recipe), "seed": SEED, "torch": torch.__version__,
            "script": "python -m sciattr.zoo.train_chem"}


def _data_card(n: int, parts) -> dict:
    return {"source": "rdkit/Data/NCI/first_5K.smi (sciattr.datasets.load_nci), largest fragment",
            "n_molecules": n, "split": {"fractions": list(FRACTIONS), "seed": SEED, "sizes": [len(p) for p in parts]}}


def member_cache_dir() -> Path:
    """Where trained members are kept between runs: ``$SCIATTR_TRAIN_CACHE``, else
    ``$XDG_CACHE_HOME/sciattr/train_chem`` (``~/.cache/sciattr/train_chem``)."""
    if os.environ.get("SCIATTR_TRAIN_CACHE"):
        return Path(os.environ["SCIATTR_TRAIN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sciattr" / "train_chem"


def _member_key(arch: str, task: str, seed: int, data: NciData) -> str:
    """A digest of everything that decides a member's weights: architecture, options, featurizer,
    recipe, task rules, split, seed and the torch version."""
    architecture, featurizer_spec, options = ARCHITECTURES[arch]
    spec = {"architecture": architecture, "options": options, "featurizer": featurizer_spec,
            "recipe": _changed(RECIPES[arch]), "task": [list(r) for r in TASKS[task].rules],
            "formula": TASKS[task].formula, "split": [len(p) for p in data.parts], "seed": seed,
            "torch": torch.__version__}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _changed(recipe: TrainingRecipe) -> dict:
    """The fields of a recipe that differ from TrainingRecipe's defaults (a new field with its
    default leaves the cache keys as they were)."""
    default = asdict(TrainingRecipe())
    return {k: v for k, v in asdict(recipe).items() if v != default[k]}


def fit_member(arch: str, task: str, data: NciData, *, seed: int, cache: Path | None = None, progress=False):
    """One seed of the shipped recipe of ``arch`` on ``task``: ``(model, record)`` with ``record`` =
    the measurements of :func:`fit_classifier` plus the model ``config`` and ``pos_weight``.

    With ``cache``, a member trained before with the same recipe, task, split, seed and torch is
    loaded from it, and a newly trained one is written to it (weights, then the record, each
    atomically), so an interrupted run resumes where it stopped."""
    from safetensors.torch import load_file

    from sciattr.chem.architectures import build_model

    stem = None if cache is None else cache / f"{arch}-{task}-seed{seed}-{_member_key(arch, task, seed, data)}"
    if stem is not None and stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file():
        record = json.loads(stem.with_suffix(".json").read_text())
        model = build_model(ARCHITECTURES[arch][0], record["config"])
        model.load_state_dict(load_file(str(stem.with_suffix(".safetensors"))))
        return model.eval(), record
    trained, measured = fit_classifier(arch, task, data, seed=seed, progress=progress)
    record = {**measured, "config": trained.config, "pos_weight": trained.pos_weight[0]}
    if stem is not None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(stem.with_suffix(".safetensors"), _weights_bytes(trained.model))
        atomic_write_bytes(stem.with_suffix(".json"), (json.dumps(record, indent=1) + "\n").encode())
    return trained.model.eval(), record


def measure_ensemble(model, arch: str, task: str, data: NciData) -> dict:
    """Test metrics (from the model's logits) and attribution quality of a model on ``task``: from
    the zeros baseline (``"attribution"``), from the saturated carbon skeleton (``"skeleton"``,
    :data:`SKELETON_SETTINGS`) and with expected gradients (``"expected_gradients"``,
    :func:`reference_settings`)."""
    featurizer_class = ARCHITECTURES[arch][1]["class"]
    graphs, masks, test = data.graphs[featurizer_class], data.masks(featurizer_class, task), data.parts[2]
    logits = predict(model, [graphs[i] for i in test])
    labels = np.array([float(bool(masks[i])) for i in test])
    return {"test": classification_metrics(logits, labels), "attribution": measure_attribution(model, arch, task, data),
            "skeleton": measure_attribution(model, arch, task, data, SKELETON_SETTINGS),
            "expected_gradients": measure_attribution(model, arch, task, data, reference_settings(arch, data))}


def train_classifier(name: str, data: NciData, out: Path, ensembles=ENSEMBLES, cache: Path | None = None,
                     progress=False) -> dict:
    """Train every member of every ensemble of ``name``; save the first ensemble (the mean of its
    members' logits) with a card holding every ensemble and every member."""
    arch, task_name = name.split("-", 1)
    if not ensembles or any(not e for e in ensembles):
        raise InputError(f"expected one or more non-empty ensembles of seeds; got {describe(ensembles)}")
    seeds = sorted({s for e in ensembles for s in e})
    members = {}
    for seed in seeds:
        members[seed] = fit_member(arch, task_name, data, seed=seed, cache=cache, progress=progress)
        record = members[seed][1]
        if "skeleton" not in record:  # measured here, not cached: a cached member gains it too
            record["skeleton"] = measure_attribution(members[seed][0], arch, task_name, data, SKELETON_SETTINGS)
        print(json.dumps({"name": name, "seed": seed, "roc_auc": round(record["test"]["roc_auc"], 4),
                          "attribution_auroc": round(record["attribution"]["attribution_auroc"], 4),
                          "best_epoch": record["best_epoch"], "cpu_seconds": record["cpu_seconds"]}), flush=True)
    models = [MeanEnsemble([members[s][0] for s in ensemble]) for ensemble in ensembles]
    replicates = []
    for ensemble, model in zip(ensembles, models):
        replicates.append({"seeds": list(ensemble), **measure_ensemble(model, arch, task_name, data)})
        print(json.dumps({"name": name, "ensemble": list(ensemble),
                          "roc_auc": round(replicates[-1]["test"]["roc_auc"], 4),
                          "attribution_auroc": round(replicates[-1]["attribution"]["attribution_auroc"], 4),
                          "skeleton_auroc": round(replicates[-1]["skeleton"]["attribution_auroc"], 4),
                          "expected_gradients_auroc":
                              round(replicates[-1]["expected_gradients"]["attribution_auroc"], 4)}), flush=True)
    shipped = ensembles[0]
    task = TASKS[task_name]
    architecture, featurizer_spec, _ = ARCHITECTURES[arch]
    first = members[shipped[0]][1]
    card = base_card(name, architecture, first["config"], featurizer_spec, RECIPES[arch],
                     _data_card(len(data.graphs[featurizer_spec["class"]]), data.parts))
    card.pop("seed")
    card.update({"ensemble": {"seeds": list(shipped), "combine": "mean of the members' logits"},
                 "task": {"name": task.name, "description": task.description, "formula": task.formula,
                          "rules": [list(r) for r in task.rules], "kind": "binary classification (one logit)",
                          "pos_weight": first["pos_weight"]},
                 "cpu_seconds": round(sum(members[s][1]["cpu_seconds"] for s in shipped), 1),
                 "test": replicates[0]["test"], "attribution": replicates[0]["attribution"],
                 "skeleton": replicates[0]["skeleton"], "expected_gradients": replicates[0]["expected_gradients"],
                 "replicates": replicates[1:],
                 "members": [{k: v for k, v in members[s][1].items() if k not in ("config", "pos_weight")}
                             for s in seeds]})
    save(models[0], card, out)
    return card


def train_regression(out: Path, progress=False) -> dict:
    series = load_chembl2321810()
    graphs = _featurized(WEAVE_FEATURIZER, series.mols)
    parts = split_indices(len(graphs), FRACTIONS, SEED)
    featurizer = make_featurizer(WEAVE_FEATURIZER)
    trained = train_model(graphs, series.values, architecture="W2N2", featurizer=featurizer,
                          model_options=WEAVE_OPTIONS, recipe=REGRESSION_RECIPE, seed=SEED, split=parts,
                          kind="regression", progress=progress, name=REGRESSION)
    from sciattr.chem.adapter import explain_graphs

    test = parts[2]
    result = explain_graphs(trained.model, [graphs[i] for i in test], target=0, settings=QUALITY_SETTINGS,
                            featurizer=featurizer)
    card = base_card(REGRESSION, "W2N2", trained.config, WEAVE_FEATURIZER, REGRESSION_RECIPE, {
        "source": "rdkit/Contrib/FreeWilson/data/CHEMBL2321810.smi + CHEMBL2321810_act.csv "
                  "(sciattr.datasets.load_chembl2321810)",
        "n_molecules": len(graphs), "split": {"fractions": list(FRACTIONS), "seed": SEED,
                                              "sizes": [len(p) for p in parts]}})
    card.update({"task": {"name": "chembl2321810", "description": "pIC50 regression (CHEMBL2321810 series)",
                          "kind": "regression (pIC50)"},
                 "history": {"best_epoch": trained.best_epoch, "validation": trained.metrics["validation"]},
                 "cpu_seconds": round(trained.cpu_seconds, 1), "test": trained.metrics["test"],
                 "attribution": {"max_relative_gap": float(result.relative_gap.max()),
                                 "median_relative_gap": float(result.relative_gap.median()),
                                 "steps": QUALITY_SETTINGS.steps, "baseline": "zeros", "rule": "gausslegendre"}})
    save(trained.model, card, out)
    return card


# ---------------------------------------------------------------------------------------- recipe study
#: The recipe the study varies: Adam at 1e-3, batches of 64, weight decay 1e-5, no anchor.
def deletion_study(data: NciData, out: Path, names: Sequence[str] | None = None) -> list[dict]:
    """For every shipped classifier in ``out`` (or those named), every rule of its task and two
    baselines (zeros, :data:`QUALITY_SETTINGS`; skeleton, :data:`SKELETON_SETTINGS`): delete the
    rule's atoms from each positive test molecule that has them and compare the score's drop with
    their attribution (:func:`sciattr.chem.deletion_check`, threshold 0). Rows go into
    ``out/deletion_checks.json`` as each model finishes, replacing that model's earlier rows."""
    from sciattr.chem.adapter import explain_graphs
    from sciattr.chem.deletion import deletion_check
    from sciattr.errors import BaselineWarning
    from sciattr.zoo import load_model

    chosen = [n for n in (names or all_model_names()) if n != REGRESSION]
    path = out / DELETION_FILE
    rows: list[dict] = []
    for name in chosen:
        arch, task = name.split("-", 1)
        model = load_model(out / f"{name}.json")
        spec = ARCHITECTURES[arch][1]
        featurizer = make_featurizer(spec)
        graphs, masks = data.graphs[spec["class"]], data.masks(spec["class"], task)
        positives = [graphs[i] for i in data.parts[2] if masks[i]]
        mine = []
        for baseline, settings in (("zeros", QUALITY_SETTINGS), ("skeleton", SKELETON_SETTINGS)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BaselineWarning)
                result = explain_graphs(model, positives, target=0, settings=settings, featurizer=featurizer,
                                        decision_threshold=0.0, group_check=False)  # deletion_check does it below
            rules = dict(TASKS[task].rules)
            reports = deletion_check(model, result, rules, featurizer=featurizer, threshold=0.0)
            for rule, report in reports.items():
                smarts = rules[rule]
                if not report.checks:
                    continue
                mine.append({"name": name, "task": task, "rule": rule, "smarts": smarts, "baseline": baseline,
                             "positives": len(positives), "with_rule": len(report.checks),
                             "flips": len(report.needed), "missed": len(report.missed),
                             "failed": len(report.failed), "agree": sum(c.agrees for c in report.checks),
                             "median_attribution": float(np.median([c.attribution for c in report.checks])),
                             "median_drop": float(np.nanmedian([c.drop for c in report.checks]))
                             if len(report.failed) < len(report.checks) else None})
        rows += mine
        current = json.loads(path.read_text()) if path.is_file() else []
        merged = [r for r in current if r["name"] != name] + mine
        merged.sort(key=lambda r: (all_model_names().index(r["name"]), r["rule"], r["baseline"]))
        atomic_write_bytes(path, (json.dumps(_rounded_rows(merged), indent=1) + "\n").encode())
        print(json.dumps({"name": name, "rows": len(mine)}), flush=True)
    return rows


def _rounded_rows(rows: list[dict]) -> list[dict]:
    return [{k: _rounded(v) for k, v in r.items()} for r in rows]


STUDY_BASE = TrainingRecipe(epochs=30, patience=10)
#: The model options the study's variants change (fixed, so that a row keeps its meaning when the
#: shipped options change): Weave as shipped, GINE with 64 hidden units and 3 layers.
STUDY_OPTIONS = {"w1n2": WEAVE_OPTIONS, "w2n2": WEAVE_OPTIONS, "gcn": {"hidden": 64, "layers": 3}}
#: The variants compared by ``--study`` on every task of STUDY_TASKS:
#: (architecture, label, changes of STUDY_BASE, model option changes).
STUDY_TASKS = ("halide_carbonyl_or_nitro", "amine_ether_benzene")
STUDY_VARIANTS = (
    ("gcn", "base: 3 GINE layers, sum readout, weight decay 1e-5, no anchor", {}, {}),
    ("gcn", "zeros baseline anchored at logit 0 (neutral)", {"anchor_baseline": "neutral"}, {}),
    ("gcn", "zeros baseline anchored as a negative", {"anchor_baseline": "negative"}, {}),
    ("gcn", "weight decay 1e-3", {"weight_decay": 1e-3}, {}),
    ("gcn", "2 GINE layers (smaller receptive field)", {}, {"layers": 2}),
    ("w2n2", "base: sum readout, weight decay 1e-5, no anchor", {}, {}),
    ("w2n2", "zeros baseline anchored at logit 0 (neutral)", {"anchor_baseline": "neutral"}, {}),
    ("w2n2", "zeros baseline anchored as a negative", {"anchor_baseline": "negative"}, {}),
    ("w2n2", "Gaussian-histogram readout", {}, {"reduction": "histogram"}),
    ("gcn", "neutral anchor + attribution prior 0.1 (L1 of gradient x input)",
     {"anchor_baseline": "neutral", "attribution_prior": 0.1}, {}),
    ("w2n2", "neutral anchor + attribution prior 0.1 (L1 of gradient x input)",
     {"anchor_baseline": "neutral", "attribution_prior": 0.1}, {}),
    ("w1n2", "base (one weave module)", {}, {}),
    ("w1n2", "zeros baseline anchored at logit 0 (neutral)", {"anchor_baseline": "neutral"}, {}),
    ("w1n2", "zeros baseline anchored as a negative", {"anchor_baseline": "negative"}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3", {"anchor_baseline": "neutral", "weight_decay": 1e-3}, {}),
    ("w2n2", "neutral anchor + weight decay 1e-3", {"anchor_baseline": "neutral", "weight_decay": 1e-3}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3 + attribution prior 0.01",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3, "attribution_prior": 0.01}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3 + path monotonicity 1",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3, "path_monotonicity": 1.0}, {}),
    ("w2n2", "neutral anchor + path monotonicity 1", {"anchor_baseline": "neutral", "path_monotonicity": 1.0}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3, 4 GINE layers", {"anchor_baseline": "neutral", "weight_decay": 1e-3},
     {"layers": 4}),
    ("gcn", "neutral anchor + weight decay 1e-3, 128 hidden units", {"anchor_baseline": "neutral",
                                                                     "weight_decay": 1e-3}, {"hidden": 128}),
    ("gcn", "neutral anchor + weight decay 1e-3, 60 epochs, patience 20",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3, "epochs": 60, "patience": 20}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3, batches of 32",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3, "batch_size": 32}, {}),
    ("gcn", "neutral anchor + weight decay 1e-3, homogeneous (bias-free ReLU layers)",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3}, {"homogeneous": True}),
    ("w1n2", "neutral anchor, homogeneous (bias-free ReLU layers)", {"anchor_baseline": "neutral"},
     {"homogeneous": True}),
    ("w2n2", "neutral anchor, homogeneous (bias-free ReLU layers)", {"anchor_baseline": "neutral"},
     {"homogeneous": True}),
    ("gcn", "neutral anchor + weight decay 1e-3 + deletion consistency 1",
     {"anchor_baseline": "neutral", "weight_decay": 1e-3, "deletion_consistency": 1.0}, {}),
    ("w1n2", "neutral anchor + deletion consistency 1", {"anchor_baseline": "neutral", "deletion_consistency": 1.0},
     {}),
    ("w2n2", "neutral anchor + deletion consistency 1", {"anchor_baseline": "neutral", "deletion_consistency": 1.0},
     {}),
)


def _study_key(row: dict) -> tuple:
    return row["architecture"], row["task"], row["variant"], row["seed"]


def recipe_study(data: NciData, out: Path, tasks=STUDY_TASKS, seeds=(0,), variants=None) -> list[dict]:
    """Train and measure every variant of STUDY_VARIANTS (or those numbered in ``variants``) on
    ``tasks`` x ``seeds``; rows go into ``out/recipe_study.json`` as they finish, replacing a
    row of the same (architecture, task, variant, seed) and keeping the others. A row already
    there with the same recipe is not run again, so a rerun resumes an interrupted study."""
    chosen = range(len(STUDY_VARIANTS)) if variants is None else variants
    for i in chosen:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(STUDY_VARIANTS):
            raise InputError(f"expected variant numbers in 0..{len(STUDY_VARIANTS) - 1}; got {describe(i)}")
    path = out / STUDY_FILE
    rows = []
    for task in tasks:
        for i in chosen:
            arch, label, recipe_changes, option_changes = STUDY_VARIANTS[i]
            recipe = TrainingRecipe(**{**asdict(STUDY_BASE), **recipe_changes})
            for seed in seeds:
                done = {_study_key(r): r for r in (json.loads(path.read_text()) if path.is_file() else [])}
                key = (arch, task, label, seed)
                if key in done and done[key]["recipe"] == recipe_changes and done[key]["options"] == option_changes:
                    rows.append(done[key])
                    continue
                _, measured = fit_classifier(arch, task, data, seed=seed, recipe=recipe,
                                             options={**STUDY_OPTIONS[arch], **option_changes})
                row = {"architecture": arch, "task": task, "variant": label, "recipe": recipe_changes,
                       "options": option_changes, **measured}
                rows.append(row)
                with _locked(out / f".{STUDY_FILE}.lock"):  # two studies on other tasks may share the file
                    current = json.loads(path.read_text()) if path.is_file() else []
                    merged = [r for r in current if _study_key(r) != key] + [row]
                    atomic_write_bytes(path, (json.dumps(merged, indent=1) + "\n").encode())
                print(json.dumps({k: row[k] for k in ("architecture", "task", "variant", "seed")} | {
                    "roc_auc": round(row["test"]["roc_auc"], 4),
                    "attribution_auroc": round(row["attribution"]["attribution_auroc"], 4)}), flush=True)
    return rows


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` while the block runs (POSIX; elsewhere no lock: run one study at a time)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------- results table
def _mean_sd(values) -> str:
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return "n/a"
    if values.size == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _runs(card: dict) -> list[dict]:
    """The replicates of a shipped model: its ensembles (the shipped one first), or for a single
    model its seeds."""
    seeds = ensemble_seeds(card)
    own = {"seeds": seeds} if seeds else {"seed": card.get("seed")}
    for measure in ("skeleton", "expected_gradients"):
        if measure in card:
            own[measure] = card[measure]
    return [{**own, "test": card["test"], "attribution": card["attribution"]}] + list(card.get("replicates", []))


def _members(card: dict) -> list[dict]:
    """The single models of a card (every seed trained), or its own runs when it is one model."""
    return list(card["members"]) if card.get("members") else _runs(card)


def _seeds_label(seeds) -> str:
    seeds = list(seeds)
    contiguous = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}–{seeds[-1]}" if contiguous else ", ".join(map(str, seeds))


GOAL = {"attribution_auroc": 0.95, "sd": 0.03, "roc_auc": 0.98}


def _goal_met(runs: list[dict], measure: str = "attribution") -> str:
    """``"yes"`` or ``"no (...)"`` with what was missed; ``measure`` names the attribution
    measurement judged (``"attribution"``: zeros baseline; ``"skeleton"``; ``"expected_gradients"``)."""
    attribution = np.array([r[measure]["attribution_auroc"] for r in runs])
    roc = np.array([r["test"]["roc_auc"] for r in runs])
    misses = []
    if attribution.mean() < GOAL["attribution_auroc"]:
        misses.append("AUROC")
    if len(runs) > 1 and attribution.std(ddof=1) > GOAL["sd"]:
        misses.append("sd")
    if roc.mean() < GOAL["roc_auc"]:
        misses.append("ROC AUC")
    return "yes" if not misses else "no (" + ", ".join(misses) + ")"


def training_evidence() -> dict[str, list[dict]]:
    """:func:`sciattr.datasets.rule_evidence` of every task over the training split."""
    nci = load_nci()
    train = split_indices(len(nci), FRACTIONS, SEED)[0]
    mols = [nci.mols[i] for i in train]
    return {task: rule_evidence(task, mols) for task in TASKS}


def results_markdown(cards: list[dict], study: list[dict] | None = None,
                     evidence: dict[str, list[dict]] | None = None, deletions: list[dict] | None = None) -> str:
    """Markdown: the shipped ensembles (mean ± sd over replicate ensembles), the same from the
    skeleton baseline and with expected gradients, their single members, what the training split
    shows of each rule (``evidence``: :func:`training_evidence`), the regression model, the recipe
    study; ``deletions`` (:func:`deletion_study`) adds what deleting each rule's atoms does."""
    classifiers = [c for c in cards if "roc_auc" in c["test"]]
    ensembles = [r["seeds"] for r in _runs(classifiers[0])] if classifiers and ensemble_seeds(classifiers[0]) else []
    n_members = sorted({len(_members(c)) for c in classifiers})
    with_others = [c for c in classifiers if all("expected_gradients" in r and "skeleton" in r for r in _runs(c))]
    lines = ["# Shipped chemistry models", "",
             ("Made by `python -m sciattr.zoo.train_chem` (one CPU thread). Every classifier is trained on the same "
              "seeded 80/10/10 split of the 4,991 NCI molecules (the seed changes the initial weights and the batch "
              "order). The shipped classifier of each architecture and task is a **seed ensemble**: the mean of the "
              "logits of the models trained from seeds "
              + (_seeds_label(ensembles[0]) if ensembles else "0") + " (`sciattr.chem.MeanEnsemble`; integrated "
              "gradients are linear in the model, so its attributions are the mean of its members'). Its statistics "
              "come from replicate ensembles of the same recipe on disjoint seeds ("
              + "; ".join(_seeds_label(e) for e in ensembles) + "). "
              "Test split: 499 molecules. Accuracy at logit 0; the classifiers are trained with a positive-class "
              "weight. Attribution AUROC: integrated gradients of the logit (zeros baseline, 64 Gauss–Legendre "
              "nodes) for every positive test molecule; per molecule the AUROC of the atom scores against the atoms "
              "of the task's rules, scored against the best true mask (one way the formula holds -- one match of "
              "each rule of a clause present -- or all of them at once), averaged over "
              "the molecules; 0.5 is chance. *Complete* atom scores (the default view) are the atom's features plus "
              "half of every pair/bond it takes part in; *feature-only* scores leave the pairs/bonds out."), "",
             (f"Goal: attribution AUROC (complete) ≥ {GOAL['attribution_auroc']} in the mean with sd ≤ {GOAL['sd']}, "
              f"at test ROC AUC ≥ {GOAL['roc_auc']}. Values are mean ± sd (sample sd) over the "
              f"{len(ensembles)} ensembles, and for the single models over their "
              f"{'/'.join(str(n) for n in n_members)} seeds."), "",
             (f"Goal met by the shipped ensembles for {sum(_goal_met(_runs(c)) == 'yes' for c in classifiers)} of "
              f"the {len(classifiers)} classifiers; by single models for "
              f"{sum(_goal_met(_members(c)) == 'yes' for c in classifiers)}"
              + (f" ({sum(_goal_met(_members(c), 'skeleton') == 'yes' for c in with_others)} from the skeleton "
                 "baseline)" if with_others and all("skeleton" in m for c in with_others for m in _members(c)) else "")
              + (f"; instead of the zeros baseline, by the shipped ensembles for "
                 f"{sum(_goal_met(_runs(c), 'skeleton') == 'yes' for c in with_others)} with the skeleton baseline and "
                 f"{sum(_goal_met(_runs(c), 'expected_gradients') == 'yes' for c in with_others)} with expected gradients "
                 f"(of the {len(with_others)} measured so)" if with_others else "") + "."), "",
             f"## Shipped ensembles (mean ± sd over {len(ensembles)} ensembles)", "",
             ("| model | task | accuracy | ROC AUC | attribution AUROC (complete) | attribution AUROC (feature-only) "
              "| positives scored | goal met |"),
             "|---|---|---|---|---|---|---|---|"]
    for c in classifiers:
        runs = _runs(c)
        lines.append(
            f"| {c['name']} | {c['task'].get('formula', c['task']['description'])} | "
            f"{_mean_sd([r['test']['accuracy'] for r in runs])} | {_mean_sd([r['test']['roc_auc'] for r in runs])} | "
            f"{_mean_sd([r['attribution']['attribution_auroc'] for r in runs])} | "
            f"{_mean_sd([r['attribution'].get('attribution_auroc_atom_features') for r in runs])} | "
            f"{c['attribution']['n_scored']} | {_goal_met(runs)} |")
    if with_others:
        eg = with_others[0]["expected_gradients"]
        lines += ["", f"## Other baselines (mean ± sd over {len(ensembles)} ensembles)", "",
                  ("The same ensembles, molecules and metric from two other baselines. *Skeleton*: the molecule's "
                   "saturated carbon skeleton (`baselines=\"skeleton\"`: every atom a carbon, every bond single, "
                   "graph distances and ring membership kept; 64 Gauss–Legendre nodes): a real kind of molecule "
                   "rather than no atoms at all, whose carbon atoms are credited only through their bonds. "
                   f"*Expected gradients*: the attributions averaged over {eg.get('k', REFERENCE_K)} baselines per "
                   "molecule whose atom and pair rows are drawn from those of "
                   f"{eg.get('reference_size', REFERENCE_SIZE)} molecules of the training split, any label "
                   f"(`ReferenceBaselines`, seed {SEED}; {eg['steps']} Gauss–Legendre nodes per baseline, each "
                   "baseline with its own completeness check): they credit the atoms that set the molecule apart "
                   "from typical molecules, and a substructure most reference molecules carry too (a benzene ring) "
                   "is largely part of the baseline."), "",
                  ("| model | task | zeros baseline | skeleton | expected gradients | expected gradients "
                   "(feature-only) | max relative gap (skeleton; expected gradients) | goal met: skeleton "
                   "| goal met: expected gradients |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in with_others:
            runs = _runs(c)
            lines.append(
                f"| {c['name']} | {c['task'].get('formula', c['task']['description'])} | "
                f"{_mean_sd([r['attribution']['attribution_auroc'] for r in runs])} | "
                f"{_mean_sd([r['skeleton']['attribution_auroc'] for r in runs])} | "
                f"{_mean_sd([r['expected_gradients']['attribution_auroc'] for r in runs])} | "
                f"{_mean_sd([r['expected_gradients'].get('attribution_auroc_atom_features') for r in runs])} | "
                f"{max(r['skeleton']['max_relative_gap'] for r in runs):.1e}; "
                f"{max(r['expected_gradients']['max_relative_gap'] for r in runs):.1e} | "
                f"{_goal_met(runs, 'skeleton')} | {_goal_met(runs, 'expected_gradients')} |")
    lines += ["", "## Single models and each ensemble (attribution AUROC, complete atom scores)", "",
              ("Single models: every member seed on its own (mean ± sd over the seeds), the goal judged on them as "
               "on the ensembles. Ensembles: the attribution AUROC of each; baseline F(x') > 0, relative gap and "
               "training time are those of the shipped ensemble (training: its members' CPU seconds summed)."), "",
              "| model | single models: ROC AUC | single models: attribution AUROC | single models: goal met | "
              + " | ".join(f"ensemble {_seeds_label(e)}" for e in ensembles)
              + " | baseline F(x') > 0 | max relative gap | train CPU s | single models: skeleton baseline "
              "| single models: goal met (skeleton) |",
              "|---|---|---|---|" + "---|" * (len(ensembles) + 5)]
    for c in classifiers:
        members = _members(c)
        by_seeds = {tuple(r.get("seeds") or ()): r["attribution"]["attribution_auroc"] for r in _runs(c)}
        cells = " | ".join(f"{by_seeds[tuple(e)]:.3f}" if tuple(e) in by_seeds else "–" for e in ensembles)
        a = c["attribution"]
        lines.append(f"| {c['name']} | {_mean_sd([m['test']['roc_auc'] for m in members])} | "
                     f"{_mean_sd([m['attribution']['attribution_auroc'] for m in members])} | {_goal_met(members)} | "
                     f"{cells}{' | ' if cells else ''}{a.get('baseline_above_threshold', float('nan')):.0%} | "
                     f"{a['max_relative_gap']:.1e} | {c['cpu_seconds']:.0f} | "
                     + (f"{_mean_sd([m['skeleton']['attribution_auroc'] for m in members])} | "
                        f"{_goal_met(members, 'skeleton')} |" if all("skeleton" in m for m in members) else "– | – |"))
    if evidence:
        lines += ["", "## What the training split shows of each rule", "",
                  ("Contrasts of a rule (`sciattr.datasets.rule_evidence`): the training molecules that differ from "
                   "a positive of its clause by that rule -- negatives in which the clause's other rules match and "
                   "this one does not (a clause of one rule: every negative without it); for an excluded rule, the "
                   "molecules in which a clause matches and the excluded rule too. A rule with few contrasts costs a "
                   "network little accuracy to leave out, and then gets little attribution however well the network "
                   "scores."), "",
                  "| task | clause | rule | kind | contrasts | positives |", "|---|---|---|---|---|---|"]
        for task, rows in evidence.items():
            for e in rows:
                lines.append(f"| {task} | {e['clause']} | {e['rule']} | {e['kind']} | {e['contrasts']:,} | "
                             f"{e['positives']:,} |")
    if deletions:
        lines += ["", *_deletion_section(deletions)]
    regressions = [c for c in cards if "rmse" in c["test"]]
    if regressions:
        lines += ["", "## Regression (seed 0)", "",
                  "| model | task | test RMSE | test R² | test Spearman | max relative gap | train CPU s |",
                  "|---|---|---|---|---|---|---|"]
        for c in regressions:
            t = c["test"]
            lines.append(f"| {c['name']} | {c['task']['description']} | {t['rmse']:.3f} | {t['r2']:.3f} | "
                         f"{t['spearman']:.3f} | {c['attribution']['max_relative_gap']:.1e} | "
                         f"{c['cpu_seconds']:.0f} |")
    if study:
        groups = _study_groups(study, cards)
        seeds = sorted({r["seed"] for r in study})
        lines += ["", "## Recipe study", "",
                  (f"Variants of the base recipe (Adam 1e-3, batches of 64, weight decay 1e-5, 30 epochs, patience "
                   f"10, no anchor), seeds {', '.join(map(str, seeds))}, the same split and attribution measurement "
                   f"as above ({STUDY_FILE}; `python -m sciattr.zoo.train_chem --study --tasks ... --variants ... "
                   "--seeds ...` runs them). Not every variant was run on every task. Every row is of single models; "
                   "*change from shipped* pairs each seed with the single model of the shipped recipe of the same "
                   "seed (a member of the shipped ensembles). The study's rows were trained on another machine than "
                   "the shipped models: float rounding differs between CPUs from the first step, and a network of the "
                   "same recipe and seed then differs like one of another seed, so *change from shipped* carries "
                   "that spread too (the shipped recipe's own row reads *same recipe*)."), "",
                  "Per variant, over the tasks it was run on: " + _study_summary(groups) + ". The shipped recipes: "
                  + "; ".join(f"{arch}: " + ", ".join(f"{k} {v}" for k, v in asdict(r).items())
                              + "; model options " + ", ".join(f"{k} {v}" for k, v in ARCHITECTURES[arch][2].items())
                              for arch, r in RECIPES.items()) + ". The study's own model options: "
                  + "; ".join(f"{arch}: " + ", ".join(f"{k} {v}" for k, v in o.items())
                              for arch, o in STUDY_OPTIONS.items()) + ".", "",
                  ("| task | architecture | variant | seeds | ROC AUC | attribution AUROC (complete) | change from base "
                   "| change from shipped | feature-only | baseline F(x') > 0 | median F(x) − F(x') | train CPU s "
                   "| goal met |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for (task, arch, variant), g in groups.items():
            runs = g["runs"]
            change = "–" if g["change"] is None else f"{g['change']:+.3f}"
            shipped = g["shipped"] if isinstance(g["shipped"], str) else \
                "–" if g["shipped"] is None else f"{g['shipped']:+.3f}"
            lines.append(
                f"| {task} | {arch} | {variant} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{_mean_sd([r['test']['roc_auc'] for r in runs])} | "
                f"{_mean_sd([r['attribution']['attribution_auroc'] for r in runs])} | "
                f"{change} | {shipped} | "
                f"{_mean_sd([r['attribution']['attribution_auroc_atom_features'] for r in runs])} | "
                f"{np.mean([r['attribution']['baseline_above_threshold'] for r in runs]):.0%} | "
                f"{np.mean([r['attribution']['median_delta'] for r in runs]):.2f} | "
                f"{np.mean([r['cpu_seconds'] for r in runs]):.0f} | {_goal_met(runs)} |")
    return "\n".join(lines) + "\n"


def _study_groups(study: list[dict], cards: Sequence[dict] = ()) -> dict[tuple[str, str, str], dict]:
    """Study rows grouped by (task, architecture, variant), in the order of TASKS, ARCHITECTURES and
    STUDY_VARIANTS, seeds ascending, each with its ``runs``,
    ``change``: the mean over seeds of its attribution AUROC minus that of the base variant of the
    same architecture, task and seed (``None`` for base rows and where no base was run), and
    ``shipped``: the same against the single models of the shipped recipe of that architecture
    and task (its card's members, paired by seed; ``"same recipe"`` when the variant is the shipped recipe, ``None`` without a card)."""
    base = {(r["architecture"], r["task"], r["seed"]): r["attribution"]["attribution_auroc"]
            for r in study if r["variant"].startswith("base")}
    by_name = {c["name"]: c for c in cards}
    groups: dict[tuple[str, str, str], dict] = {}
    for r in sorted(study, key=_study_order):
        groups.setdefault((r["task"], r["architecture"], r["variant"]), {"runs": []})["runs"].append(r)
    for (task, arch, variant), g in groups.items():
        diffs = [r["attribution"]["attribution_auroc"] - base[(arch, task, r["seed"])] for r in g["runs"]
                 if (arch, task, r["seed"]) in base]
        g["change"] = None if variant.startswith("base") or not diffs else float(np.mean(diffs))
        card = by_name.get(f"{arch}-{task}")
        first = g["runs"][0]
        if card is None:
            g["shipped"] = None
        elif _same_options(card, arch, first["options"]) and TrainingRecipe(**card["training"]) == TrainingRecipe(
                **{**asdict(STUDY_BASE), **first["recipe"]}):
            g["shipped"] = "same recipe"
        else:
            shipped = {r["seed"]: r["attribution"]["attribution_auroc"] for r in _members(card)}
            paired = [r["attribution"]["attribution_auroc"] - shipped[r["seed"]] for r in g["runs"]
                      if r["seed"] in shipped]
            g["shipped"] = float(np.mean(paired)) if paired else None
    return groups


def _same_options(card: dict, arch: str, changes: dict) -> bool:
    """Whether a study row's model options (STUDY_OPTIONS with its changes) are the card's."""
    config = card.get("config")
    options = {**STUDY_OPTIONS.get(arch, {}), **changes}
    return all(config.get(k) == v for k, v in options.items()) if isinstance(config, dict) else not changes


def _study_order(row: dict) -> tuple:
    tasks = list(TASKS)
    return (tasks.index(row["task"]) if row["task"] in tasks else len(tasks),
            *_variant_order((row["architecture"], row["variant"])), row["seed"])


def _variant_order(key: tuple[str, str]) -> tuple:
    """(architecture, variant label) in the order of ARCHITECTURES and STUDY_VARIANTS."""
    archs, variants = list(ARCHITECTURES), [(arch, label) for arch, label, _, _ in STUDY_VARIANTS]
    return (archs.index(key[0]) if key[0] in archs else len(archs),
            variants.index(key) if key in variants else len(variants), key[1])


def _study_summary(groups: dict) -> str:
    by_variant: dict[tuple[str, str], list[dict]] = {}
    for (_, arch, variant), g in groups.items():
        by_variant.setdefault((arch, variant), []).append(g)
    parts = []
    for arch, variant in sorted(by_variant, key=_variant_order):
        gs = by_variant[(arch, variant)]
        mean = np.mean([np.mean([r["attribution"]["attribution_auroc"] for r in g["runs"]]) for g in gs])
        met = sum(_goal_met(g["runs"]) == "yes" for g in gs)
        changes = [g["change"] for g in gs if g["change"] is not None]
        change = f", change from base {np.mean(changes):+.3f}" if changes else ""
        versus = [g["shipped"] for g in gs if isinstance(g["shipped"], float)]
        change += f", change from the shipped recipe {np.mean(versus):+.3f}" if versus else ""
        parts.append(f"{arch}, {variant}: mean attribution AUROC {mean:.3f} over {len(gs)} "
                     f"task{'s' if len(gs) > 1 else ''}{change}, goal met on {met}")
    return "; ".join(parts)


def _deletion_section(rows: list[dict]) -> list[str]:
    """RESULTS.md lines: per shipped classifier and rule, deletion against attribution, zeros and skeleton."""
    by_key: dict[tuple[str, str], dict[str, dict]] = {}
    for r in rows:
        by_key.setdefault((r["name"], r["rule"]), {})[r["baseline"]] = r
    both = {k: v for k, v in by_key.items() if {"zeros", "skeleton"} <= set(v)}
    flips = sum(v["zeros"]["flips"] for v in both.values())
    missed = {b: sum(v[b]["missed"] for v in both.values()) for b in ("zeros", "skeleton")}
    lines = ["## Deleting each rule's atoms", "",
             ("`sciattr.chem.deletion_check` on the shipped ensembles: from every positive test molecule that has a "
              "rule's atoms, all of them (every match of its SMARTS) are deleted, their neighbours given hydrogens, "
              "and the molecule is scored again. *Flips*: the logit goes from above 0 to 0 or below -- the network "
              "needs those atoms for this molecule. *Credited <= 0*: of those, the molecules whose attribution of the "
              "rule's atoms (their complete atom scores summed) is zero or negative, from the zeros baseline and from "
              "the skeleton. *Same sign*: molecules whose attribution and score drop agree in sign. *Could not be made*: "
              "deletions RDKit refuses, reported rather than dropped (the molecule is kekulized first, so what is left "
              "of a ring is a chain of single and double bonds)."), "",
             (f"Over every model and rule: the deletion flips the decision {flips:,} times; the zeros baseline credits "
              f"the deleted atoms with <= 0 in {missed['zeros']:,} of them, the skeleton in {missed['skeleton']:,}."),
             "",
             ("| model | rule | positives with it | deletion flips the decision | credited <= 0: zeros | "
              "credited <= 0: skeleton | same sign as the drop: zeros | same sign: skeleton | could not be made |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, rule), v in both.items():
        z, k = v["zeros"], v["skeleton"]
        lines.append(f"| {name} | {rule} | {z['with_rule']} of {z['positives']} | {z['flips']} | {z['missed']} | "
                     f"{k['missed']} | {z['agree']} | {k['agree']} | {z['failed']} |")
    return lines


def _table_order(card: dict) -> tuple:
    arch, _, task = card["name"].partition("-")
    tasks, archs = list(TASKS), list(ARCHITECTURES)
    return (tasks.index(task) if task in tasks else len(tasks), archs.index(arch) if arch in archs else len(archs))


def write_results(out: Path) -> Path:
    cards = sorted((json.loads(p.with_suffix(".json").read_text()) for p in out.glob("*.safetensors")),
                   key=_table_order)
    study_file = out / STUDY_FILE
    study = json.loads(study_file.read_text()) if study_file.is_file() else None
    deletion_file = out / DELETION_FILE
    deletions = json.loads(deletion_file.read_text()) if deletion_file.is_file() else None
    path = out / "RESULTS.md"
    path.write_text(results_markdown(cards, study, training_evidence(), deletions))
    return path


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=all_model_names(), help="train only these models")
    parser.add_argument("--members", type=int, default=len(ENSEMBLES[0]),
                        help="seeds per ensemble (default %(default)s; the first ensemble, seeds 0.., is shipped)")
    parser.add_argument("--replicates", type=int, default=len(ENSEMBLES),
                        help="ensembles per model, on disjoint seeds, for the statistics (default %(default)s)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep trained members here and reuse them (default: $SCIATTR_TRAIN_CACHE or "
                             "~/.cache/sciattr/train_chem)")
    parser.add_argument("--no-cache", action="store_true", help="train every member, keep none")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="with --study: the seeds (default 0)")
    parser.add_argument("--study", action="store_true", help="rerun the recipe study instead of the models")
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(STUDY_TASKS),
                        help="with --study: the tasks (default: %(default)s)")
    parser.add_argument("--variants", nargs="*", type=int, default=None,
                        help="with --study: numbers of the STUDY_VARIANTS to run (default: all)")
    parser.add_argument("--deletions", action="store_true",
                        help="rerun the deletion checks of the shipped classifiers (--only: those) instead of training")
    parser.add_argument("--results-only", action="store_true", help="only rewrite RESULTS.md from the cards")
    parser.add_argument("--out", type=Path, default=ZOO_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="one log line per epoch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.progress:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")
    progress = "log" if args.progress else False
    cards: list[dict] = []
    if args.deletions:
        deletion_study(NciData(), args.out, args.only)
    elif args.study:
        recipe_study(NciData(), args.out, tasks=tuple(args.tasks), seeds=tuple(args.seeds or (0,)),
                     variants=args.variants)
    elif not args.results_only:
        names = args.only or all_model_names()
        classifiers = [n for n in names if n != REGRESSION]
        data = NciData() if classifiers else None
        if args.members < 1 or args.replicates < 1:
            raise InputError(f"expected --members and --replicates >= 1; got {args.members} and {args.replicates}")
        ensembles = tuple(tuple(range(r * args.members, (r + 1) * args.members)) for r in range(args.replicates))
        cache = None if args.no_cache else args.cache or member_cache_dir()
        for name in classifiers:
            cards.append(train_classifier(name, data, args.out, ensembles=ensembles, cache=cache, progress=progress))
        if REGRESSION in names:
            cards.append(train_regression(args.out, progress=progress))
            print(json.dumps({"name": REGRESSION, **cards[-1]["test"], "cpu_seconds": cards[-1]["cpu_seconds"]}),
                  flush=True)
    print(f"wrote {write_results(args.out)}")
    return cards


if __name__ == "__main__":
    main()
