"""Integrated gradients for molecules: the counterfactuals {alpha * Features(mol)}.

Public API
----------
``explain_molecules(model, molecules, *, featurizer=None, target=None, steps=50, baseline="zeros", ...)``
    SMILES strings and/or RDKit molecules (thousands at once) -> one :class:`MoleculeAttribution`;
    bad rows are listed in ``result.errors`` and the rest are processed.
``explain_graphs(model, graphs, *, ...)``
    The same for already featurized :class:`~sciattr.chem.featurize.MoleculeGraph` objects.
``MoleculeAttribution``
    The :class:`sciattr.Attribution` of a molecular model with views ``to_atoms(i)``,
    ``to_pairs(i)``, ``to_bonds(i)``, ``atom_values(i)``, ``link_values(i)``, ``table()``,
    ``molecules`` and ``smiles``.

How it works. Atom features of all molecules are one ragged input ``"atoms" (N, F_atom)`` and
pair (Weave) or edge (PyG) features another, ``"pairs" (P, F_pair)`` or ``"edges" (E, F_edge)``,
both with ``segments`` giving each row's molecule. Atom and link features are scaled together
from the baseline (zeros by default, the paper's choice) to the molecule. The engine evaluates
molecules x path nodes in chunks; each chunk is one forward of the disjoint union of all its
replicas -- never one molecule or one step at a time. Completeness holds over atoms + links:
``sum(atom attributions) + sum(link attributions) = F(x) - F(x')`` per molecule.

Models. A :class:`~sciattr.chem.weave.WeaveModel` (or any model with its signature
``model(atoms, pairs, pair_index, atom_batch, n_molecules)``) is used with pair featurizers; any
PyG model ``model(x, edge_index, edge_attr, batch) -> (n_graphs, T)`` with
:class:`~sciattr.chem.featurize.PyGFeaturizer`. A PyG model that ignores ``edge_attr`` gets
edge attributions of exactly zero (edges are then held at their values, baseline = input).

Baselines. ``"zeros"``; ``"dummy"``: every atom an atom of unknown element and every bond of
unknown type, graph distances kept (what remains is the topology); or a dict
``{"atoms": spec, "pairs"|"edges": spec}`` of engine baseline specs.

Pairs are unordered (one row per ``i < j``); ``to_pairs(i)`` shows each pair's attribution at
``[i, j]`` and ``[j, i]`` (sum the upper triangle for totals). An edge model's two directed edges
of a bond are summed into that bond.
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sciattr.chem.featurize import (
    MoleculeGraph,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    WeaveFeaturizer,
    featurize_batch,
)
from sciattr.chem.weave import WeaveModel
from sciattr.core.batching import Replicas, RowIndex
from sciattr.core.engine import integrated_gradients
from sciattr.core.targets import model_output_tensor
from sciattr.errors import InputError, describe
from sciattr.result import Attribution

__all__ = ["ATOMS", "MoleculeAttribution", "RaggedGraphs", "explain_graphs", "explain_molecules", "ragged_graphs",
           "receptive_radius"]

#: Name of the attributed atom-feature input.
ATOMS = "atoms"
_LINK_NAMES = {"pairs": "pairs", "edges": "edges"}


# ---------------------------------------------------------------------------------------- result
@dataclass(repr=False)
class MoleculeAttribution(Attribution):
    """Attributions of a molecular model, with the molecules attached.

    Extra attributes
    ----------------
    molecules:
        The processed RDKit molecules; atom rows of example ``i`` are the atoms of ``molecules[i]``.
    smiles:
        Canonical SMILES of each example.
    rows:
        ``rows[i]`` is the position of example ``i`` in the caller's list. (This field shadows the
        generic ``Attribution.rows(name, i)``; use :meth:`atom_values`/:meth:`link_values`, or
        ``attributions[name][segments[name] == i]``.)
    errors:
        One ``{"row", "input", "message"}`` record per input row that could not be processed.
    notes:
        Per-example remarks of the featurizer (removed salts, unknown elements).
    link_name:
        ``"pairs"`` (Weave) or ``"edges"`` (PyG): the input holding the link features.
    link_index:
        ``(2, n_links)`` atoms (indices within their molecule) joined by each link row.
    link_bond:
        ``(n_links,)`` RDKit bond index of each link row, ``-1`` for non-bonded pairs.
    atom_feature_names, link_feature_names:
        Column names of the two inputs.
    """

    molecules: list = field(default_factory=list)
    smiles: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    link_name: str = "pairs"
    link_index: torch.Tensor | None = None
    link_bond: torch.Tensor | None = None
    atom_feature_names: tuple = ()
    link_feature_names: tuple = ()

    # ------------------------------------------------------------------ per-row values
    def _task_column(self, values: torch.Tensor, task: int | None) -> torch.Tensor:
        if not self.multi_target:
            if task not in (None, 0):
                raise InputError(f"expected task=None for a single-target result; got {task!r}")
            return values
        n_tasks = values.shape[-1]
        if task is None or isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < n_tasks:
            raise InputError(f"expected task to be an integer in [0, {n_tasks - 1}] for a result with "
                             f"{n_tasks} attributed targets; got {task!r}")
        return values[..., task]

    def _mask(self, name: str, i: int) -> torch.Tensor:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.n_examples:
            raise InputError(f"expected a molecule index in [0, {self.n_examples - 1}]; got {i!r}")
        return self.segments[name] == int(i)

    def atom_values(self, i: int, task: int | None = None) -> torch.Tensor:
        """``(n_atoms,)`` attribution of each atom of molecule ``i`` (summed over its features)."""
        a = self.attributions[ATOMS][self._mask(ATOMS, i)].sum(1)
        return self._task_column(a, task)

    def link_values(self, i: int, task: int | None = None) -> torch.Tensor:
        """``(n_links,)`` attribution of each pair (or directed edge) of molecule ``i``."""
        a = self.attributions[self.link_name][self._mask(self.link_name, i)].sum(1)
        return self._task_column(a, task)

    def link_atoms(self, i: int) -> torch.Tensor:
        """``(2, n_links)`` atom indices (within molecule ``i``) of its link rows."""
        return self.link_index[:, self._mask(self.link_name, i).to(self.link_index.device)]

    def link_bonds(self, i: int) -> torch.Tensor:
        """``(n_links,)`` RDKit bond index of the link rows of molecule ``i`` (-1: no bond)."""
        return self.link_bond[self._mask(self.link_name, i).to(self.link_bond.device)]

    # ------------------------------------------------------------------ views
    def to_atoms(self, i: int, task: int | None = None) -> list[dict]:
        """Per-atom table of molecule ``i``: ``{"index", "symbol", "attribution"}`` per atom."""
        values = self.atom_values(i, task).tolist()
        mol = self.molecules[i]
        return [{"index": k, "symbol": mol.GetAtomWithIdx(k).GetSymbol(), "attribution": v}
                for k, v in enumerate(values)]

    def to_pairs(self, i: int, task: int | None = None) -> torch.Tensor:
        """``(n_atoms, n_atoms)`` symmetric matrix: the attribution of the pair (or of both directed
        edges) joining two atoms, at both ``[a, b]`` and ``[b, a]``; zero where there is no link."""
        values = self.link_values(i, task)
        index = self.link_atoms(i).to(values.device)
        n = self.molecules[i].GetNumAtoms()
        matrix = values.new_zeros((n, n))
        lo, hi = torch.minimum(index[0], index[1]), torch.maximum(index[0], index[1])
        matrix.index_put_((lo, hi), values, accumulate=True)
        return matrix + matrix.T

    def bond_values(self, i: int, task: int | None = None) -> torch.Tensor:
        """``(n_bonds,)`` attribution of each RDKit bond of molecule ``i`` (its pair, or both edges)."""
        values = self.link_values(i, task)
        bonds = self.link_bonds(i).to(values.device)
        out = values.new_zeros(self.molecules[i].GetNumBonds())
        keep = bonds >= 0
        return out.index_add_(0, bonds[keep], values[keep])

    def to_bonds(self, i: int, task: int | None = None) -> list[dict]:
        """Per-bond table: ``{"bond", "begin", "end", "bond_type", "attribution"}``."""
        values = self.bond_values(i, task).tolist()
        return [{"bond": b.GetIdx(), "begin": b.GetBeginAtomIdx(), "end": b.GetEndAtomIdx(),
                 "bond_type": str(b.GetBondType()).lower(), "attribution": values[b.GetIdx()]}
                for b in self.molecules[i].GetBonds()]

    def table(self, level: str = "molecule", task: int | None = None) -> list[dict]:
        """Rows over all molecules: ``level="molecule"`` (scores, totals, gap), ``"atom"`` or ``"bond"``."""
        if level not in ("molecule", "atom", "bond"):
            raise InputError(f"expected level='molecule', 'atom' or 'bond'; got {level!r}")
        out = []
        for i in range(self.n_examples):
            head = {"molecule": i, "row": self.rows[i], "smiles": self.smiles[i]}
            if level == "molecule":
                out.append({**head, **self._molecule_totals(i, task)})
            else:
                items = self.to_atoms(i, task) if level == "atom" else self.to_bonds(i, task)
                out.extend({**head, **item} for item in items)
        return out

    def _molecule_totals(self, i: int, task: int | None) -> dict:
        def pick(t):
            return float(self._task_column(t[i], task))

        atoms = float(self.atom_values(i, task).sum())
        links = float(self.link_values(i, task).sum())
        return {"score": pick(self.forward_x), "baseline_score": pick(self.forward_baseline),
                "atoms": atoms, self.link_name: links, "gap": atoms + links - pick(self.delta)}

    # ------------------------------------------------------------------ storage
    def to(self, device) -> MoleculeAttribution:
        moved = super().to(device)
        return dataclasses.replace(moved, link_index=self.link_index.to(device), link_bond=self.link_bond.to(device))


# ---------------------------------------------------------------------------------------- forwards
class _RaggedGraphModel:
    """Calls a graph model on the disjoint union of a chunk's replicas.

    ``convention`` is ``"weave"`` (``model(atoms, pairs, pair_index, atom_batch, n)``) or
    ``"pyg"`` (``model(x, edge_index, edge_attr, batch)``). ``fixed_links`` holds the link
    features when they are not attributed (the model ignores them).
    """

    def __init__(self, model: Callable, convention: str, link_name: str, link_index: torch.Tensor,
                 link_table: RowIndex, fixed_links: torch.Tensor | None = None):
        self.model, self.convention, self.link_name = model, convention, link_name
        self.link_index, self.link_table, self.fixed_links = link_index, link_table, fixed_links

    def __call__(self, atoms: torch.Tensor, replicas: Replicas, **links: torch.Tensor):
        if self.link_name in links:
            cols, rep = replicas.rows[self.link_name], replicas.row_replica[self.link_name]
            link_features = links[self.link_name]
        else:
            cols, rep = replicas.replicate(self.link_table)
            link_features = self.fixed_links.index_select(0, cols)
        index = replicas.remap(ATOMS, self.link_index.index_select(1, cols), rep)
        batch = replicas.row_replica[ATOMS]
        if self.convention == "weave":
            return self.model(atoms, link_features, index, batch, replicas.size)
        return self.model(atoms, index, link_features, batch)


def _dtype_device(model) -> tuple[torch.dtype, torch.device]:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def receptive_radius(model) -> int | None:
    """Graph radius a model's atom representations are built to see: ``model.receptive_radius``
    when it has one (Weave: one per module), else the number of PyG message-passing layers."""
    radius = getattr(model, "receptive_radius", None)
    if isinstance(radius, int):
        return radius
    geometric = sys.modules.get("torch_geometric.nn")  # a PyG model has imported it already
    if isinstance(model, torch.nn.Module) and geometric is not None:
        layers = sum(isinstance(m, geometric.MessagePassing) for m in model.modules())
        return layers or None
    return None


def _default_featurizer(model):
    if isinstance(model, WeaveModel):
        for feat in (SimpleWeaveFeaturizer(), WeaveFeaturizer()):
            if (feat.n_atom_features, feat.n_pair_features) == (model.n_atom_features, model.n_pair_features):
                return feat
        raise InputError(f"expected featurizer= for a WeaveModel with {model.n_atom_features} atom and "
                         f"{model.n_pair_features} pair features (no built-in featurizer has these widths)")
    return PyGFeaturizer()


def _uses_links(model, graph: MoleculeGraph, dtype, device) -> bool:
    """Whether a PyG model's output depends differentiably on ``edge_attr`` (one probe forward)."""
    with torch.enable_grad():
        x = graph.atoms.to(device=device, dtype=dtype)
        links = graph.links.to(device=device, dtype=dtype).requires_grad_(True)
        batch = torch.zeros(graph.n_atoms, dtype=torch.long, device=device)
        out = model(x, graph.link_index.to(device), links, batch)
        out = model_output_tensor(out)
        if not out.requires_grad:
            return False
        (grad,) = torch.autograd.grad(out.sum(), links, allow_unused=True)
    return grad is not None


