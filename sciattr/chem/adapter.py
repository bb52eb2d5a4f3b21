"""Integrated gradients for molecules: the counterfactuals {alpha * Features(mol)}.

Public API
----------
``explain_molecules(model, molecules, *, featurizer=None, target=None, settings=None, **options)``
    SMILES strings and/or RDKit molecules (any sequence or a pandas Series; thousands at once) ->
    one :class:`MoleculeAttribution`; bad rows are listed in ``result.errors`` and the rest are
    processed.
``explain_graphs(model, graphs, *, ...)``
    The same for already featurized :class:`~sciattr.chem.featurize.MoleculeGraph` objects.
``MoleculeAttribution``
    The :class:`sciattr.Attribution` of a molecular model with views ``to_atoms(i)``,
    ``to_bonds(i)``, ``pair_list(i)``, ``to_pairs(i)``, ``atom_values(i)``, ``table(level)``,
    ``to_dataframe(level)``, ``molecules`` and ``smiles``.

Vocabulary. ``target`` is an output index or a task name of the model's card; ``settings`` (a
:class:`sciattr.Settings`) or keyword options (``steps``, ``rule``, ``tolerance``, ``baselines``,
...) decide how attributions are computed; the defaults are those of the whole package
(adaptive steps until the completeness gap is within 5 %).

How it works. Atom features of all molecules are one ragged input ``"atoms" (N, F_atom)`` and
pair (Weave) or edge (PyG) features another, ``"pairs" (P, F_pair)`` or ``"edges" (E, F_edge)``,
both with ``segments`` giving each row's molecule. Atom and link features are scaled together
from the baseline (zeros by default, the paper's choice) to the molecule. The engine evaluates
molecules x path nodes in chunks; each chunk is one forward of the disjoint union of all its
replicas -- never one molecule or one step at a time. Completeness holds over atoms + links:
``sum(atom attributions) + sum(link attributions) = F(x) - F(x')`` per molecule.

Atom scores. What a chemist reads per atom is the *complete* score: the atom's own features
plus half of each pair/edge it takes part in (see :class:`MoleculeAttribution`).

Models. A :class:`~sciattr.chem.weave.WeaveModel` (or any model with its signature
``model(atoms, pairs, pair_index, atom_batch, n_molecules)``) is used with pair featurizers; any
PyG model ``model(x, edge_index, edge_attr, batch) -> (n_graphs, T)`` with
:class:`~sciattr.chem.featurize.PyGFeaturizer`. A PyG model that ignores ``edge_attr`` gets
edge attributions of exactly zero (edges are then held at their values, baseline = input). A
model loaded with :func:`sciattr.zoo.load_model` carries its card: the card decides the
featurizer, the names of the targets and the decision threshold.

Baselines. ``"zeros"`` (default); ``"dummy"``: every atom an atom of unknown element and every
bond of unknown type, graph distances kept (what remains is the topology); ``"skeleton"``: the
molecule's saturated carbon skeleton -- every atom a carbon, every bond single, graph distances
and ring membership kept (element-only atom featurizations): carbon atoms are then credited only
through their bonds, heteroatoms and unsaturation through their own features; ``"mean"``: each
molecule's own mean atom row and mean link row (named baselines are per molecule, so a molecule's
attributions never depend on the rest of the batch); a number, a tensor or a dict
``{"atoms": spec, "pairs"|"edges": spec}`` of engine baseline specs; a list of K such baselines
or a :class:`~sciattr.chem.baselines.ReferenceBaselines` sampler (expected gradients: the
attributions averaged over K baselines, every (molecule, baseline) its own example in one
flattened grid, checked for completeness one by one). Every result checks its baseline: F(x')
is reported next to F(x), and a :class:`~sciattr.errors.BaselineWarning` names the input rows
whose baseline is not neutral for the target (same side of the card's decision threshold as the
input, or ``|F(x) - F(x')|`` small against the attributions), and a dummy baseline the model
cannot tell from zeros.

Pairs are unordered (one row per ``i < j``); an edge model's two directed edges of a bond are
summed into that bond.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from sciattr.chem._vocabulary import check_keywords, target_index, task_names
from sciattr.chem.featurize import (
    MoleculeGraph,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    WeaveFeaturizer,
    as_items,
    featurize_batch,
    featurizer_from_spec,
    source_bonds,
)
from sciattr.chem.weave import WeaveModel
from sciattr.core import engine as _engine
from sciattr.core.baselines import resolve_baseline
from sciattr.core.batching import Replicas, RowIndex
from sciattr.core.engine import model_as_found
from sciattr.core.targets import model_output_tensor
from sciattr.errors import BaselineWarning, InputError, describe, require
from sciattr.result import Attribution
from sciattr.settings import Settings, resolve_settings

__all__ = ["ATOMS", "MoleculeAttribution", "RaggedGraphs", "decision_threshold", "explain_graphs",
           "explain_molecules", "ragged_graphs", "receptive_radius"]

#: Name of the attributed atom-feature input.
ATOMS = "atoms"
_LINK_NAMES = {"pairs": "pairs", "edges": "edges"}
#: ``|F(x) - F(x')|`` below this share of the attributions' scale ``sum |a|`` gets a BaselineWarning.
SMALL_DIFFERENCE = 0.1
#: A baseline whose score is within this share of ``|F(x) - F(x')|`` from the decision threshold is
#: at the threshold (neutral), whichever side it falls on: the same 5 % as the completeness
#: tolerance (a baseline trained to the threshold lands within a few hundredths of a logit of it).
AT_THRESHOLD = 0.05
#: ``|F(dummy) - F(zeros)|`` below this share of ``|F(x) - F(zeros)|``: the model cannot tell them apart.
DUMMY_LIKE_ZEROS = 0.01


# ---------------------------------------------------------------------------------------- result
#: Atom views: ``"complete"`` (default) and ``"features"``.
ATOM_VIEWS = ("complete", "features")
#: Levels of :meth:`MoleculeAttribution.table` and :meth:`MoleculeAttribution.to_dataframe`.
LEVELS = ("molecule", "atom", "bond", "pair")


@functools.cache
def _bond_type_name(kind) -> str:
    """An RDKit bond type's lower-case name (``"single"``, ``"aromatic"``, ...)."""
    return str(kind).lower()


