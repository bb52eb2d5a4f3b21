"""Train the shipped chemistry models (seeded; each well under 3 minutes of one CPU core).

Run ``python -m sciattr.zoo.train_chem`` (all models) or ``... --only w2n2-benzene gcn-benzene``.
It writes, under ``sciattr/zoo/chem/``, for every model ``<name>.safetensors`` (float32
weights) and ``<name>.json`` (its card), then ``RESULTS.md`` (a table over all cards).

Models
------
* ``w1n2-<task>``, ``w2n2-<task>``: Weave models (one / two weave modules) on the "simple"
  featurization (element one-hot per atom; bond type and graph distance per pair within
  distance 2) -- the setting of "Gradients of Counterfactuals". W1N2 and W2N2 are trained on
  the same split with the same settings, for the dead-feature comparison.
* ``gcn-<task>``: :class:`~sciattr.chem.gnn.GINENetwork` on ``PyGFeaturizer(atoms="simple")``
  (element one-hot per atom; bond type, conjugation and ring membership per bond edge).
* tasks: the SMARTS tasks of :mod:`sciattr.datasets.tasks` (``benzene``, ``halide_carbonyl``,
  ``amine_ether_benzene``) over the 4,991 NCI molecules RDKit parses (largest fragment), one
  single-logit classifier per task, trained with a positive-class weight ``n_neg / n_pos``.
* ``w2n2-chembl2321810``: W2N2 regression of pIC50 on the 1,017 CHEMBL2321810 compounds.

Protocol: a seeded 80/10/10 split (``sciattr.datasets.split_indices(n, (0.8, 0.1, 0.1), seed=0)``
over the molecules in file order), Adam, the epoch with the best validation ROC AUC (RMSE for
the regression) kept, metrics on the test split. Attribution AUROC: integrated gradients
(zeros baseline, 50 Gauss–Legendre nodes) of the logit for every positive test molecule; atom
scores are the atom attributions plus half of each incident pair/edge attribution
(:func:`sciattr.chem.substructures.atom_scores`), scored against the task's true atoms with
:func:`sciattr.datasets.score_attributions`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sciattr.chem.adapter import explain_graphs
from sciattr.chem.featurize import collate, featurize_batch
from sciattr.chem.substructures import atom_scores
from sciattr.datasets import (
    TASKS,
    auroc,
    load_chembl2321810,
    load_nci,
    score_attributions,
    spearman,
    split_indices,
)
from sciattr.zoo import ZOO_DIR, build_model, make_featurizer

SEED = 0
FRACTIONS = (0.8, 0.1, 0.1)
IG_STEPS = 50
WEAVE_FEATURIZER = {"class": "SimpleWeaveFeaturizer", "max_distance": 2}
GCN_FEATURIZER = {"class": "PyGFeaturizer", "atoms": "simple"}
WEAVE_OPTIONS = {"n_hidden": 50, "n_atom_hidden": 128, "n_dense": 128, "reduction": "sum"}
GCN_OPTIONS = {"hidden": 64, "layers": 3}


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    learning_rate: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 1e-5


ARCHITECTURES = {"w1n2": ("W1N2", WEAVE_FEATURIZER), "w2n2": ("W2N2", WEAVE_FEATURIZER),
                 "gcn": ("GINENetwork", GCN_FEATURIZER)}
SETTINGS = {"w1n2": TrainSettings(epochs=30), "w2n2": TrainSettings(epochs=30), "gcn": TrainSettings(epochs=30)}
REGRESSION = "w2n2-chembl2321810"
REGRESSION_SETTINGS = TrainSettings(epochs=150, batch_size=32)


def all_model_names() -> list[str]:
    return [f"{arch}-{task}" for arch in ARCHITECTURES for task in TASKS] + [REGRESSION]


# ---------------------------------------------------------------------------------------- data
def featurized(featurizer_spec: dict, mols) -> list:
    graphs, _, errors = featurize_batch(make_featurizer(featurizer_spec), mols)
    if errors:
        raise RuntimeError(f"featurization failed for {len(errors)} molecules, e.g. {errors[0]}")
    return graphs


def model_config(architecture: str, graphs, outputs: int) -> dict:
    n_atom, n_link = int(graphs[0].atoms.shape[1]), int(graphs[0].links.shape[1])
    if architecture == "GINENetwork":
        return {"atom_features": n_atom, "bond_features": n_link, "outputs": outputs, **GCN_OPTIONS}
    return {"n_atom_features": n_atom, "n_pair_features": n_link, "n_tasks": outputs, **WEAVE_OPTIONS}


def forward(model: nn.Module, graphs) -> torch.Tensor:
    """Scores ``(n_graphs, outputs)`` of a list of graphs in one batch."""
    batch = collate(graphs)
    if graphs[0].kind == "edges":
        return model(batch.atoms, batch.link_index, batch.links, batch.atom_batch, batch.n_graphs)
    return model(batch.atoms, batch.links, batch.link_index, batch.atom_batch, batch.n_graphs)


def predict(model: nn.Module, graphs, chunk: int = 512) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([forward(model, graphs[s:s + chunk]) for s in range(0, len(graphs), chunk)]).numpy()


# ---------------------------------------------------------------------------------------- metrics
def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy at logit 0, balanced accuracy and ROC AUC."""
    predicted = logits.reshape(-1) > 0
    truth = labels.reshape(-1) > 0.5
    recall_pos = float((predicted & truth).sum() / max(truth.sum(), 1))
    recall_neg = float((~predicted & ~truth).sum() / max((~truth).sum(), 1))
    return {"accuracy": float((predicted == truth).mean()), "balanced_accuracy": 0.5 * (recall_pos + recall_neg),
            "roc_auc": auroc(logits.reshape(-1), truth), "n": int(truth.size), "n_positive": int(truth.sum())}