@dataclass
class _Union:
    """The disjoint union of all graphs as ragged engine inputs."""

    atoms: torch.Tensor
    links: torch.Tensor
    atom_segments: torch.Tensor
    link_segments: torch.Tensor
    link_index_local: torch.Tensor
    link_index_global: torch.Tensor
    link_bond: torch.Tensor


def _union(graphs: Sequence[MoleculeGraph], dtype, device) -> _Union:
    sizes = torch.tensor([g.n_atoms for g in graphs])
    n_links = torch.tensor([g.n_links for g in graphs])
    ids = torch.arange(len(graphs))
    offsets = torch.cumsum(sizes, 0) - sizes
    local = torch.cat([g.link_index for g in graphs], 1)
    link_segments = torch.repeat_interleave(ids, n_links)
    return _Union(
        atoms=torch.cat([g.atoms for g in graphs]).to(device=device, dtype=dtype),
        links=torch.cat([g.links for g in graphs]).to(device=device, dtype=dtype),
        atom_segments=torch.repeat_interleave(ids, sizes).to(device),
        link_segments=link_segments.to(device),
        link_index_local=local.to(device),
        link_index_global=(local + offsets[link_segments]).to(device),
        link_bond=torch.cat([g.link_bond for g in graphs]).to(device),
    )