@dataclass(repr=False)
class MoleculeAttribution(Attribution):
    """Attributions of a molecular model, with the molecules attached.

    Atom numbers. Every atom index a view returns (``to_atoms``, ``to_bonds``, ``pair_list``,
    ``table``, ``to_dataframe``, pictures, reports) is the atom's index in the molecule that was
    passed in, also when a fragment or explicit hydrogens were left out (``source_atoms`` holds
    the map, ``notes`` say what was left out). Tensors of per-atom values (``atom_values`` ...)
    are in the order of the processed molecule ``molecules[i]``.

    Atom scores. The *complete* score of an atom (the default everywhere) is its own features'
    attribution plus half of the attribution of every pair (Weave) or directed edge (PyG) it
    takes part in -- each link's attribution is split in equal halves between its two atoms. The
    complete scores of a molecule add up to ``F(x) - F(x')`` (up to the completeness gap); the
    *feature-only* view (``view="features"``, :meth:`atom_feature_values`) does not, and misses
    everything the model reads from bonds and pairs.

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
    ids:
        The caller's identifier of each example (``ids=`` or a pandas Series' index), or ``None``.
    errors:
        One ``{"row", "input", "message"}`` record per input row that could not be processed.
    notes:
        Per-example remarks: atoms left out, what RDKit said, what the featurizer cannot represent,
        and baseline diagnostics.
    source_atoms:
        ``source_atoms[i]`` ``(n_atoms_i,)``: input atom index of each atom of ``molecules[i]``.
    source_bonds:
        ``source_bonds[i]``: input bond index of each bond of ``molecules[i]``.
    baseline_warnings:
        Per example, why the baseline is not neutral for the target ("" when nothing was found).
    target_names:
        Names of the model's outputs (from its card), usable as ``target=``.
    link_name:
        ``"pairs"`` (Weave) or ``"edges"`` (PyG): the input holding the link features.
    link_index:
        ``(2, n_links)`` atoms (indices within their processed molecule) joined by each link row.
    link_bond:
        ``(n_links,)`` RDKit bond index (processed molecule) of each link row, ``-1`` for
        non-bonded pairs.
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
    source_atoms: list = field(default_factory=list)
    source_bonds: list = field(default_factory=list)
    ids: list | None = None
    baseline_warnings: list = field(default_factory=list)
    target_names: tuple = ()

    # ------------------------------------------------------------------ per-row values
    def _task_column(self, values: torch.Tensor, target=None) -> torch.Tensor:
        target = target_index(target, tuple(self.target_names))
        if not self.multi_target:
            if target not in (None, 0):
                raise InputError(f"expected target=None for a single-target result; got {target!r}")
            return values
        n_tasks = values.shape[-1]
        if target is None or isinstance(target, bool) or not isinstance(target, numbers.Integral) \
                or not 0 <= int(target) < n_tasks:
            names = f" or a name among {list(self.target_names)}" if self.target_names else ""
            raise InputError(f"expected target to be an integer in [0, {n_tasks - 1}]{names} for a result with "
                             f"{n_tasks} attributed targets; got {target!r}")
        return values[..., int(target)]

    def _mask(self, name: str, i: int) -> torch.Tensor | slice:
        """The rows of input ``name`` that belong to molecule ``i``: a slice where the rows of each
        molecule are contiguous and in order (always, for results of the adapters), else a mask.
        The bounds are computed once per input, so per-molecule tables cost O(rows of the molecule)."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.n_examples:
            raise InputError(f"expected a molecule index in [0, {self.n_examples - 1}]; got {i!r}")
        ordered, starts, counts = self._bounds(name)
        if ordered:
            return slice(starts[int(i)], starts[int(i)] + counts[int(i)])
        return self.segments[name] == int(i)

    def _bounds(self, name: str) -> tuple[bool, list[int], list[int]]:
        """``(ordered, starts, counts)`` of the rows of input ``name`` per molecule, computed once
        per input: ``ordered`` when each molecule's rows are contiguous and in molecule order."""
        segments = (self.segments or {})[name]
        cache = self.__dict__.setdefault("_row_bounds", {})
        known = cache.get(name)
        if known is None or known[0] is not segments:
            seg = segments.detach().cpu()
            ordered = bool((seg[1:] >= seg[:-1]).all()) if seg.numel() > 1 else True
            counts = torch.bincount(seg, minlength=self.n_examples) if seg.numel() else \
                torch.zeros(self.n_examples, dtype=torch.long)
            starts = torch.cumsum(counts, 0) - counts
            known = cache[name] = (segments, ordered, starts.tolist(), counts.tolist())
        return known[1], known[2], known[3]

    @staticmethod
    def _device_rows(rows, device):
        return rows if isinstance(rows, slice) else rows.to(device)

    def atom_feature_values(self, i: int, target=None) -> torch.Tensor:
        """``(n_atoms,)`` feature-only attribution of each atom of molecule ``i``: its own features'
        attributions summed, without its share of pairs/bonds (does not add up to F(x) - F(x'))."""
        a = self.attributions[ATOMS][self._mask(ATOMS, i)].sum(1)
        return self._task_column(a, target)

    def atom_scores(self, i: int, target=None) -> torch.Tensor:
        """``(n_atoms,)`` complete score of each atom of molecule ``i``: its features plus half of every
        pair/directed edge it takes part in. The scores add up to ``F(x) - F(x')`` (up to the gap)."""
        atoms = self.atom_feature_values(i, target)
        links = self.link_values(i, target)
        ends = self.link_atoms(i).to(atoms.device)
        half = 0.5 * links
        return atoms.index_add(0, ends[0], half).index_add(0, ends[1], half)

    def atom_values(self, i: int, target=None, *, view: str = "complete") -> torch.Tensor:
        """``(n_atoms,)`` per-atom values of molecule ``i`` (processed order): ``view="complete"``
        (default, :meth:`atom_scores`) or ``"features"`` (:meth:`atom_feature_values`)."""
        if view not in ATOM_VIEWS:
            raise InputError(f"expected view in {list(ATOM_VIEWS)}; got {view!r}")
        return self.atom_scores(i, target) if view == "complete" else self.atom_feature_values(i, target)

    def link_values(self, i: int, target=None) -> torch.Tensor:
        """``(n_links,)`` attribution of each pair (or directed edge) of molecule ``i``."""
        a = self.attributions[self.link_name][self._mask(self.link_name, i)].sum(1)
        return self._task_column(a, target)

    def link_atoms(self, i: int) -> torch.Tensor:
        """``(2, n_links)`` atom indices (within processed molecule ``i``) of its link rows."""
        index = self._link_table()[0]
        return index[:, self._device_rows(self._mask(self.link_name, i), index.device)]

    def link_bonds(self, i: int) -> torch.Tensor:
        """``(n_links,)`` RDKit bond index (processed molecule) of the link rows of molecule ``i`` (-1: no bond)."""
        bond = self._link_table()[1]
        return bond[self._device_rows(self._mask(self.link_name, i), bond.device)]

    def _link_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.link_index is None or self.link_bond is None:
            raise InputError("expected a molecule result with its link table (link_index, link_bond); got none")
        return self.link_index, self.link_bond

    def input_atoms(self, i: int) -> list[int]:
        """Input atom index of every atom of processed molecule ``i``."""
        if i < len(self.source_atoms) and self.source_atoms[i] is not None:
            values = self.source_atoms[i]
            return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
        return list(range(self.molecules[i].GetNumAtoms()))

    def input_bonds(self, i: int) -> list[int]:
        """Input bond index of every bond of processed molecule ``i`` (bonds to added hydrogens: after the input's)."""
        if i < len(self.source_bonds) and self.source_bonds[i] is not None:
            return [int(v) for v in self.source_bonds[i]]
        return list(range(self.molecules[i].GetNumBonds()))

    def n_input_atoms(self, i: int) -> int:
        """Atoms of the molecule that was passed in (before fragments or hydrogens were left out), plus
        hydrogens added by ``hydrogens="explicit"`` (numbered after them)."""
        mol = self.molecules[i]
        if mol.HasProp("_sciattr_input_atoms"):
            return int(mol.GetIntProp("_sciattr_input_atoms"))
        return max(self.input_atoms(i), default=-1) + 1

    # ------------------------------------------------------------------ views
    def to_atoms(self, i: int, target=None, *, view: str = "complete") -> list[dict]:
        """Per-atom table of molecule ``i``: ``{"index", "symbol", "attribution", "atom_score",
        "feature_attribution"}`` per atom. ``index`` is the input atom index; ``attribution`` is
        the chosen ``view`` (default the complete score, equal to ``atom_score``)."""
        complete = self.atom_scores(i, target).tolist()
        features = self.atom_feature_values(i, target).tolist()
        if view not in ATOM_VIEWS:
            raise InputError(f"expected view in {list(ATOM_VIEWS)}; got {view!r}")
        chosen = complete if view == "complete" else features
        mol, source = self.molecules[i], self.input_atoms(i)
        return [{"index": source[k], "symbol": mol.GetAtomWithIdx(k).GetSymbol(), "attribution": chosen[k],
                 "atom_score": complete[k], "feature_attribution": features[k]}
                for k in range(len(complete))]

    def to_pairs(self, i: int, target=None) -> torch.Tensor:
        """``(n_input_atoms, n_input_atoms)`` symmetric matrix indexed by INPUT atom indices: the
        attribution of the pair (or of both directed edges) joining two atoms, at both ``[a, b]``
        and ``[b, a]``; zero where there is no link (and for atoms that were left out)."""
        values = self.link_values(i, target)
        index = self.link_atoms(i).to(values.device)
        source = torch.tensor(self.input_atoms(i), dtype=torch.long, device=values.device)
        n = self.n_input_atoms(i)
        matrix = values.new_zeros((n, n))
        a, b = source[index[0]], source[index[1]]
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        matrix.index_put_((lo, hi), values, accumulate=True)
        return matrix + matrix.T

    def pair_list(self, i: int, target=None) -> list[dict]:
        """One dict per atom pair (Weave) or bond (both directed edges summed; PyG) of molecule ``i``:
        ``{"begin", "end", "bond", "attribution"}`` with input atom indices, ``bond`` the input bond
        index or -1 for a non-bonded pair."""
        values = self.link_values(i, target).tolist()
        ends = self.link_atoms(i).tolist()
        bonds = self.link_bonds(i).tolist()
        source, bond_source = self.input_atoms(i), self.input_bonds(i)
        merged: dict[tuple[int, int], list] = {}
        for a, b, bond, v in zip(ends[0], ends[1], bonds, values):
            key = (min(source[a], source[b]), max(source[a], source[b]))
            entry = merged.setdefault(key, [bond_source[bond] if bond >= 0 else -1, 0.0])
            entry[1] += v
        return [{"begin": a, "end": b, "bond": bond, "attribution": v}
                for (a, b), (bond, v) in sorted(merged.items())]

    def bond_values(self, i: int, target=None) -> torch.Tensor:
        """``(n_bonds,)`` attribution of each RDKit bond of processed molecule ``i`` (its pair, or both edges)."""
        values = self.link_values(i, target)
        bonds = self.link_bonds(i).to(values.device)
        out = values.new_zeros(self.molecules[i].GetNumBonds())
        keep = bonds >= 0
        return out.index_add_(0, bonds[keep], values[keep])

    def to_bonds(self, i: int, target=None) -> list[dict]:
        """Per-bond table: ``{"bond", "begin", "end", "bond_type", "attribution"}`` with the input's
        bond and atom indices."""
        values = self.bond_values(i, target).tolist()
        source, bond_source = self.input_atoms(i), self.input_bonds(i)
        return [{"bond": bond_source[b.GetIdx()], "begin": source[b.GetBeginAtomIdx()],
                 "end": source[b.GetEndAtomIdx()], "bond_type": _bond_type_name(b.GetBondType()),
                 "attribution": values[b.GetIdx()]}
                for b in self.molecules[i].GetBonds()]

    # ------------------------------------------------------------------ whole-batch columns
    def _ordered_starts(self, name: str) -> list[int] | None:
        """Start row of every molecule in input ``name`` when the rows are grouped by molecule in
        order (always, for results of the adapters); ``None`` otherwise."""
        ordered, starts, _ = self._bounds(name)
        return starts if ordered else None

    def atom_columns(self, target=None) -> dict[str, np.ndarray | list]:
        """Every atom of every molecule as columns of equal length, molecule by molecule (processed
        atom order): ``molecule``, ``atom`` (input atom index), ``element`` (a list of symbols),
        ``atom_score`` (complete score) and ``feature_attribution`` (feature-only view) -- numpy
        arrays but for ``element``. The same numbers as :meth:`to_atoms` for each molecule,
        computed for the whole batch at once."""
        starts = self._ordered_starts(ATOMS)
        link_starts = self._ordered_starts(self.link_name)
        molecules = self.molecules
        counts = [m.GetNumAtoms() for m in molecules]
        if starts is None or link_starts is None or sum(counts) != self.attributions[ATOMS].shape[0]:
            parts = [self.to_atoms(i, target) for i in range(self.n_examples)]
            return {"molecule": np.array([i for i, part in enumerate(parts) for _ in part], dtype=np.int64),
                    "atom": np.array([a["index"] for part in parts for a in part], dtype=np.int64),
                    "element": [a["symbol"] for part in parts for a in part],
                    "atom_score": np.array([a["atom_score"] for part in parts for a in part], dtype=np.float64),
                    "feature_attribution": np.array([a["feature_attribution"] for part in parts for a in part],
                                                    dtype=np.float64)}
        features = self._task_column(self.attributions[ATOMS].sum(1), target)
        links = self._task_column(self.attributions[self.link_name].sum(1), target)
        index, _ = self._link_table()
        link_segments = (self.segments or {})[self.link_name]
        offsets = torch.tensor(starts, dtype=torch.long, device=index.device)[link_segments.to(index.device)]
        ends = (index + offsets).to(features.device)
        half = 0.5 * links
        complete = features.index_add(0, ends[0], half).index_add(0, ends[1], half)
        molecule = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        source: list[int] = []
        element: list[str] = []
        for i, mol in enumerate(molecules):
            source += self.input_atoms(i)
            get = mol.GetAtomWithIdx
            element += [get(k).GetSymbol() for k in range(counts[i])]
        return {"molecule": molecule, "atom": np.array(source, dtype=np.int64), "element": element,
                "atom_score": complete.detach().double().cpu().numpy(),
                "feature_attribution": features.detach().double().cpu().numpy()}

    def bond_columns(self, target=None) -> dict[str, np.ndarray | list]:
        """Every bond of every molecule as columns, molecule by molecule: ``molecule``, ``bond``,
        ``begin``, ``end`` (input numbering), ``bond_type`` (a list of names) and ``attribution``
        -- numpy arrays but for ``bond_type``; the numbers of :meth:`to_bonds` for the whole batch
        at once."""
        link_starts = self._ordered_starts(self.link_name)
        molecules = self.molecules
        counts = [m.GetNumBonds() for m in molecules]
        if link_starts is None:
            parts = [self.to_bonds(i, target) for i in range(self.n_examples)]
            columns: dict[str, np.ndarray | list] = {
                "molecule": np.array([i for i, part in enumerate(parts) for _ in part], dtype=np.int64)}
            for key in ("bond", "begin", "end", "bond_type", "attribution"):
                found = [b[key] for part in parts for b in part]
                columns[key] = found if key == "bond_type" else np.array(
                    found, dtype=np.float64 if key == "attribution" else np.int64)
            return columns
        links = self._task_column(self.attributions[self.link_name].sum(1), target)
        _, bond = self._link_table()
        firsts = torch.tensor([0, *counts], dtype=torch.long).cumsum(0)[:-1].to(bond.device)
        global_bond = bond + firsts[(self.segments or {})[self.link_name].to(bond.device)]
        keep = (bond >= 0).to(links.device)
        values = links.new_zeros(sum(counts)).index_add_(0, global_bond.to(links.device)[keep], links[keep])
        bond_ids: list[int] = []
        begin: list[int] = []
        end: list[int] = []
        kinds: list[str] = []
        for i, mol in enumerate(molecules):
            source, bond_source = self.input_atoms(i), self.input_bonds(i)
            get = mol.GetBondWithIdx
            for k in range(counts[i]):
                b = get(k)
                bond_ids.append(bond_source[k])
                begin.append(source[b.GetBeginAtomIdx()])
                end.append(source[b.GetEndAtomIdx()])
                kinds.append(_bond_type_name(b.GetBondType()))
        return {"molecule": np.repeat(np.arange(len(counts), dtype=np.int64), counts),
                "bond": np.array(bond_ids, dtype=np.int64), "begin": np.array(begin, dtype=np.int64),
                "end": np.array(end, dtype=np.int64), "bond_type": kinds,
                "attribution": values.detach().double().cpu().numpy()}

    def _head(self, i: int) -> dict:
        head = {"molecule": i, "row": self.rows[i]}
        if self.ids is not None:
            head["id"] = self.ids[i]
        head["smiles"] = self.smiles[i]
        return head

    def row_notes(self, i: int) -> str:
        """All notes of molecule ``i`` in one line (atoms left out, RDKit, featurizer, baseline)."""
        notes = list(self.notes[i]) if i < len(self.notes) else []
        if i < len(self.baseline_warnings) and self.baseline_warnings[i]:
            notes.append(self.baseline_warnings[i])
        return "; ".join(notes)

    def table(self, level: str = "molecule", target=None) -> list[dict]:
        """Rows over all molecules: ``level="molecule"`` (scores F(x) and F(x'), totals, gap),
        ``"atom"`` (both atom numbers), ``"bond"`` or ``"pair"``. Every line carries the input
        ``row`` (and ``id`` when given), the SMILES and the molecule's notes."""
        if level not in LEVELS:
            raise InputError(f"expected level in {list(LEVELS)}; got {level!r}")
        if level in ("atom", "bond"):
            columns = self._level_columns(level, target)
            names = list(columns)
            return [dict(zip(names, values)) for values in zip(*columns.values())]
        out = []
        # per-example quantities computed once (each is a sum over the whole batch)
        totals = (self.forward_x, self.forward_baseline, self.delta, self.relative_gap) if level == "molecule" \
            else None
        for i in range(self.n_examples):
            head, notes = self._head(i), self.row_notes(i)
            if totals is not None:
                out.append({**head, **self._molecule_totals(i, target, totals), "notes": notes})
                continue
            items = {"atom": self.to_atoms, "bond": self.to_bonds, "pair": self.pair_list}[level](i, target)
            if level == "atom":
                items = [{"atom": a["index"], **{k: v for k, v in a.items() if k != "index"}} for a in items]
            out.extend({**head, **item, "notes": notes} for item in items)
        return out

    def to_dataframe(self, level: str = "molecule", target=None):
        """:meth:`table` as a ``pandas.DataFrame`` (needs pandas). Every line has the input ``row``
        (and ``id`` where given)."""
        pandas = require("pandas", "pandas")
        if level in ("atom", "bond") and self.n_examples:
            return pandas.DataFrame(self._level_columns(level, target))
        rows = self.table(level, target)
        if rows:
            return pandas.DataFrame(rows)
        columns = ["molecule", "row"] + (["id"] if self.ids is not None else []) + ["smiles", "notes"]
        return pandas.DataFrame(columns=columns)

    def _level_columns(self, level: str, target) -> dict[str, list]:
        """The columns of :meth:`table` at ``level`` "atom" or "bond", in its order of keys (lists
        of Python numbers)."""
        if level == "atom":
            found = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.atom_columns(target).items()}
            parts = {"atom": found["atom"], "symbol": found["element"], "attribution": found["atom_score"],
                     "atom_score": found["atom_score"], "feature_attribution": found["feature_attribution"]}
        else:
            found = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.bond_columns(target).items()}
            parts = {key: found[key] for key in ("bond", "begin", "end", "bond_type", "attribution")}
        molecule = found["molecule"]
        heads = [self._head(i) for i in range(self.n_examples)]
        notes = [self.row_notes(i) for i in range(self.n_examples)]
        columns: dict[str, list] = {key: [heads[i][key] for i in molecule] for key in (heads[0] if heads else {})}
        columns.update(parts)
        columns["notes"] = [notes[i] for i in molecule]
        return columns

    def _molecule_totals(self, i: int, target, totals=None) -> dict:
        def pick(t):
            return float(self._task_column(t[i], target))

        fx, fb, difference, relative = totals if totals is not None else \
            (self.forward_x, self.forward_baseline, self.delta, self.relative_gap)
        atoms = float(self.atom_feature_values(i, target).sum())
        links = float(self.link_values(i, target).sum())
        delta = pick(difference)
        return {"score": pick(fx), "baseline_score": pick(fb), "difference": delta,
                "atoms": atoms, self.link_name: links, "gap": atoms + links - delta,
                "relative_gap": pick(relative),
                "baseline_warning": self.baseline_warnings[i] if i < len(self.baseline_warnings) else ""}

    # ------------------------------------------------------------------ storage
    def to(self, device) -> MoleculeAttribution:
        moved = cast(MoleculeAttribution, super().to(device))
        index, bond = self._link_table()
        return dataclasses.replace(moved, link_index=index.to(device), link_bond=bond.to(device))


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
            if self.fixed_links is None:
                raise InputError(f"expected the {self.link_name!r} input or fixed link features; got neither")
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