def regression_metrics(predicted: np.ndarray, target: np.ndarray) -> dict:
    p, y = predicted.reshape(-1), target.reshape(-1)
    residual = ((p - y) ** 2).sum()
    return {"rmse": float(np.sqrt(residual / y.size)), "r2": float(1 - residual / ((y - y.mean()) ** 2).sum()),
            "spearman": spearman(p, y), "n": int(y.size)}


# ---------------------------------------------------------------------------------------- training
def train(model: nn.Module, graphs, targets: torch.Tensor, parts, settings: TrainSettings, loss_fn,
          score_fn, seed: int) -> dict:
    """Mini-batch Adam; keeps the weights of the epoch with the best validation score."""
    train_idx, valid_idx = parts[0], parts[1]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    best = (-np.inf, None, -1)
    valid_graphs = [graphs[i] for i in valid_idx]
    for epoch in range(settings.epochs):
        model.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=generator)]
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size].tolist()
            loss = loss_fn(forward(model, [graphs[i] for i in batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        score = score_fn(predict(model, valid_graphs), targets[valid_idx].numpy())
        if score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
    model.load_state_dict(best[1])
    model.eval()
    return {"best_epoch": best[2], "validation_score": float(best[0])}


def attribution_quality(model: nn.Module, graphs, masks, indices, featurizer) -> dict:
    """IG of the logit over the positive molecules at ``indices``; attribution AUROC and completeness."""
    chosen = [i for i in indices if masks[i]]
    result = explain_graphs(model, [graphs[i] for i in chosen], target=0, steps=IG_STEPS, featurizer=featurizer)
    scores = [atom_scores(result, k) for k in range(len(chosen))]
    own = [result.atom_values(k).detach().double().numpy() for k in range(len(chosen))]
    total = score_attributions(scores, [masks[i] for i in chosen])
    atoms_only = score_attributions(own, [masks[i] for i in chosen])
    return {"attribution_auroc": total.mean, "attribution_auroc_atom_features": atoms_only.mean,
            "n_scored": total.n_scored, "n_undefined": total.n_undefined,
            "max_relative_gap": float(result.relative_gap.max()), "median_relative_gap":
                float(result.relative_gap.median()), "steps": IG_STEPS, "baseline": "zeros",
            "rule": "gausslegendre"}


# ---------------------------------------------------------------------------------------- saving
def save(model: nn.Module, card: dict, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{card['name']}.safetensors"
    save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()}, str(weights))
    weights.chmod(0o644)
    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (out / f"{card['name']}.json").write_text(json.dumps(card, indent=2) + "\n")


def base_card(name: str, architecture: str, config: dict, featurizer: dict, settings: TrainSettings,
              data: dict) -> dict:
    return {"name": name, "architecture": architecture, "config": config, "featurizer": featurizer,
            "data": data, "training": asdict(settings), "seed": SEED, "torch": torch.__version__,
            "script": "python -m sciattr.zoo.train_chem"}


# ---------------------------------------------------------------------------------------- the models
class NciData:
    """NCI molecules featurized both ways, with labels and true masks of every task."""

    def __init__(self):
        nci = load_nci()
        self.graphs = {"SimpleWeaveFeaturizer": featurized(WEAVE_FEATURIZER, nci.mols),
                       "PyGFeaturizer": featurized(GCN_FEATURIZER, nci.mols)}
        processed = [g.mol for g in self.graphs["SimpleWeaveFeaturizer"]]  # largest fragment, atom rows
        self.masks = {name: [task.true_masks(m) for m in processed] for name, task in TASKS.items()}
        self.parts = split_indices(len(processed), FRACTIONS, SEED)
        self.source = nci.source


def train_classifier(name: str, data: NciData, out: Path) -> dict:
    arch, task_name = name.split("-", 1)
    architecture, featurizer_spec = ARCHITECTURES[arch]
    graphs = data.graphs[featurizer_spec["class"]]
    masks = data.masks[task_name]
    labels = torch.tensor([[float(bool(m))] for m in masks])
    train_labels = labels[data.parts[0]]
    pos_weight = float((1 - train_labels).sum() / train_labels.sum())
    torch.manual_seed(SEED)
    config = model_config(architecture, graphs, 1)
    model = build_model(architecture, config)
    criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight]))
    settings = SETTINGS[arch]
    started = time.process_time()
    history = train(model, graphs, labels, data.parts, settings, criterion,
                    lambda p, y: auroc(p.reshape(-1), y.reshape(-1) > 0.5), SEED)
    seconds = time.process_time() - started
    test = data.parts[2]
    metrics = classification_metrics(predict(model, [graphs[i] for i in test]), labels[test].numpy())
    attribution = attribution_quality(model, graphs, masks, test.tolist(), make_featurizer(featurizer_spec))
    task = TASKS[task_name]
    card = base_card(name, architecture, config, featurizer_spec, settings, {
        "source": "rdkit/Data/NCI/first_5K.smi (sciattr.datasets.load_nci), largest fragment",
        "n_molecules": len(graphs), "split": {"fractions": list(FRACTIONS), "seed": SEED,
                                              "sizes": [len(p) for p in data.parts]}})
    card.update({"task": {"name": task.name, "description": task.description, "rules": [list(r) for r in task.rules],
                          "kind": "binary classification (one logit)", "pos_weight": pos_weight},
                 "history": history, "cpu_seconds": round(seconds, 1), "test": metrics,
                 "attribution": attribution})
    save(model, card, out)
    return card