def _baselines(baseline, featurizer, link_name: str, data: _Union):
    if isinstance(baseline, str) and baseline == "dummy":
        if featurizer is None:
            raise InputError("expected featurizer= with baseline='dummy' (the dummy atom comes from it)")
        return {ATOMS: featurizer.dummy_atoms(data.atoms), link_name: featurizer.dummy_links(data.links)}
    if isinstance(baseline, Mapping):
        unknown = set(baseline) - {ATOMS, link_name}
        if unknown:
            raise InputError(f"expected baseline keys among {[ATOMS, link_name]}; got {sorted(unknown)}")
        return dict(baseline)
    return {ATOMS: baseline, link_name: baseline}


def _check_graphs(graphs) -> str:
    if isinstance(graphs, MoleculeGraph) or not isinstance(graphs, Sequence) or not graphs:
        raise InputError(f"expected a non-empty list of MoleculeGraph; got {describe(graphs)}")
    bad = [k for k, g in enumerate(graphs) if not isinstance(g, MoleculeGraph)]
    if bad:
        raise InputError(f"expected MoleculeGraph objects; got {describe(graphs[bad[0]])} at position {bad[0]}")
    kinds = {g.kind for g in graphs}
    if len(kinds) != 1:
        raise InputError(f"expected graphs of one kind; got {sorted(kinds)}")
    return kinds.pop()