def _card(model) -> dict | None:
    card = getattr(model, "card", None)
    return card if isinstance(card, dict) else None


def _default_featurizer(model):
    card = _card(model)
    if card is not None and isinstance(card.get("featurizer"), dict):
        return featurizer_from_spec(card["featurizer"])
    if isinstance(model, WeaveModel):
        for feat in (SimpleWeaveFeaturizer(), WeaveFeaturizer()):
            if (feat.n_atom_features, feat.n_pair_features) == (model.n_atom_features, model.n_pair_features):
                return feat
        raise InputError(f"expected featurizer= for a WeaveModel with {model.n_atom_features} atom and "
                         f"{model.n_pair_features} pair features (no built-in featurizer has these widths)")
    return PyGFeaturizer()


def decision_threshold(model) -> float | None:
    """The score at which a classifier's decision flips, from its card: 0 for a logit, 0.5 for a
    probability; ``None`` for a regression or a model without a card."""
    card = _card(model)
    if card is None:
        return None
    if isinstance(card.get("decision_threshold"), (int, float)):
        return float(card["decision_threshold"])
    task = card.get("task")
    kind = str(task.get("kind", "")).lower() if isinstance(task, dict) else ""
    if "classification" not in kind:
        return None
    return 0.0 if "logit" in kind else 0.5 if "probabilit" in kind else None