def train_regression(out: Path) -> dict:
    series = load_chembl2321810()
    graphs = featurized(WEAVE_FEATURIZER, series.mols)
    targets = torch.tensor(series.values, dtype=torch.float32).reshape(-1, 1)
    parts = split_indices(len(graphs), FRACTIONS, SEED)
    torch.manual_seed(SEED)
    config = model_config("W2N2", graphs, 1)
    model = build_model("W2N2", config)
    with torch.no_grad():
        model.output.bias.fill_(float(targets[parts[0]].mean()))
    started = time.process_time()
    history = train(model, graphs, targets, parts, REGRESSION_SETTINGS, nn.MSELoss(),
                    lambda p, y: -float(np.sqrt(((p - y) ** 2).mean())), SEED)
    seconds = time.process_time() - started
    test = parts[2]
    metrics = regression_metrics(predict(model, [graphs[i] for i in test]), targets[test].numpy())
    result = explain_graphs(model, [graphs[i] for i in test], target=0, steps=IG_STEPS,
                            featurizer=make_featurizer(WEAVE_FEATURIZER))
    card = base_card(REGRESSION, "W2N2", config, WEAVE_FEATURIZER, REGRESSION_SETTINGS, {
        "source": "rdkit/Contrib/FreeWilson/data/CHEMBL2321810.smi + CHEMBL2321810_act.csv "
                  "(sciattr.datasets.load_chembl2321810)",
        "n_molecules": len(graphs), "split": {"fractions": list(FRACTIONS), "seed": SEED,
                                              "sizes": [len(p) for p in parts]}})
    card.update({"task": {"name": "chembl2321810", "description": "pIC50 regression (CHEMBL2321810 series)",
                          "kind": "regression (pIC50)"},
                 "history": history, "cpu_seconds": round(seconds, 1), "test": metrics,
                 "attribution": {"max_relative_gap": float(result.relative_gap.max()),
                                 "median_relative_gap": float(result.relative_gap.median()), "steps": IG_STEPS,
                                 "baseline": "zeros", "rule": "gausslegendre"}})
    save(model, card, out)
    return card