@dataclass
class RaggedGraphs:
    """Featurized molecules as ragged engine inputs, with the forward that runs the model on them.

    ``integrated_gradients(r.forward, r.inputs, segments=r.segments)`` (or any diagnostic taking a
    model, inputs and segments) evaluates every molecule at every path node in disjoint unions.

    Attributes
    ----------
    inputs:
        ``{"atoms": (N, F_atom)}`` plus the link table (``"pairs"`` or ``"edges"``) when it is
        attributed.
    segments:
        The molecule of every row of each input.
    forward:
        The callable the engine calls with ``replicas=``.
    links_attributed:
        Whether the link features are an input (else held at their values inside ``forward``).
    """

    inputs: dict
    segments: dict
    forward: _RaggedGraphModel
    link_name: str
    links_attributed: bool
    data: _Union

    def atom_groups(self) -> dict:
        """One feature group per atom (its index within its molecule), links never grouped (-1):
        the ``groups`` argument of :mod:`sciattr.diagnostics.faithfulness` for atom ablation."""
        n = int(self.data.atom_segments.max()) + 1 if self.data.atom_segments.numel() else 0
        groups = {ATOMS: RowIndex(self.data.atom_segments, n, self.data.atoms.shape[0]).rank}
        if self.links_attributed:
            groups[self.link_name] = torch.full((self.data.links.shape[0],), -1, dtype=torch.long,
                                                device=self.data.links.device)
        return groups