def _uses_links(model, graph: MoleculeGraph, dtype, device) -> bool:
    """Whether a PyG model's output depends differentiably on ``edge_attr`` (one probe forward)."""
    with model_as_found(model), torch.enable_grad():
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

    @property
    def n(self) -> int:
        return int(self.atom_segments.max()) + 1 if self.atom_segments.numel() else 0


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


def _segment_mean(rows: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
    """Every row replaced by the mean row of its molecule."""
    if rows.shape[0] == 0:
        return rows.clone()
    sums = rows.new_zeros((n,) + tuple(rows.shape[1:])).index_add_(0, segments, rows)
    counts = torch.bincount(segments, minlength=n).clamp(min=1).to(rows.dtype)
    return (sums / counts.reshape((-1,) + (1,) * (rows.dim() - 1)))[segments]


#: Baseline names of the chemistry adapter (besides engine specs: numbers, tensors, callables, dicts).
BASELINE_NAMES = ("zeros", "dummy", "skeleton", "mean")


def _baselines(baseline, featurizer, link_name: str, data: _Union) -> dict:
    """One baseline spec -> ``{"atoms": spec, link_name: spec}`` of engine specs.

    Names are per molecule, so a molecule's baseline never depends on the rest of the batch:
    ``"mean"`` is the molecule's own mean atom row (and mean link row)."""
    if isinstance(baseline, str) and baseline == "dummy":
        if featurizer is None or not hasattr(featurizer, "dummy_atoms"):
            raise InputError("expected featurizer= with baselines='dummy' (the dummy atom comes from it)")
        return {ATOMS: featurizer.dummy_atoms(data.atoms), link_name: featurizer.dummy_links(data.links)}
    if isinstance(baseline, str) and baseline == "skeleton":
        if featurizer is None or not hasattr(featurizer, "skeleton_atoms"):
            raise InputError("expected featurizer= with baselines='skeleton' (the skeleton comes from its columns)")
        return {ATOMS: featurizer.skeleton_atoms(data.atoms), link_name: featurizer.skeleton_links(data.links)}
    if isinstance(baseline, str) and baseline == "mean":
        n = data.n
        return {ATOMS: _segment_mean(data.atoms, data.atom_segments, n),
                link_name: _segment_mean(data.links, data.link_segments, n)}
    if isinstance(baseline, str) and baseline not in ("zeros",):
        raise InputError(f"expected baselines among {list(BASELINE_NAMES)} for molecules (or a number, a tensor, "
                         f"a dict per input, a list of baselines, ReferenceBaselines or neutral_baseline(...)."
                         f"baselines); got {baseline!r}")
    if isinstance(baseline, Mapping):
        unknown = set(baseline) - {ATOMS, link_name}
        if unknown:
            raise InputError(f"expected baselines keys among {[ATOMS, link_name]}; got {sorted(unknown)}")
        return dict(baseline)
    return {ATOMS: baseline, link_name: baseline}


def _resolved(spec: dict, data: _Union, link_name: str) -> dict[str, torch.Tensor]:
    """Baseline tensors for every row of the union."""
    return {ATOMS: resolve_baseline(spec.get(ATOMS), data.atoms, ATOMS),
            link_name: resolve_baseline(spec.get(link_name), data.links, link_name)}


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

    ``sciattr.attribute(r.forward, r.inputs, segments=r.segments)`` (or any diagnostic taking a
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

    def scores(self, model, atoms: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
        """Model output ``(n_molecules, T)`` on the union with the given atom and link feature rows
        (e.g. baseline rows), without gradients; the model is left as found."""
        data, convention = self.data, self.forward.convention
        with model_as_found(model), torch.no_grad():
            if convention == "weave":
                out = model(atoms, links, data.link_index_global, data.atom_segments, data.n)
            else:
                out = model(atoms, data.link_index_global, links, data.atom_segments)
        out = model_output_tensor(out)
        return out.reshape(out.shape[0], -1)


def ragged_graphs(model: Callable, graphs: Sequence[MoleculeGraph], *,
                  attribute_links: bool | None = None) -> RaggedGraphs:
    """The disjoint union of ``graphs`` as engine inputs for ``model`` (see :class:`RaggedGraphs`).

    ``attribute_links=None``: pair features are attributed; edge features when the model's output
    depends on ``edge_attr`` (probed once on one molecule). Molecules without any pair or edge
    (one heavy atom) have nothing to attribute there; when no molecule has one, the (empty) link
    table is held fixed.
    """
    kind = _check_graphs(graphs)
    link_name = _LINK_NAMES[kind]
    convention = "weave" if kind == "pairs" else "pyg"
    dtype, device = _dtype_device(model)
    data = _union(graphs, dtype, device)
    if data.links.shape[0] == 0:
        attribute_links = False
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


# ---------------------------------------------------------------------------------------- engine
def _run_engine(forward, inputs, *, target, settings: Settings, segments, example_names):
    """The one place the engine is called."""
    return _engine.attribute(forward, inputs, target=target, settings=settings, segments=segments,
                             example_names=example_names)


def _pop_domain_options(options: dict, names: tuple[str, ...]) -> dict:
    return {k: options.pop(k) for k in names if k in options}


def _replicate(graphs: Sequence[MoleculeGraph], K: int) -> list[MoleculeGraph]:
    return [g for g in graphs for _ in range(K)]


def _replica_rows(segments: torch.Tensor, n_rows_orig: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the rows of a union of K copies of every graph (graph-major): the sample ``k`` of each row
    and its row in the union of the original graphs."""
    example = segments // K
    k = segments % K
    sizes = torch.bincount(segments, minlength=int(n_rows_orig.shape[0]) * K)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(segments.shape[0], device=segments.device) - starts[segments]
    offsets = torch.cumsum(n_rows_orig, 0) - n_rows_orig
    return k, offsets.to(segments.device)[example] + rank


def _sample_list(specs, graphs, featurizer, link_name, data) -> list[dict[str, torch.Tensor]]:
    """K baseline specs (or a sampler) -> K dicts of baseline tensors over the original union."""
    if hasattr(specs, "sample"):
        specs = specs.sample(graphs, data=data, link_name=link_name, featurizer=featurizer)
    specs = list(specs)
    if not specs:
        raise InputError("baselines must not be an empty list; give at least one baseline")
    return [_resolved(_baselines(spec, featurizer, link_name, data), data, link_name) for spec in specs]


def _expected_gradients(model, graphs, specs, featurizer, attribute_links, target, s: Settings, names):
    """Integrated gradients averaged over K baselines per molecule (expected gradients)."""
    n = len(graphs)
    probe = ragged_graphs(model, graphs, attribute_links=attribute_links)
    link_name, data = probe.link_name, probe.data
    sampled = _sample_list(specs, graphs, featurizer, link_name, data)
    K = len(sampled)
    ragged = ragged_graphs(model, _replicate(graphs, K), attribute_links=probe.links_attributed)
    bases = {}
    for name, segs, orig in ((ATOMS, ragged.data.atom_segments, torch.tensor([g.n_atoms for g in graphs])),
                             (link_name, ragged.data.link_segments, torch.tensor([g.n_links for g in graphs]))):
        if name not in ragged.inputs:
            continue
        k, rows = _replica_rows(segs, orig, K)
        stacked = torch.stack([b[name] for b in sampled])  # (K, rows, F)
        bases[name] = stacked[k, rows]
    labels = [f"{names[i]} (baseline {k})" for i in range(n) for k in range(K)]
    if isinstance(target, torch.Tensor) and target.dim() >= 1 and target.shape[0] == n:
        target = target.repeat_interleave(K, 0)  # one entry per example: each (molecule, baseline) gets its own
    elif isinstance(target, (list, tuple)) and len(target) == n:
        target = [t for t in target for _ in range(K)]
    res = _run_engine(ragged.forward, ragged.inputs, target=target, settings=s.replace(baselines=bases),
                      segments=ragged.segments, example_names=labels)
    out_attr, out_base = {}, {}
    for name in res.attributions:
        segs = ragged.segments[name]
        orig = torch.tensor([g.n_atoms if name == ATOMS else g.n_links for g in graphs])
        _, rows = _replica_rows(segs, orig, K)
        a = res.attributions[name]
        x = data.atoms if name == ATOMS else data.links
        out_attr[name] = a.new_zeros((x.shape[0],) + tuple(a.shape[1:])).index_add_(0, rows, a) / K
        b = res.baselines[name]
        out_base[name] = b.new_zeros(x.shape).index_add_(0, rows, b) / K

    def grouped(t):
        return None if t is None else t.reshape((n, K) + tuple(t.shape[1:]))

    per_baseline_rel = grouped(res.relative_gap.detach().cpu())
    crit = res.criterion or []
    criterion = None if not crit else [
        c[0] if len(set(c)) == 1 else ("" if "" in c else "scale") for c in (crit[i * K:(i + 1) * K] for i in range(n))]
    averaged = dataclasses.replace(
        res,
        attributions=out_attr,
        inputs={ATOMS: data.atoms, **({link_name: data.links} if link_name in out_attr else {})},
        baselines=out_base,
        forward_x=grouped(res.forward_x)[:, 0],
        forward_baseline=grouped(res.forward_baseline).mean(1),
        steps=grouped(res.steps).max(1).values,
        evaluations=None if res.evaluations is None else grouped(res.evaluations).sum(1),
        converged=None if res.converged is None else grouped(res.converged).all(1),
        criterion=criterion,
        error_estimate=None if res.error_estimate is None else grouped(res.error_estimate).max(1).values,
        segments={ATOMS: data.atom_segments, **({link_name: data.link_segments} if link_name in out_attr else {})},
        path=None,
        meta={**res.meta, "baseline_samples": K, "baseline_scores": grouped(res.forward_baseline).tolist(),
              "baseline_relative_gaps": per_baseline_rel.tolist()},
    )
    return averaged, probe


# ---------------------------------------------------------------------------------------- entry points
_GRAPH_OPTIONS = ("attribute_links", "rows", "errors", "ids", "decision_threshold", "notes", "group_check")


def explain_graphs(model: Callable, graphs: Sequence[MoleculeGraph], *, target=None, settings: Settings | None = None,
                   featurizer=None, **options) -> MoleculeAttribution:
    """Integrated gradients of ``model`` over featurized molecules, all batched together.

    Parameters
    ----------
    model:
        A Weave-convention model (pair graphs) or a PyG-convention model (edge graphs).
    graphs:
        :class:`MoleculeGraph` objects of one kind.
    target:
        An output index, a task name of the model's card, or any target of :func:`sciattr.attribute`.
    settings, **options:
        A :class:`sciattr.Settings` and/or its fields as keywords (``steps``, ``rule``,
        ``tolerance``, ``baselines``, ``batch_size``, ``memory_budget``, ...). ``baselines``:
        ``"zeros"`` (default), ``"dummy"`` or ``"skeleton"`` (need ``featurizer``), ``"mean"`` (per molecule), a
        dict ``{"atoms": ..., link name: ...}``, a list of such baselines or a
        :class:`~sciattr.chem.baselines.ReferenceBaselines` (expected gradients).
    featurizer:
        The featurizer of ``graphs`` (for ``"dummy"`` baselines and feature names).
    attribute_links:
        Attribute the pair/edge features as well as the atoms. ``None``: yes for pair graphs; for
        edge graphs, yes when the model's output depends on ``edge_attr`` (probed once).
    decision_threshold:
        The score where a classifier's decision flips (default from the model card; ``None`` for
        none), used by the baseline check.
    group_check:
        ``True`` (default): for a single-target classifier, delete each group of
        :data:`sciattr.chem.deletion.CHECKED_GROUPS` a molecule has (halogens, nitro, carbonyl,
        ...) where its attribution could disagree with the prediction, and rescore those molecules
        (one more forward, of the deleted molecules); where the deletion takes the score across
        the decision threshold but the group's attribution is 0 or of the other sign, the row gets
        a note and a ``BaselineWarning`` (the baseline hides that group's part). ``False``: skip.
    rows, errors, ids:
        Bookkeeping of :func:`explain_molecules` (input row of each graph, bad rows, identifiers).

    Returns
    -------
    MoleculeAttribution
        ``attributions["atoms"] (N, F_atom[, T])`` and ``attributions["pairs"|"edges"] (L, F_link[, T])``.
    """
    check_keywords(options)
    extra = _pop_domain_options(options, _GRAPH_OPTIONS)
    if not isinstance(extra.get("group_check", True), bool):
        raise InputError(f"expected group_check=True or False; got {describe(extra['group_check'])}")
    s = resolve_settings(settings, options)
    kind = _check_graphs(graphs)
    n = len(graphs)
    rows = list(range(n)) if extra.get("rows") is None else list(extra["rows"])
    names = [f"row {r}" for r in rows]
    _check_widths(model, graphs[0], featurizer)
    names_t = task_names(_card(model))
    target = target_index(target, names_t)
    spec = s.baselines
    many = isinstance(spec, (list, tuple)) or hasattr(spec, "sample")
    if many:
        res, ragged = _expected_gradients(model, graphs, spec, featurizer, extra.get("attribute_links"), target, s,
                                          names)
        baseline_label = f"{len(res.meta['baseline_scores'][0])} sampled baselines (expected gradients)"
    else:
        ragged = ragged_graphs(model, graphs, attribute_links=extra.get("attribute_links"))
        bases = _baselines("zeros" if spec is None else spec, featurizer, ragged.link_name, ragged.data)
        if not ragged.links_attributed:
            bases.pop(ragged.link_name, None)
        res = _run_engine(ragged.forward, ragged.inputs, target=target, settings=s.replace(baselines=bases),
                          segments=ragged.segments, example_names=names)
        baseline_label = spec if isinstance(spec, str) else "zeros" if spec is None else "custom"
    data, link_name = ragged.data, ragged.link_name
    if not ragged.links_attributed:
        res = _with_fixed_links(res, link_name, data)
    res.meta.update({"links_attributed": ragged.links_attributed, "convention": ragged.forward.convention,
                     "baseline": baseline_label, "receptive_radius": receptive_radius(model), "kind": kind})
    threshold = extra["decision_threshold"] if "decision_threshold" in extra else decision_threshold(model)
    res.meta["decision_threshold"] = threshold
    result = res.specialize(
        MoleculeAttribution, molecules=[g.mol for g in graphs], smiles=[g.smiles for g in graphs],
        rows=rows, errors=list(extra.get("errors") or []), notes=[tuple(g.notes) for g in graphs],
        link_name=link_name, link_index=data.link_index_local, link_bond=data.link_bond,
        atom_feature_names=_names_of(featurizer, "atom_feature_names"),
        link_feature_names=_names_of(featurizer, "link_feature_names"),
        source_atoms=[g.source_atoms for g in graphs], source_bonds=[source_bonds(g.mol) for g in graphs],
        ids=None if extra.get("ids") is None else list(extra["ids"]), target_names=names_t,
        baseline_warnings=[""] * n,
    )
    _check_baselines(result, model, ragged, featurizer, spec, target, threshold,
                     group_check=extra.get("group_check", True))
    return result


def _check_widths(model, graph: MoleculeGraph, featurizer) -> None:
    """One forward of one molecule: a model that cannot take the featurizer's widths is said to be so
    (naming both) before any work, instead of failing deep inside a batched forward."""
    if isinstance(model, WeaveModel) or (isinstance(model, torch.nn.Module) and model.training):
        return  # a WeaveModel checks its own widths; a model in training mode may need the whole batch (batch norm)
    dtype, device = _dtype_device(model)
    atoms = graph.atoms.to(device=device, dtype=dtype)
    links = graph.links.to(device=device, dtype=dtype)
    index = graph.link_index.to(device)
    batch = torch.zeros(graph.n_atoms, dtype=torch.long, device=device)
    try:
        with model_as_found(model), torch.no_grad():
            if graph.kind == "pairs":
                model(atoms, links, index, batch, 1)
            else:
                model(atoms, index, links, batch)
    except (RuntimeError, ValueError, IndexError) as exc:  # a shape mismatch inside the model
        where = f" from {type(featurizer).__name__}" if featurizer is not None else ""
        raise InputError(f"expected a model that takes atom features of width {graph.atoms.shape[1]} and "
                         f"{graph.kind[:-1]} features of width {graph.links.shape[1]}{where}; calling it on "
                         f"{graph.smiles!r} failed: {' '.join(str(exc).split())[:300]} (pass the featurizer= the "
                         f"model was trained with, or load it with its card)") from None


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
        segments={**(res.segments or {}), link_name: data.link_segments},
        meta=dict(res.meta),
    )


# ---------------------------------------------------------------------------------------- baseline checks
def _column(values: torch.Tensor, result: MoleculeAttribution, target) -> torch.Tensor:
    """The explained column of per-example values ``(n,)`` or ``(n, T)``."""
    values = values.detach().double().cpu()
    if values.dim() == 1:
        return values
    if result.multi_target:
        return values  # every attributed target is checked
    return values[:, 0]


def _other_baselines(featurizer, spec) -> str:
    """What to try instead of a baseline that is not neutral: the skeleton where the featurizer has
    one (and it is not the baseline already), the neutral search, expected gradients."""
    skeleton = getattr(featurizer, "has_skeleton", False) and not (isinstance(spec, str) and spec == "skeleton")
    return (("baselines='skeleton' (the molecule's saturated carbon skeleton), " if skeleton else "")
            + "baselines=neutral_baseline(model, molecules).baselines or expected gradients over reference "
              "molecules (ReferenceBaselines)")


#: The kind of baseline note that :func:`sciattr.chem.deletion.group_notes` gives.
_GROUP_KIND = "a group that decides the prediction is credited against it"


def _check_baselines(result: MoleculeAttribution, model, ragged: RaggedGraphs, featurizer, spec, target,
                     threshold, group_check: bool = True) -> None:
    """Per-molecule notes (and one warning per kind) when the baseline is not neutral for the
    target, or (``group_check``) hides the part of a group that decides the prediction."""
    fx = _column(result.forward_x, result, target)
    fb = _column(result.forward_baseline, result, target)
    delta = fx - fb
    scale = torch.maximum(delta.abs(), _column(result.attribution_scale() if callable(result.attribution_scale)
                                               else result.attribution_scale, result, target))
    kinds: dict[str, list[int]] = {}
    texts: list[list[str]] = [[] for _ in range(result.n_examples)]
    advice = _other_baselines(featurizer, spec)
    for i in range(result.n_examples):
        x, b, d, sc = fx[i].reshape(-1), fb[i].reshape(-1), delta[i].reshape(-1), scale[i].reshape(-1)
        for t in range(x.shape[0]):
            which = f" (target {t})" if x.shape[0] > 1 else ""
            same_side = threshold is not None and float((x[t] - threshold) * (b[t] - threshold)) > 0 \
                and abs(float(b[t]) - threshold) > AT_THRESHOLD * abs(float(d[t]))
            if same_side:
                side = "above" if float(x[t]) > threshold else "below"
                texts[i].append(
                    f"baseline not neutral{which}: F(x') = {float(b[t]):.4g} is {side} the decision threshold "
                    f"{threshold:g} like F(x) = {float(x[t]):.4g}, so the attributions explain the difference "
                    f"between two predictions of the same class; try {advice}")
                kinds.setdefault("same side of the decision threshold", []).append(result.rows[i])
            elif float(sc[t]) > 0 and abs(float(d[t])) < SMALL_DIFFERENCE * float(sc[t]):
                texts[i].append(
                    f"baseline not neutral{which}: |F(x) - F(x')| = {abs(float(d[t])):.3g} is small against the "
                    f"attributions' scale {float(sc[t]):.3g} (large attributions cancel); try {advice}")
                kinds.setdefault("F(x) close to F(x')", []).append(result.rows[i])
    if isinstance(spec, str) and spec == "dummy":
        zeros = ragged.scores(model, torch.zeros_like(ragged.data.atoms), torch.zeros_like(ragged.data.links))
        dummy = ragged.scores(model, featurizer.dummy_atoms(ragged.data.atoms),
                              featurizer.dummy_links(ragged.data.links))
        fz, fd = _pick(zeros, target, result), _pick(dummy, target, result)
        if fz is not None and fd is not None:
            for i in range(result.n_examples):
                gap, reach = float((fd[i] - fz[i]).abs().max()), float((fx[i].reshape(-1) - fz[i]).abs().max())
                if gap <= DUMMY_LIKE_ZEROS * max(reach, 1e-12):
                    texts[i].append(
                        f"the model cannot tell the dummy baseline from zeros (|F(dummy) - F(zeros)| = {gap:.2g}): "
                        f"its unknown-element/bond columns carry almost no weight, so 'dummy' behaves like 'zeros'")
                    kinds.setdefault("dummy indistinguishable from zeros", []).append(result.rows[i])
            result.meta["zeros_score"] = fz.tolist()
    group_texts: set[str] = set()
    if group_check:
        from sciattr.chem.deletion import group_notes  # the deletion check builds on this module

        for i, note in enumerate(group_notes(model, result, featurizer, target, threshold, advice)):
            if note:
                texts[i].append(note)
                group_texts.add(note)
                kinds.setdefault(_GROUP_KIND, []).append(result.rows[i])
    result.baseline_warnings[:] = ["; ".join(t) for t in texts]
    for what, rows in kinds.items():
        rows = list(dict.fromkeys(rows))  # a row found for several targets is named once
        shown = ", ".join(str(r) for r in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        said = texts[result.rows.index(rows[0])]
        first = next((t for t in said if (what == _GROUP_KIND) == (t in group_texts)), said[0])
        lead = "baseline hides a group" if what == _GROUP_KIND else f"baseline not neutral ({what})"
        warnings.warn(f"{lead} for input row(s) {shown}: {first}", BaselineWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside sciattr, seen from the function that warns."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("sciattr."):
        frame, level = frame.f_back, level + 1
    return level


def _pick(scores: torch.Tensor, target, result) -> torch.Tensor | None:
    """The target column(s) of a raw model output ``(n, T)`` (``None`` for targets not given by index)."""
    scores = scores.detach().double().cpu()
    if target is None:
        return scores if scores.shape[1] > 1 else scores[:, 0]
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return scores[:, int(target)]
    if isinstance(target, (list, tuple)) and all(isinstance(t, int) for t in target):
        return scores[:, list(target)]
    return None


def explain_molecules(model: Callable, molecules, *, featurizer=None, target=None, settings: Settings | None = None,
                      **options) -> MoleculeAttribution:
    """Attribute a molecular model's predictions to atoms, atom pairs and bonds.

    Parameters
    ----------
    model:
        A :class:`~sciattr.chem.weave.WeaveModel` (or any model with its calling convention) or a
        PyG model ``model(x, edge_index, edge_attr, batch)``; a model from
        :func:`sciattr.zoo.load_model` brings its card (featurizer, task names, threshold).
    molecules:
        SMILES strings and/or RDKit molecules: a list, tuple, numpy array or pandas Series (rows
        are positions; a Series' index becomes ``ids`` unless it is 0..n-1), e.g. from
        :func:`~sciattr.chem.load_sdf` (unreadable records are reported with RDKit's reason).
    featurizer:
        Default: the model card's featurizer; else the built-in Weave featurizer matching a
        WeaveModel's input widths, and :class:`~sciattr.chem.featurize.PyGFeaturizer` for others.
    target:
        An output index or a task name from the model card.
    settings, **options:
        A :class:`sciattr.Settings` and/or its fields as keywords; also ``attribute_links``,
        ``decision_threshold`` and ``ids`` (an identifier per input row) as in :func:`explain_graphs`.

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
    check_keywords(options)
    for key in ("rows", "errors", "notes"):
        if key in options:
            raise InputError(f"unknown option {key!r} for explain_molecules")
    ids = options.pop("ids", None)
    if ids is None and hasattr(molecules, "iloc") and hasattr(molecules, "index"):
        index = list(molecules.index)
        if index != list(range(len(index))):
            ids = index
    items = as_items(molecules)
    if ids is not None:
        ids = list(ids)
        if len(ids) != len(items):
            raise InputError(f"expected one id per input row ({len(items)}); got {len(ids)}")
    if settings is not None or options:
        probe = dict(options)
        _pop_domain_options(probe, _GRAPH_OPTIONS)
        resolve_settings(settings, probe)  # bad options fail before any molecule is featurized
    featurizer = _default_featurizer(model) if featurizer is None else featurizer
    graphs, rows, errors = featurize_batch(featurizer, items)
    if not graphs:
        listed = "; ".join(f"row {e['row']}: {e['message']}" for e in errors[:5])
        raise InputError(f"expected at least one valid molecule; got none of {len(errors)} ({listed})")
    return explain_graphs(model, graphs, target=target, settings=settings, featurizer=featurizer, rows=rows,
                          errors=errors, ids=None if ids is None else [ids[r] for r in rows], **options)
