"""Train a molecular graph network on any (molecule, label) dataset.

:func:`train_model` featurizes the molecules (bad rows are reported, never dropped silently),
splits them with a seeded train/validation/test split, trains with mini-batch Adam and early
stopping on the validation score, and returns the model with its metrics. The shipped models
of :mod:`sciattr.zoo` are made with it (``python -m sciattr.zoo.train_chem``).

Example
-------
>>> from sciattr.chem.training import TrainingRecipe, train_model
>>> trained = train_model(smiles, labels, architecture="GINENetwork",
...                       recipe=TrainingRecipe(epochs=20), seed=0)       # doctest: +SKIP
>>> trained.metrics["test"]["roc_auc"]                                    # doctest: +SKIP

:func:`attribution_quality` scores a trained classifier's integrated-gradients atom scores
against a ground-truth task (:mod:`sciattr.datasets.tasks`).

Baselines and training. Integrated gradients explain ``F(x) - F(x')``; a classifier trained
only on real molecules may score the all-zeros baseline anywhere, often on the "active" side of
the decision threshold, and its attributions then explain the difference between two "active"
predictions. ``TrainingRecipe(anchor_baseline="negative")`` adds every batch's molecules with
zeroed features as confident negatives; ``"neutral"`` (the recipe of the shipped classifiers)
pulls their logit to 0. On the ground-truth tasks both raised the attribution AUROC of the
complete atom scores well above the unanchored recipe at the same ROC AUC (see the recipe study
in ``sciattr/zoo/chem/RESULTS.md``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from sciattr.errors import InputError, describe
from sciattr.settings import Settings

__all__ = [
    "QUALITY_SETTINGS",
    "TrainedModel",
    "TrainingRecipe",
    "attribution_quality",
    "classification_metrics",
    "forward_graphs",
    "predict_graphs",
    "regression_metrics",
    "train_model",
]

LOG = logging.getLogger("sciattr.training")
ARCHITECTURES = ("W1N2", "W2N2", "GINENetwork")
ANCHORS = (None, "negative", "neutral")


@dataclass(frozen=True)
class TrainingRecipe:
    """How to train.

    Attributes
    ----------
    epochs:
        Most passes over the training split.
    learning_rate, weight_decay:
        Adam's step size and L2 penalty.
    batch_size:
        Molecules per step.
    patience:
        Stop when the validation score has not improved for this many epochs (``None``: never);
        the weights of the best validation epoch are kept either way.
    anchor_baseline:
        Classification only. ``None``: no anchor. ``"negative"``: add, to every batch, the batch's
        molecules with all-zero features (the zeros baseline of integrated gradients) labelled
        negative, so that the baseline is a confident "inactive". ``"neutral"``: add the same
        zero-feature molecules with a squared-logit penalty pulling their logit to 0, the decision
        threshold, so that the baseline is "undecided" and the attributions of positives and
        negatives both explain the decision.
    anchor_weight:
        Weight of the anchor term against the data loss.
    attribution_prior:
        Weight of a sparsity prior on the attributions (0: none): the L1 norm of gradient x input
        over every atom and link feature, per molecule, averaged over the batch -- the first-order
        attribution from the zeros baseline (Erion et al., "Improving performance of deep learning
        models with axiomatic attribution priors", 2021). It needs a second backward pass, about
        twice the cost of a step.
    path_monotonicity:
        Classification only; weight of a penalty (0: none) on scores that go the wrong way along
        the straight path from the zeros baseline, the path integrated gradients follow: for
        every molecule two points ``a1 < a2`` drawn uniformly on [0, 1] (another seeded stream
        than the batch order), and ``relu(s * (F(a1 x) - F(a2 x)))`` averaged over the batch,
        with ``s = +1`` for a positive label and ``-1`` for a negative, so that a positive's score
        rises from the baseline to the molecule and a negative's falls. Two more forwards of the
        batch per step.
    deletion_consistency:
        Classification only; weight of a penalty (0: none) on attributions that disagree with the
        model's own deletions: for every training molecule the groups of
        :data:`sciattr.chem.deletion.CHECKED_GROUPS` it has are deleted (once, before training);
        each step, the group's first-order attribution from the zeros baseline (gradient x input
        of its atoms plus half of their pairs/bonds) is pushed to carry the sign of the score's
        drop when the group is deleted and at least a tenth of its size,
        ``relu(0.1 |drop| - s * attribution)`` with ``s`` the drop's sign (the drop is not
        differentiated), averaged over the batch's groups. No labels are needed. A second
        backward pass and one more forward of the deleted molecules per step.
    """

    epochs: int = 30
    learning_rate: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 1e-5
    patience: int | None = 10
    anchor_baseline: str | None = None
    anchor_weight: float = 1.0
    attribution_prior: float = 0.0
    path_monotonicity: float = 0.0
    deletion_consistency: float = 0.0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected {name} to be a positive integer; got {describe(value)}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise InputError(f"expected patience to be a positive integer or None; got {describe(self.patience)}")
        if self.anchor_baseline not in ANCHORS:
            raise InputError(f"expected anchor_baseline among {list(ANCHORS)}; got {describe(self.anchor_baseline)}")
        for name in ("learning_rate", "weight_decay", "anchor_weight", "attribution_prior", "path_monotonicity",
                     "deletion_consistency"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or value < 0 or (name == "learning_rate" and value == 0):
                raise InputError(f"expected {name} to be a finite {'positive' if name == 'learning_rate' else 'non-negative'}"
                                 f" number; got {describe(value)}")


@dataclass
class TrainedModel:
    """A trained model and how it was made.

    Attributes
    ----------
    model:
        The network in eval mode, with the weights of its best validation epoch.
    featurizer:
        The featurizer its inputs need.
    architecture, config:
        What :func:`sciattr.zoo.build_model` needs to rebuild it.
    kind:
        ``"classification"`` (one logit per label column, BCE loss) or ``"regression"`` (MSE).
    metrics:
        ``{"train": {...}, "validation": {...}, "test": {...}}``; classification: accuracy at
        logit 0, balanced accuracy, ROC AUC; regression: RMSE, R², Spearman.
    history:
        Per epoch ``{"epoch", "loss", "validation_score"}``.
    best_epoch:
        The epoch (0-based) whose weights were kept.
    split:
        ``(train, validation, test)`` index arrays into the *featurized* molecules.
    rows:
        ``rows[k]`` is the input position of featurized molecule ``k``.
    errors:
        Input rows that could not be featurized (``{"row", "input", "message"}``).
    graphs:
        The featurized molecules.
    labels:
        ``(n_graphs, n_outputs)`` float32 targets of the featurized molecules.
    """

    model: nn.Module
    featurizer: object
    architecture: str
    config: dict
    kind: str
    recipe: TrainingRecipe
    seed: int
    metrics: dict
    history: list[dict]
    best_epoch: int
    split: tuple[np.ndarray, np.ndarray, np.ndarray]
    rows: list[int]
    errors: list[dict]
    cpu_seconds: float
    graphs: list = field(repr=False, default_factory=list)
    labels: torch.Tensor | None = field(repr=False, default=None)
    pos_weight: list[float] | None = None

    def summary(self) -> dict:
        """JSON-ready description (no weights, no graphs)."""
        return {"architecture": self.architecture, "config": self.config, "kind": self.kind,
                "recipe": asdict(self.recipe), "seed": self.seed, "metrics": self.metrics,
                "best_epoch": self.best_epoch, "epochs_run": len(self.history),
                "split_sizes": [len(p) for p in self.split], "skipped_rows": self.errors,
                "cpu_seconds": round(self.cpu_seconds, 1), "pos_weight": self.pos_weight}


# ---------------------------------------------------------------------------------------- forward
def forward_graphs(model: nn.Module, graphs: Sequence) -> torch.Tensor:
    """Scores ``(n_graphs, outputs)`` of featurized molecules in one batch (Weave or PyG convention)."""
    from sciattr.chem.featurize import collate

    batch = collate(graphs)
    return _call(model, graphs[0].kind, batch, batch.atoms, batch.links)


def _call(model: nn.Module, kind: str, batch, atoms: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
    """The model on a collated batch with the given atom and link rows, in its calling convention."""
    if kind == "edges":
        return model(atoms, batch.link_index, links, batch.atom_batch, batch.n_graphs)
    return model(atoms, links, batch.link_index, batch.atom_batch, batch.n_graphs)


def predict_graphs(model: nn.Module, graphs: Sequence, chunk: int = 512) -> np.ndarray:
    """``(n_graphs, outputs)`` scores without gradients, in chunks."""
    with torch.no_grad():
        return torch.cat([forward_graphs(model, graphs[s:s + chunk])
                          for s in range(0, len(graphs), chunk)]).numpy()


def _forward_with_prior(model: nn.Module, graphs: Sequence, weight: float
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores of ``graphs`` and, when ``weight > 0``, the sum over them of ``|x * dF/dx|`` (every
    atom and link feature; gradients of the summed outputs, kept in the graph for training)."""
    if weight <= 0:
        return forward_graphs(model, graphs), None
    from sciattr.chem.featurize import collate

    batch = collate(graphs)
    atoms, links = batch.atoms.clone().requires_grad_(True), batch.links.clone().requires_grad_(True)
    scores = _call(model, graphs[0].kind, batch, atoms, links)
    g_atoms, g_links = torch.autograd.grad(scores.sum(), (atoms, links), create_graph=True)
    return scores, (g_atoms * atoms).abs().sum() + (g_links * links).abs().sum()