def ragged_graphs(model: Callable, graphs: Sequence[MoleculeGraph], *,
                  attribute_links: bool | None = None) -> RaggedGraphs:
    """The disjoint union of ``graphs`` as engine inputs for ``model`` (see :class:`RaggedGraphs`).

    ``attribute_links=None``: pair features are attributed; edge features when the model's output
    depends on ``edge_attr`` (probed once on one molecule).
    """
    kind = _check_graphs(graphs)
    link_name = _LINK_NAMES[kind]
    convention = "weave" if kind == "pairs" else "pyg"
    dtype, device = _dtype_device(model)
    data = _union(graphs, dtype, device)
    if attribute_links is None:
        probe = next((g for g in graphs if g.n_links), None)
        attribute_links = kind == "pairs" or (probe is not None and _uses_links(model, probe, dtype, device))
    table = RowIndex(data.link_segments, len(graphs), data.links.shape[0])
    forward = _RaggedGraphModel(model, convention, link_name, data.link_index_global, table,
                                None if attribute_links else data.links)
    inputs, segments = {ATOMS: data.atoms}, {ATOMS: data.atom_segments}
    if attribute_links:
        inputs[link_name], segments[link_name] = data.links, data.link_segments
    return RaggedGraphs(inputs, segments, forward, link_name, bool(attribute_links), data)


# ---------------------------------------------------------------------------------------- entry points
def explain_graphs(model: Callable, graphs: Sequence[MoleculeGraph], *, target=None, steps: int | str = 50,
                   rule="gausslegendre", baseline: Any = "zeros", featurizer=None, attribute_links: bool | None
                   = None, batch_size: int | None = None, memory_budget=None, tolerance: float | None = None,
                   max_steps: int = 1024, store_path: bool = False, rows: list | None = None,
                   errors: list | None = None) -> MoleculeAttribution:
    """Integrated gradients of ``model`` over featurized molecules, all batched together.

    Parameters
    ----------
    model:
        A Weave-convention model (pair graphs) or a PyG-convention model (edge graphs).
    graphs:
        :class:`MoleculeGraph` objects of one kind.
    target, steps, rule, batch_size, memory_budget, tolerance, max_steps, store_path:
        As in :func:`sciattr.integrated_gradients`.
    baseline:
        ``"zeros"``, ``"dummy"`` (needs ``featurizer``) or a dict ``{"atoms": ..., link name: ...}``.
    attribute_links:
        Attribute the pair/edge features as well as the atoms. ``None``: yes for pair graphs; for
        edge graphs, yes when the model's output depends on ``edge_attr`` (probed once).
    rows, errors:
        Bookkeeping of :func:`explain_molecules` (input row of each graph, bad rows).

    Returns
    -------
    MoleculeAttribution
        ``attributions["atoms"] (N, F_atom[, T])`` and ``attributions["pairs"|"edges"] (L, F_link[, T])``.
    """
    ragged = ragged_graphs(model, graphs, attribute_links=attribute_links)
    data, link_name, n = ragged.data, ragged.link_name, len(graphs)
    bases = _baselines(baseline, featurizer, link_name, data)
    if not ragged.links_attributed:
        bases.pop(link_name, None)
    res = integrated_gradients(ragged.forward, ragged.inputs, baselines=bases, target=target, steps=steps, rule=rule,
                               batch_size=batch_size, memory_budget=memory_budget, tolerance=tolerance,
                               max_steps=max_steps, store_path=store_path, segments=ragged.segments)
    if not ragged.links_attributed:
        res = _with_fixed_links(res, link_name, data)
    res.meta.update({"links_attributed": ragged.links_attributed, "convention": ragged.forward.convention,
                     "baseline": baseline if isinstance(baseline, str) else "custom",
                     "receptive_radius": receptive_radius(model)})
    return res.specialize(
        MoleculeAttribution, molecules=[g.mol for g in graphs], smiles=[g.smiles for g in graphs],
        rows=list(range(n)) if rows is None else list(rows), errors=list(errors or []),
        notes=[g.notes for g in graphs], link_name=link_name, link_index=data.link_index_local,
        link_bond=data.link_bond, atom_feature_names=_names_of(featurizer, "atom_feature_names"),
        link_feature_names=_names_of(featurizer, "link_feature_names"),
    )


