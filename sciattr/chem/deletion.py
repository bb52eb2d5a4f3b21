"""Does the attribution agree with deleting the group? A check against the model itself.

Integrated gradients credit a group of atoms relative to the baseline. A chemist's own test of
"does this group matter" is to take it out. :func:`deletion_check` does both for every molecule
of a :class:`~sciattr.chem.MoleculeAttribution` that contains a SMARTS pattern: it removes every
atom matched by the pattern (all matches, from the kekulized molecule; the neighbours get
hydrogens for the bonds they lose; what is left of a ring becomes a chain; the remainder is
scored as it is, in several fragments if the deletion split it), scores that
molecule with the same model, and puts the score's drop next to the group's attribution (the
complete atom scores of the matched atoms summed, as ``to_atoms`` gives them).

The two answer different questions -- the attribution compares the molecule with the baseline,
the deletion with the molecule lacking the group -- so they need not be equal. What should worry
a reader is a group the model *needs* (deleting it takes the score across the decision
threshold) that the attribution credits with nothing or less (:attr:`DeletionReport.missed`): a
network can implement "A AND B" as "A, minus a penalty when B is absent", and from an all-zero
baseline, where the penalty is off too, B then gets no credit. Compare two baselines by running
the check on both results.

Public API
----------
``deletion_check(model, result, smarts, *, featurizer=None, target=None, threshold=None)``
    -> :class:`DeletionReport` (one :class:`DeletionCheck` per molecule with a match).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sciattr.chem._vocabulary import target_index
from sciattr.chem.accounting import group_total
from sciattr.chem.adapter import MoleculeAttribution, _default_featurizer, decision_threshold
from sciattr.chem.featurize import Chem, collate
from sciattr.errors import InputError, SciAttrError, describe

__all__ = ["DeletionCheck", "DeletionReport", "deletion_check"]


@dataclass(frozen=True)
class DeletionCheck:
    """One molecule: the group's attribution next to the score without the group.

    ``atoms`` are input atom indices (those of ``to_atoms``); ``deleted_score`` is ``nan`` (and
    ``note`` says why) when the molecule without the group could not be made or featurized.
    """

    molecule: int
    row: int
    atoms: tuple[int, ...]
    attribution: float
    score: float
    deleted_score: float
    deleted_smiles: str
    note: str = ""

    @property
    def drop(self) -> float:
        """``F(x) - F(x without the group)``: what the model loses when the group is taken out."""
        return self.score - self.deleted_score

    @property
    def agrees(self) -> bool:
        """Whether the attribution and the drop have the same sign (``False`` when the drop is unknown)."""
        return not math.isnan(self.drop) and (self.attribution > 0) == (self.drop > 0)


@dataclass
class DeletionReport:
    """:class:`DeletionCheck` of every molecule that contains ``pattern``.

    ``threshold`` is the decision threshold of the score (from the model card, or given; ``None``
    for a regression), ``skipped`` the result's molecules without a match (by index).
    """

    pattern: str
    checks: list[DeletionCheck]
    threshold: float | None
    skipped: list[int] = field(default_factory=list)

    @property
    def needed(self) -> list[DeletionCheck]:
        """Molecules whose decision the deletion flips: above the threshold with the group, at or
        below it without (empty without a threshold)."""
        t = self.threshold
        return [] if t is None else [c for c in self.checks if c.score > t >= c.deleted_score]

    @property
    def missed(self) -> list[DeletionCheck]:
        """Of :attr:`needed`, those whose group the attribution credits with nothing or less (<= 0)."""
        return [c for c in self.needed if c.attribution <= 0]

    @property
    def failed(self) -> list[DeletionCheck]:
        """Molecules whose version without the group could not be made or featurized (see ``note``)."""
        return [c for c in self.checks if math.isnan(c.deleted_score)]

    def table(self) -> list[dict]:
        """One dict per molecule: row, deleted atoms, attribution, F(x), F(x without), drop, note."""
        return [{"molecule": c.molecule, "row": c.row, "atoms": list(c.atoms), "attribution": c.attribution,
                 "score": c.score, "deleted_score": c.deleted_score, "drop": c.drop, "agrees": c.agrees,
                 "deleted_smiles": c.deleted_smiles, "note": c.note} for c in self.checks]

    def to_dataframe(self):
        """:meth:`table` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.table())

    def summary(self) -> str:
        n = len(self.checks)
        if not n:
            return f"{self.pattern}: no molecule contains it ({len(self.skipped)} without a match)"
        drops = np.array([c.drop for c in self.checks if not math.isnan(c.drop)])
        attr = np.array([c.attribution for c in self.checks])
        lines = [f"{self.pattern}: {n} molecule(s) with a match, {len(self.skipped)} without",
                 f"  attribution of the group: median {np.median(attr):+.3g}; <= 0 in {int((attr <= 0).sum())}"]
        if drops.size:
            lines.append(f"  score drop when it is deleted: median {np.median(drops):+.3g}; "
                         f"same sign as the attribution in {sum(c.agrees for c in self.checks)} of {drops.size}")
        if self.threshold is not None:
            lines.append(f"  deleting it flips the decision (threshold {self.threshold:g}) in {len(self.needed)}; "
                         f"of those the attribution credits it with <= 0 in {len(self.missed)}")
        if self.failed:
            lines.append(f"  {len(self.failed)} could not be made without the group (see note)")
        return "\n".join(lines)