def _zeroed(graphs: Sequence) -> list:
    """The same graphs with all-zero atom and link features (the zeros baseline)."""
    from dataclasses import replace

    return [replace(g, atoms=torch.zeros_like(g.atoms), links=torch.zeros_like(g.links)) for g in graphs]


def _scaled(graphs: Sequence, alphas: torch.Tensor) -> list:
    """Graph ``i`` with its atom and link features times ``alphas[i]`` (a point of the straight
    path from the zeros baseline)."""
    from dataclasses import replace

    return [replace(g, atoms=g.atoms * float(a), links=g.links * float(a)) for g, a in zip(graphs, alphas)]


def path_monotonicity_penalty(model: nn.Module, graphs: Sequence, labels: torch.Tensor,
                              generator: torch.Generator) -> torch.Tensor:
    """Mean over molecules and outputs of ``relu(s * (F(a1 x) - F(a2 x)))``, ``a1 < a2`` drawn
    uniformly per molecule, ``s = +1`` for label 1 and ``-1`` for label 0 (see
    :attr:`TrainingRecipe.path_monotonicity`)."""
    pairs = torch.rand(len(graphs), 2, generator=generator, dtype=torch.float64).sort(dim=1).values
    scores = forward_graphs(model, _scaled(graphs, pairs[:, 0]) + _scaled(graphs, pairs[:, 1]))
    early, late = scores[:len(graphs)], scores[len(graphs):]
    sign = labels.to(scores.dtype) * 2 - 1
    return torch.relu(sign * (early - late)).mean()