def _names_of(featurizer, attribute: str) -> tuple:
    return tuple(getattr(featurizer, attribute, ()))


def _with_fixed_links(res: Attribution, link_name: str, data: _Union) -> Attribution:
    """Add links held at their values (baseline = input): their attributions are exactly zero."""
    atoms = res.attributions[ATOMS]
    shape = (data.links.shape[0], data.links.shape[1]) + tuple(atoms.shape[2:])
    return dataclasses.replace(
        res,
        attributions={**res.attributions, link_name: atoms.new_zeros(shape)},
        inputs={**res.inputs, link_name: data.links},
        baselines={**res.baselines, link_name: data.links},
        segments={**res.segments, link_name: data.link_segments},
        meta=dict(res.meta),
    )


def explain_molecules(model: Callable, molecules: Sequence, *, featurizer=None, target=None,
                      steps: int | str = 50, baseline: Any = "zeros", **options) -> MoleculeAttribution:
    """Attribute a molecular model's predictions to atoms, atom pairs and bonds.

    Parameters
    ----------
    model:
        A :class:`~sciattr.chem.weave.WeaveModel` (or any model with its calling convention) or a
        PyG model ``model(x, edge_index, edge_attr, batch)``.
    molecules:
        A list of SMILES strings and/or RDKit molecules (e.g. from :func:`~sciattr.chem.load_sdf`;
        ``None`` entries are reported as unreadable records).
    featurizer:
        Defaults to the built-in Weave featurizer matching a WeaveModel's input widths, and to
        :class:`~sciattr.chem.featurize.PyGFeaturizer` for other models.
    target, steps, baseline, **options:
        As in :func:`explain_graphs` (``rule``, ``batch_size``, ``memory_budget``, ``tolerance``,
        ``max_steps``, ``store_path``, ``attribute_links``).

    Returns
    -------
    MoleculeAttribution
        Example ``i`` is input row ``result.rows[i]``; ``result.errors`` lists the rows that were
        not processed and why.

    Example
    -------
    >>> feat = SimpleWeaveFeaturizer()
    >>> model = WeaveModel(feat.n_atom_features, feat.n_pair_features, 1)
    >>> res = explain_molecules(model, ["CCO", "not a smiles"], featurizer=feat, steps=16)
    >>> len(res.to_atoms(0)), res.errors[0]["row"]
    (3, 1)
    """
    featurizer = _default_featurizer(model) if featurizer is None else featurizer
    graphs, rows, errors = featurize_batch(featurizer, molecules)
    if not graphs:
        listed = "; ".join(f"row {e['row']}: {e['message']}" for e in errors[:5])
        raise InputError(f"expected at least one valid molecule; got none of {len(errors)} ({listed})")
    return explain_graphs(model, graphs, target=target, steps=steps, baseline=baseline, featurizer=featurizer,
                          rows=rows, errors=errors, **options)