# ---------------------------------------------------------------------------------------- results table
def results_markdown(cards: list[dict]) -> str:
    """A markdown table of the classifiers' test metrics and attribution AUROC, and the regression."""
    lines = [("| model | task | test accuracy | balanced accuracy | ROC AUC | attribution AUROC (atoms + ½ links) "
             "| attribution AUROC (atom features) | positives scored | max relative gap (IG, 50 steps) "
             "| train CPU s |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cards:
        if "roc_auc" not in c["test"]:
            continue
        t, a = c["test"], c["attribution"]
        lines.append(f"| {c['name']} | {c['task']['description']} | {t['accuracy']:.3f} | "
                     f"{t['balanced_accuracy']:.3f} | {t['roc_auc']:.3f} | {a['attribution_auroc']:.3f} | "
                     f"{a['attribution_auroc_atom_features']:.3f} | {a['n_scored']} | {a['max_relative_gap']:.1e} | "
                     f"{c['cpu_seconds']:.0f} |")
    regressions = [c for c in cards if "rmse" in c["test"]]
    if regressions:
        lines += ["", "| model | task | test RMSE | test R² | test Spearman | max relative gap | train CPU s |",
                  "|---|---|---|---|---|---|---|"]
        for c in regressions:
            t = c["test"]
            lines.append(f"| {c['name']} | {c['task']['description']} | {t['rmse']:.3f} | {t['r2']:.3f} | "
                         f"{t['spearman']:.3f} | {c['attribution']['max_relative_gap']:.1e} | "
                         f"{c['cpu_seconds']:.0f} |")
    header = ["# Shipped chemistry models", "",
              ("Made by `python -m sciattr.zoo.train_chem` (seed 0, one CPU thread). Test split: 10 % of the "
              "molecules (seeded 80/10/10 split). Accuracy at logit 0; the classifiers are trained with a "
              "positive-class weight, so balanced accuracy and ROC AUC are the fairer measures on the rare "
              "tasks. Attribution AUROC: integrated gradients (zeros baseline, 50 Gauss–Legendre nodes) on the "
              "positive test molecules, per-molecule AUROC of the atom scores against the atoms matching the "
              "task's SMARTS (best over alternative matches), averaged; 0.5 is chance."), ""]
    return "\n".join(header + lines) + "\n"


def _table_order(card: dict) -> tuple:
    arch, _, task = card["name"].partition("-")
    tasks, archs = list(TASKS), list(ARCHITECTURES)
    return (tasks.index(task) if task in tasks else len(tasks), archs.index(arch) if arch in archs else len(archs))


def write_results(out: Path) -> Path:
    cards = sorted((json.loads(p.read_text()) for p in out.glob("*.json")), key=_table_order)
    path = out / "RESULTS.md"
    path.write_text(results_markdown(cards))
    return path


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=all_model_names(), help="train only these models")
    parser.add_argument("--out", type=Path, default=ZOO_DIR)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or all_model_names()
    cards = []
    classifiers = [n for n in names if n != REGRESSION]
    data = NciData() if classifiers else None
    for name in classifiers:
        cards.append(train_classifier(name, data, args.out))
        print(json.dumps({"name": name, **cards[-1]["test"], **cards[-1]["attribution"],
                          "cpu_seconds": cards[-1]["cpu_seconds"]}), flush=True)
    if REGRESSION in names:
        cards.append(train_regression(args.out))
        print(json.dumps({"name": REGRESSION, **cards[-1]["test"], "cpu_seconds": cards[-1]["cpu_seconds"]}),
              flush=True)
    print(f"wrote {write_results(args.out)}")
    return cards


if __name__ == "__main__":
    main()