def _without(mol, atoms: Sequence[int]):
    """``mol`` with ``atoms`` (processed indices) removed; each neighbour gains a hydrogen per bond
    order it loses. Returns ``(molecule, note)``; ``molecule`` is ``None`` when RDKit refuses it."""
    doomed = set(atoms)
    mol = Chem.Mol(mol)
    try:  # single and double bonds, no aromatic flags: what is left of a ring is a chain RDKit can read
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except (Chem.rdchem.MolSanitizeException, RuntimeError) as exc:
        return None, f"RDKit could not kekulize the molecule: {exc}"
    rw = Chem.RWMol(mol)
    for a in doomed:
        for bond in mol.GetAtomWithIdx(a).GetBonds():
            other = bond.GetOtherAtomIdx(a)
            if other in doomed:
                continue
            neighbour = rw.GetAtomWithIdx(other)
            order = bond.GetBondTypeAsDouble()
            if neighbour.GetNoImplicit():
                neighbour.SetNumExplicitHs(neighbour.GetNumExplicitHs() + max(1, round(order)))
    for a in sorted(doomed, reverse=True):
        rw.RemoveAtom(a)
    out = rw.GetMol()
    if out.GetNumAtoms() == 0:
        return None, "the group is the whole molecule: nothing is left to score"
    from rdkit import rdBase

    quiet = rdBase.BlockLogs()  # RDKit's reason goes into the note, not onto stderr
    try:
        Chem.SanitizeMol(out)
    except (Chem.rdchem.MolSanitizeException, RuntimeError) as exc:  # valence, kekulization
        return None, f"RDKit could not make the molecule without the group: {exc}"
    finally:
        del quiet
    pieces = len(Chem.GetMolFrags(out))
    return out, (f"deleting the group left {pieces} fragments, scored together" if pieces > 1 else "")


def _scores(model, graphs: list) -> np.ndarray:
    """``(n, outputs)`` scores of featurized molecules in the model's dtype and device."""
    from sciattr.chem.training import _call

    parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    batch = collate(graphs).to(dtype=dtype, device=device)
    with torch.no_grad():
        out = _call(model, graphs[0].kind, batch, batch.atoms, batch.links)
    return out.detach().double().cpu().reshape(len(graphs), -1).numpy()