def deletion_groups(graphs: Sequence, featurizer) -> list[list[tuple[torch.Tensor, object]]]:
    """Per graph, ``(atom rows, graph without them)`` of every group of
    :data:`sciattr.chem.deletion.CHECKED_GROUPS` it has (groups RDKit cannot delete are left out)."""
    from dataclasses import replace

    from sciattr.chem.deletion import CHECKED_GROUPS, deleted_graph, matched_atoms
    from sciattr.chem.featurize import Chem

    patterns = [Chem.MolFromSmarts(smarts) for smarts in CHECKED_GROUPS.values()]
    keep_all = replace(featurizer, fragments="all")
    out = []
    for g in graphs:
        found = []
        for matched in filter(None, (matched_atoms(g.mol, pattern) for pattern in patterns)):
            graph = deleted_graph(g.mol, matched, keep_all)[1]
            if graph is not None:
                found.append((torch.tensor(matched, dtype=torch.long), graph))
        out.append(found)
    return out


def deletion_consistency_penalty(model: nn.Module, graphs: Sequence, groups: Sequence) -> torch.Tensor:
    """Mean over the groups of ``relu(0.1 |drop| - s * attribution)`` (see
    :attr:`TrainingRecipe.deletion_consistency`); ``groups[k]`` are :func:`deletion_groups` of
    ``graphs[k]``. Output 0."""
    from sciattr.chem.featurize import collate

    flat = [(k, rows, deleted) for k, found in enumerate(groups) for rows, deleted in found]
    if not flat:
        return torch.zeros(())
    batch = collate(graphs)
    atoms, links = batch.atoms.clone().requires_grad_(True), batch.links.clone().requires_grad_(True)
    scores = _call(model, graphs[0].kind, batch, atoms, links)[:, 0]
    g_atoms, g_links = torch.autograd.grad(scores.sum(), (atoms, links), create_graph=True)
    per_link = 0.5 * (g_links * links).sum(1)
    complete = (g_atoms * atoms).sum(1).index_add(0, batch.link_index[0], per_link) \
        .index_add(0, batch.link_index[1], per_link)
    starts = torch.cumsum(torch.tensor([0] + [g.n_atoms for g in graphs[:-1]]), 0)
    attribution = torch.stack([complete[starts[k] + rows].sum() for k, rows, _ in flat])
    with torch.no_grad():
        deleted = forward_graphs(model, [d for _, _, d in flat])[:, 0]
        drop = scores.detach()[[k for k, _, _ in flat]] - deleted
    return torch.relu(0.1 * drop.abs() - torch.sign(drop) * attribution).mean()


# ---------------------------------------------------------------------------------------- metrics
def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy at logit 0, balanced accuracy and ROC AUC of one logit column."""
    from sciattr.datasets.ranks import auroc

    predicted = np.asarray(logits).reshape(-1) > 0
    truth = np.asarray(labels).reshape(-1) > 0.5
    recall_pos = float((predicted & truth).sum() / max(truth.sum(), 1))
    recall_neg = float((~predicted & ~truth).sum() / max((~truth).sum(), 1))
    return {"accuracy": float((predicted == truth).mean()), "balanced_accuracy": 0.5 * (recall_pos + recall_neg),
            "roc_auc": auroc(np.asarray(logits).reshape(-1), truth), "n": int(truth.size),
            "n_positive": int(truth.sum())}


def regression_metrics(predicted: np.ndarray, target: np.ndarray) -> dict:
    """RMSE, R² and Spearman correlation."""
    from sciattr.datasets.ranks import spearman

    p, y = np.asarray(predicted).reshape(-1), np.asarray(target).reshape(-1)
    residual = ((p - y) ** 2).sum()
    return {"rmse": float(np.sqrt(residual / y.size)), "r2": float(1 - residual / ((y - y.mean()) ** 2).sum()),
            "spearman": spearman(p, y), "n": int(y.size)}


def _metrics(kind: str, scores: np.ndarray, targets: np.ndarray) -> dict:
    if kind == "regression":
        if scores.shape[1] == 1:
            return regression_metrics(scores, targets)
        return {f"output_{k}": regression_metrics(scores[:, k], targets[:, k]) for k in range(scores.shape[1])}
    if scores.shape[1] == 1:
        return classification_metrics(scores, targets)
    return {f"output_{k}": classification_metrics(scores[:, k], targets[:, k]) for k in range(scores.shape[1])}


def _validation_score(kind: str, scores: np.ndarray, targets: np.ndarray) -> float:
    """Higher is better: mean ROC AUC (classification) or minus the RMSE (regression)."""
    from sciattr.datasets.ranks import auroc

    if kind == "regression":
        return -float(np.sqrt(((scores - targets) ** 2).mean()))
    values = [auroc(scores[:, k], targets[:, k] > 0.5) for k in range(scores.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else -float(np.mean((scores > 0) != (targets > 0.5)))


# ---------------------------------------------------------------------------------------- inputs
def _featurize(molecules: Sequence, featurizer) -> tuple[list, list[int], list[dict]]:
    from sciattr.chem.featurize import MoleculeGraph, featurize_batch

    if isinstance(molecules, (str, bytes)) or not isinstance(molecules, Sequence):
        raise InputError(f"expected a list of SMILES strings, RDKit molecules or featurized graphs; "
                         f"got {describe(molecules)}")
    if molecules and all(isinstance(m, MoleculeGraph) for m in molecules):
        kinds = {g.kind for g in molecules}
        if len(kinds) != 1:
            raise InputError(f"expected featurized graphs of one kind; got {sorted(kinds)}")
        return list(molecules), list(range(len(molecules))), []
    return featurize_batch(featurizer, molecules)


def _labels(labels, n: int) -> torch.Tensor:
    array = np.asarray(labels, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n:
        raise InputError(f"expected one label (or one row of labels) per molecule, {n} in all; "
                         f"got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        bad = sorted(set(np.flatnonzero(~np.isfinite(array).all(1)).tolist()))
        raise InputError(f"expected finite labels; got NaN or infinity at rows {bad[:10]}")
    return torch.tensor(array, dtype=torch.float32)


def _kind(kind: str | None, labels: torch.Tensor) -> str:
    binary = bool(((labels == 0) | (labels == 1)).all())
    if kind is None:
        return "classification" if binary else "regression"
    if kind not in ("classification", "regression"):
        raise InputError(f"expected kind 'classification', 'regression' or None; got {kind!r}")
    if kind == "classification" and not binary:
        raise InputError("expected 0/1 labels for classification; got other values")
    return kind


def _default_featurizer(architecture: str):
    from sciattr.chem.featurize import PyGFeaturizer, SimpleWeaveFeaturizer

    return PyGFeaturizer(atoms="simple") if architecture == "GINENetwork" else SimpleWeaveFeaturizer(max_distance=2)


def _model_config(architecture: str, graphs: Sequence, outputs: int, options: dict) -> dict:
    n_atom, n_link = int(graphs[0].atoms.shape[1]), int(graphs[0].links.shape[1])
    if architecture == "GINENetwork":
        if graphs[0].kind != "edges":
            raise InputError("expected bond-edge graphs (PyGFeaturizer) for GINENetwork; got pair graphs")
        return {"atom_features": n_atom, "bond_features": n_link, "outputs": outputs, **options}
    if graphs[0].kind == "edges":
        raise InputError(f"expected pair graphs (a Weave featurizer) for {architecture}; got bond-edge graphs")
    return {"n_atom_features": n_atom, "n_pair_features": n_link, "n_tasks": outputs, **options}


class _Progress:
    """Epoch progress: a tqdm bar when asked for and installed, else log lines."""

    def __init__(self, progress, total: int, name: str):
        self.bar, self.log = None, None
        if progress is True:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=name, unit="epoch", leave=False)
            except ImportError:
                self.log = LOG.info
        elif progress == "log":
            self.log = LOG.info
        elif callable(progress):
            self.log = progress
        elif progress not in (False, None):
            raise InputError(f"expected progress True, False, 'log' or a callable; got {describe(progress)}")
        self.name = name

    def update(self, epoch: int, loss: float, score: float, best: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", validation=f"{score:.4f}", best=f"{best:.4f}")
            self.bar.update(1)
        elif self.log is not None:
            self.log(f"{self.name}: epoch {epoch + 1} loss {loss:.4f} validation {score:.4f} (best {best:.4f})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------- training
def train_model(molecules: Sequence, labels, *, architecture: str = "W2N2", featurizer=None,
                model_options: dict | None = None, recipe: TrainingRecipe | None = None, seed: int = 0,
                split: Sequence[np.ndarray] | None = None, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                split_seed: int = 0, kind: str | None = None, pos_weight: str | float | None = "balanced",
                progress=False, name: str = "train") -> TrainedModel:
    """Train a Weave (``"W1N2"``, ``"W2N2"``) or GINE (``"GINENetwork"``) network.

    Parameters
    ----------
    molecules:
        ``n`` SMILES strings or RDKit molecules (featurized here; rows that fail are reported in
        ``TrainedModel.errors`` and left out), or already featurized :class:`MoleculeGraph` s.
    labels:
        ``(n,)`` or ``(n, outputs)``: 0/1 labels (classification, one logit per column) or
        real values (regression).
    architecture:
        ``"W1N2"``, ``"W2N2"`` or ``"GINENetwork"``.
    featurizer:
        Default: ``SimpleWeaveFeaturizer(max_distance=2)`` for Weave, ``PyGFeaturizer(atoms="simple")``
        for GINE.
    model_options:
        Keywords of the architecture (``n_hidden``, ``reduction`` ...; ``hidden``, ``layers``).
    recipe:
        :class:`TrainingRecipe` (epochs, learning rate, early stopping ...).
    seed:
        Seeds the initial weights and the batch order.
    split:
        ``(train, validation, test)`` index arrays into the featurized molecules; default a
        seeded random split with ``fractions`` and ``split_seed``.
    kind:
        ``"classification"``, ``"regression"`` or ``None`` (classification when all labels are 0/1).
    pos_weight:
        Classification: ``"balanced"`` weighs positives by ``n_negative / n_positive`` of the
        training split (per column), a number weighs them by it, ``None`` not at all.
    progress:
        ``True`` a tqdm bar (log lines without tqdm), ``"log"`` one ``logging`` line per epoch
        (logger ``sciattr.training``), a callable receives those lines, ``False`` silent.

    Returns
    -------
    TrainedModel
    """
    from sciattr.chem.architectures import build_model
    from sciattr.datasets.molecules import split_indices

    if architecture not in ARCHITECTURES:
        raise InputError(f"expected architecture among {list(ARCHITECTURES)}; got {architecture!r}")
    recipe = recipe or TrainingRecipe()
    if not isinstance(recipe, TrainingRecipe):
        raise InputError(f"expected a TrainingRecipe; got {describe(recipe)}")
    featurizer = featurizer or _default_featurizer(architecture)
    n_input = len(molecules) if isinstance(molecules, Sequence) and not isinstance(molecules, (str, bytes)) else 0
    targets_all = _labels(labels, n_input) if n_input else None
    graphs, rows, errors = _featurize(molecules, featurizer)
    if not graphs:
        raise InputError(f"expected at least one molecule that can be featurized; got {n_input} rows, "
                         f"{len(errors)} bad" + (f" (first: {errors[0]['message']})" if errors else ""))
    if errors:
        LOG.warning("%d of %d molecules could not be featurized and are left out (first: row %d, %s)",
                    len(errors), n_input, errors[0]["row"], errors[0]["message"])
    targets = targets_all[rows]
    kind = _kind(kind, targets)
    n = len(graphs)
    if split is None:
        split = split_indices(n, fractions, split_seed)
    split = tuple(np.asarray(p, dtype=np.int64) for p in split)
    if len(split) != 3 or any(p.size and (p.min() < 0 or p.max() >= n) for p in split) or not split[0].size \
            or not split[1].size:
        raise InputError(f"expected (train, validation, test) index arrays into {n} molecules, train and "
                         f"validation non-empty; got sizes {[p.size for p in split]}")
    train_idx, valid_idx, _ = split

    torch.manual_seed(seed)
    config = _model_config(architecture, graphs, int(targets.shape[1]), dict(model_options or {}))
    model = build_model(architecture, config)
    weights = None
    if kind == "classification":
        positives = targets[train_idx].sum(0)
        if pos_weight == "balanced":
            weights = ((len(train_idx) - positives) / positives.clamp(min=1)).tolist()
        elif isinstance(pos_weight, (int, float)) and not isinstance(pos_weight, bool) and pos_weight > 0:
            weights = [float(pos_weight)] * targets.shape[1]
        elif pos_weight is not None:
            raise InputError(f"expected pos_weight 'balanced', a positive number or None; got {describe(pos_weight)}")
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if weights is None else torch.tensor(weights))
    else:
        loss_fn = nn.MSELoss()
        with torch.no_grad():
            last = model.output if hasattr(model, "output") else model.head[-1]
            last.bias.copy_(targets[train_idx].mean(0))

    groups = None
    if recipe.deletion_consistency > 0 and kind == "classification":
        train_groups = deletion_groups([graphs[i] for i in train_idx], featurizer)
        groups = dict(zip(train_idx.tolist(), train_groups))
    generator = torch.Generator().manual_seed(seed)
    path_points = torch.Generator().manual_seed(seed + 1_000_003)  # its own stream: the batch order stays the seed's
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    valid_graphs = [graphs[i] for i in valid_idx]
    best_score, best_state, best_epoch, history = -np.inf, None, -1, []
    bar = _Progress(progress, recipe.epochs, name)
    started = time.process_time()
    try:
        for epoch in range(recipe.epochs):
            model.train()
            order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=generator)]
            total, count = 0.0, 0
            for start in range(0, len(order), recipe.batch_size):
                batch = order[start:start + recipe.batch_size].tolist()
                chosen = [graphs[i] for i in batch]
                y = targets[batch]
                prior = None
                if recipe.anchor_baseline is not None and kind == "classification":
                    scores, prior = _forward_with_prior(model, chosen + _zeroed(chosen), recipe.attribution_prior)
                    scores, anchored = scores[:len(batch)], scores[len(batch):]
                    if recipe.anchor_baseline == "negative":
                        anchor = nn.functional.binary_cross_entropy_with_logits(anchored, torch.zeros_like(anchored))
                    else:
                        anchor = (anchored ** 2).mean()
                    loss = loss_fn(scores, y) + recipe.anchor_weight * anchor
                else:
                    scores, prior = _forward_with_prior(model, chosen, recipe.attribution_prior)
                    loss = loss_fn(scores, y)
                if prior is not None:  # zero-feature anchors add nothing to it (x = 0)
                    loss = loss + recipe.attribution_prior * prior / len(batch)
                if recipe.path_monotonicity > 0 and kind == "classification":
                    loss = loss + recipe.path_monotonicity * path_monotonicity_penalty(model, chosen, y, path_points)
                if groups is not None:
                    loss = loss + recipe.deletion_consistency * deletion_consistency_penalty(
                        model, chosen, [groups[i] for i in batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, count = total + float(loss.detach()) * len(batch), count + len(batch)
            model.eval()
            score = _validation_score(kind, predict_graphs(model, valid_graphs), targets[valid_idx].numpy())
            history.append({"epoch": epoch, "loss": total / count, "validation_score": score})
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.update(epoch, total / count, score, best_score)
            if recipe.patience is not None and epoch - best_epoch >= recipe.patience:
                break
    finally:
        bar.close()
    seconds = time.process_time() - started
    model.load_state_dict(best_state)
    model.eval()
    metrics = {part: _metrics(kind, predict_graphs(model, [graphs[i] for i in idx]), targets[idx].numpy())
               for part, idx in zip(("train", "validation", "test"), split) if len(idx)}
    return TrainedModel(model, featurizer, architecture, config, kind, recipe, seed, metrics, history, best_epoch,
                        split, list(rows), list(errors), seconds, graphs, targets, weights)


# ---------------------------------------------------------------------------------------- attribution quality
#: How :func:`attribution_quality` computes attributions unless told otherwise: 64 fixed
#: Gauss-Legendre nodes from the all-zeros baseline (the completeness gap is still checked and
#: reported as ``max_relative_gap``).
QUALITY_SETTINGS = Settings(steps=64, rule="gausslegendre", baselines="zeros")


def attribution_quality(model: nn.Module, graphs: Sequence, masks: Sequence, *, featurizer=None,
                        settings: Settings | None = None, limit: int | None = None) -> dict:
    """Integrated gradients of output 0 over the positive molecules, scored against the true atoms.

    Parameters
    ----------
    graphs, masks:
        Featurized molecules and their true masks (``TaskData.masks``; empty for negatives, which
        are skipped).
    featurizer:
        The featurizer of ``graphs`` (needed for ``"dummy"`` baselines and feature names).
    settings:
        A :class:`sciattr.Settings`; default :data:`QUALITY_SETTINGS` (zeros baseline, 64 fixed
        Gauss-Legendre nodes). A list of baselines or a
        :class:`~sciattr.chem.baselines.ReferenceBaselines` gives expected gradients.
    limit:
        Score at most this many positives (the first ones).

    Returns
    -------
    dict
        ``attribution_auroc`` (complete atom scores: atom features plus half of every pair/bond
        the atom is in, :meth:`MoleculeAttribution.atom_scores`),
        ``attribution_auroc_atom_features`` (the atom's own features only), ``per_molecule``,
        ``n_scored``, ``n_undefined``, ``max_relative_gap``, ``median_relative_gap``,
        ``baseline_above_threshold`` (share of the scored molecules whose baseline already has a
        positive logit), ``median_delta`` (median F(x) - F(x')), and the settings used.
    """
    import warnings

    from sciattr.chem.adapter import explain_graphs
    from sciattr.datasets.tasks import score_attributions
    from sciattr.errors import BaselineWarning

    settings = QUALITY_SETTINGS if settings is None else settings
    if not isinstance(settings, Settings):
        raise InputError(f"expected a sciattr.Settings; got {describe(settings)}")
    if len(graphs) != len(masks):
        raise InputError(f"expected one mask list per graph ({len(graphs)}); got {len(masks)}")
    chosen = [i for i, m in enumerate(masks) if m][:limit]
    if not chosen:
        raise InputError("expected at least one positive molecule (one with a true mask) to score")
    picked = [graphs[i] for i in chosen]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)  # measured below as baseline_above_threshold
        result = explain_graphs(model, picked, target=0, settings=settings, featurizer=featurizer,
                                decision_threshold=0.0, group_check=False)  # its notes are not read here
    complete = [result.atom_scores(k).detach().double().numpy() for k in range(len(chosen))]
    own = [result.atom_feature_values(k).detach().double().numpy() for k in range(len(chosen))]
    truth = [masks[i] for i in chosen]
    total, atoms_only = score_attributions(complete, truth), score_attributions(own, truth)
    fx = result.forward_x.detach().double().reshape(len(chosen), -1)[:, 0].numpy()
    fb = result.forward_baseline.detach().double().reshape(len(chosen), -1)[:, 0].numpy()
    baseline = settings.baselines
    label = baseline if isinstance(baseline, str) else "zeros" if baseline is None else \
        result.meta.get("baseline", "custom")
    return {"attribution_auroc": total.mean, "attribution_auroc_atom_features": atoms_only.mean,
            "per_molecule": total.per_molecule.tolist(), "n_scored": total.n_scored,
            "n_undefined": total.n_undefined, "max_relative_gap": float(result.relative_gap.max()),
            "median_relative_gap": float(result.relative_gap.median()),
            "baseline_above_threshold": float((fb > 0).mean()), "median_delta": float(np.median(fx - fb)),
            "steps": settings.steps, "baseline": label, "rule": settings.rule}