def deletion_check(model, result: MoleculeAttribution, smarts, *, featurizer=None, target=None,
                   threshold: float | None = None) -> DeletionReport:
    """Put the attribution of a SMARTS group next to the score change when the group is deleted.

    Parameters
    ----------
    model:
        The model ``result`` explains (Weave or PyG calling convention).
    result:
        A :class:`~sciattr.chem.MoleculeAttribution` of ``model`` (any baseline).
    smarts:
        The group: a SMARTS string or query molecule. Every atom of every match is deleted.
    featurizer:
        As in :func:`~sciattr.chem.explain_molecules` (default: the model card's); the molecules
        without the group are featurized with it, keeping all fragments.
    target:
        Output index or task name: the one the result explains (needed for a result of several
        targets, or a single-target result of a model with several outputs).
    threshold:
        Decision threshold of the score; default the model card's (``None``: a regression, no
        :attr:`DeletionReport.needed`).

    Examples
    --------
    >>> from sciattr.zoo import load_model
    >>> from sciattr.chem import explain_molecules
    >>> model = load_model("gcn-halide_carbonyl")
    >>> res = explain_molecules(model, ["O=C(CCl)Nc1ccccc1"], steps=32, rule="gausslegendre")
    >>> check = deletion_check(model, res, "[Cl,Br,I,F]")
    >>> check.checks[0].deleted_smiles, check.checks[0].deleted_score < 0 < check.checks[0].score
    ('CC(=O)Nc1ccccc1', True)
    """
    if not isinstance(result, MoleculeAttribution):
        raise InputError(f"expected a MoleculeAttribution (from explain_molecules); got {describe(result)}")
    pattern = Chem.MolFromSmarts(smarts) if isinstance(smarts, str) else smarts
    if not isinstance(pattern, Chem.Mol):
        raise InputError(f"expected a valid SMARTS pattern; got {smarts!r}")
    label = smarts if isinstance(smarts, str) else Chem.MolToSmarts(pattern)
    featurizer = _default_featurizer(model) if featurizer is None else featurizer
    if threshold is None:
        threshold = result.meta.get("decision_threshold", decision_threshold(model))
    keep_all = replace(featurizer, fragments="all")
    found, skipped = [], []
    for i, mol in enumerate(result.molecules):
        matched = sorted({a for match in mol.GetSubstructMatches(pattern) for a in match})
        if not matched:
            skipped.append(i)
            continue
        source = result.input_atoms(i)
        total = group_total(result, i, [source[a] for a in matched], links="half",
                            target=target if result.multi_target else None)
        deleted, note = _without(mol, matched)
        graph = None
        if deleted is not None:
            try:
                graph = keep_all(deleted)
            except SciAttrError as exc:
                note = f"the molecule without the group could not be featurized: {exc}"
        found.append((i, tuple(source[a] for a in matched), total.total, deleted, graph, note))
    if not found:
        return DeletionReport(pattern=label, checks=[], threshold=threshold, skipped=skipped)
    # the molecules as explained and without the group, through one forward each, in the model's dtype
    originals = _scores(model, [keep_all(result.molecules[i]) for i, *_ in found])
    column = _column(result, target, originals, [i for i, *_ in found])
    graphs = [g for *_, g, _ in found if g is not None]
    scored = iter(_scores(model, graphs)[:, column]) if graphs else iter(())
    checks = []
    for k, (i, atoms, attribution, deleted, graph, note) in enumerate(found):
        checks.append(DeletionCheck(
            molecule=i, row=int(result.rows[i]) if result.rows else i, atoms=atoms, attribution=float(attribution),
            score=float(originals[k, column]), deleted_score=float(next(scored)) if graph is not None else math.nan,
            deleted_smiles=Chem.MolToSmiles(deleted) if deleted is not None else "", note=note))
    return DeletionReport(pattern=label, checks=checks, threshold=threshold, skipped=skipped)


def _column(result: MoleculeAttribution, target, scores: np.ndarray, molecules: list[int]) -> int:
    """The model output the result explains, checked against its F(x): ``target`` (index or task
    name) where given or the result has several targets, else the model's only output."""
    index = target_index(target, tuple(result.target_names))
    if index is None:
        if result.multi_target or scores.shape[1] != 1:
            raise InputError(f"expected target= (an output index or a task name) for a model with {scores.shape[1]} "
                             "outputs; got None")
        index = 0
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < scores.shape[1]:
        raise InputError(f"expected target to be an output index in [0, {scores.shape[1] - 1}] or a task name; "
                         f"got {target!r}")
    fx = result._task_column(result.forward_x, index if result.multi_target else None)
    explained = fx.detach().double().cpu().reshape(-1).numpy()[molecules]
    if not np.allclose(scores[:, index], explained, rtol=1e-3, atol=1e-5):
        worst = int(np.argmax(np.abs(scores[:, index] - explained)))
        raise InputError(f"expected the model that the result explains (output {index}); its score of molecule "
                         f"{molecules[worst]} is {scores[worst, index]:.6g}, the result's F(x) is "
                         f"{explained[worst]:.6g}")
    return index
