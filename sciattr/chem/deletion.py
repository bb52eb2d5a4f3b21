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
``group_notes(model, result, featurizer, target, threshold, advice)``
    The same for every group of :data:`CHECKED_GROUPS` at once, as per-molecule notes: what
    :func:`~sciattr.chem.explain_molecules` runs on every single-target classifier result
    (``group_check=True``). :attr:`~sciattr.chem.training.TrainingRecipe.deletion_consistency`
    trains a network towards attributions that agree with these deletions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from sciattr.chem._vocabulary import target_index
from sciattr.chem.accounting import group_total
from sciattr.chem.adapter import MoleculeAttribution, _default_featurizer, decision_threshold, ragged_graphs
from sciattr.chem.featurize import Chem
from sciattr.datasets.tasks import AMINE, BENZENE, ETHER
from sciattr.errors import InputError, SciAttrError, describe

__all__ = ["CHECKED_GROUPS", "DeletionCheck", "DeletionReport", "deletion_check", "group_notes"]

#: The groups every classifier result is checked on (``group_check=True`` of
#: :func:`~sciattr.chem.explain_molecules`): each SMARTS matches exactly the atoms that are deleted.
CHECKED_GROUPS: dict[str, str] = {
    "halogen": "[F,Cl,Br,I]",
    "nitro group": "[$([NX3](=O)=O),$([NX3+](=O)[O-])]~[OX1]",
    "nitrile": "[CX2]#[NX1]",
    "carbonyl": "[CX3]=[OX1]",
    "hydroxyl oxygen": "[OX2H]",
    "ether oxygen": f"[$({ETHER})]",
    "amine nitrogen": AMINE,
    "benzene ring": BENZENE,
    "sulfonyl": "[SX4](=O)=O",
}


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


def matched_atoms(mol, pattern) -> list[int]:
    """Every atom of every match of the query ``pattern`` in ``mol``, ascending."""
    return sorted({a for match in mol.GetSubstructMatches(pattern) for a in match})


def deleted_graph(mol, atoms: Sequence[int], featurizer):
    """``(molecule without atoms, its graph from featurizer, note)``: the graph is ``None`` (and
    the note says why) when RDKit refuses the molecule or the featurizer cannot take it."""
    deleted, note = _without(mol, atoms)
    graph = None
    if deleted is not None:
        try:
            graph = featurizer(deleted)
        except SciAttrError as exc:
            note = f"the molecule without the group could not be featurized: {exc}"
    return deleted, graph, note


def _scores(model, graphs: list) -> np.ndarray:
    """``(n, outputs)`` scores of featurized molecules, through the adapter's own forward (the
    model's calling convention, dtype and device; the model left as found)."""
    ragged = ragged_graphs(model, graphs, attribute_links=False)
    return ragged.scores(model, ragged.data.atoms, ragged.data.links).detach().double().cpu().numpy()


def deletion_check(model, result: MoleculeAttribution, smarts, *, featurizer=None, target=None,
                   threshold: float | None = None):
    """Put the attribution of a SMARTS group next to the score change when the group is deleted.

    Parameters
    ----------
    model:
        The model ``result`` explains (Weave or PyG calling convention).
    result:
        A :class:`~sciattr.chem.MoleculeAttribution` of ``model`` (any baseline).
    smarts:
        The group: a SMARTS string or query molecule. Every atom of every match is deleted. A dict
        ``{label: smarts}`` checks several groups at once (one forward for all their deletions)
        and returns ``{label: DeletionReport}``.
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
    several = isinstance(smarts, dict)
    patterns = {}
    for label, given in (smarts.items() if several else [(None, smarts)]):
        pattern = Chem.MolFromSmarts(given) if isinstance(given, str) else given
        if not isinstance(pattern, Chem.Mol):
            raise InputError(f"expected a valid SMARTS pattern{f' for {label!r}' if several else ''}; got {given!r}")
        patterns[label if several else given if isinstance(given, str) else Chem.MolToSmarts(pattern)] = pattern
    featurizer = _default_featurizer(model) if featurizer is None else featurizer
    if threshold is None:
        threshold = result.meta.get("decision_threshold", decision_threshold(model))
    reports = _reports(model, result, patterns, featurizer, target, threshold)
    return reports if several else next(iter(reports.values()))


def _reports(model, result: MoleculeAttribution, patterns: dict, featurizer, target, threshold,
             wanted=None) -> dict[str, DeletionReport]:
    """:class:`DeletionReport` of every pattern (label -> query Mol), all deletions scored in one
    forward, next to the molecules as explained (rescored in another, and checked against the
    result's F(x)). ``wanted(i, attribution)``: delete only the groups it accepts (others are left
    out of the reports); then the result's own F(x) stands for the molecules' scores."""
    keep_all = replace(featurizer, fragments="all")
    found: dict[str, list] = {label: [] for label in patterns}
    skipped: dict[str, list[int]] = {label: [] for label in patterns}
    for i, mol in enumerate(result.molecules):
        source = result.input_atoms(i)
        for label, pattern in patterns.items():
            matched = matched_atoms(mol, pattern)
            if not matched:
                skipped[label].append(i)
                continue
            total = group_total(result, i, [source[a] for a in matched], links="half",
                                target=target if result.multi_target else None)
            if wanted is not None and not wanted(i, total.total):
                continue
            deleted, graph, note = deleted_graph(mol, matched, keep_all)
            found[label].append((i, tuple(source[a] for a in matched), total.total, deleted, graph, note))
    molecules = sorted({i for rows in found.values() for i, *_ in rows})
    if not molecules:
        return {label: DeletionReport(pattern=label, checks=[], threshold=threshold, skipped=skipped[label])
                for label in patterns}
    graphs = [g for rows in found.values() for *_, g, _ in rows if g is not None]
    deleted_scores = _scores(model, graphs) if graphs else None
    if wanted is None:  # the molecules as explained, rescored, tell the explained output and check the model
        originals = _scores(model, [keep_all(result.molecules[i]) for i in molecules])
        column = _column(result, target, originals, molecules)
        score_of = dict(zip(molecules, originals[:, column].tolist()))
    else:  # the result's own F(x) of its one target
        column = 0 if target is None else int(target)
        fx = result.forward_x.detach().double().cpu().reshape(result.n_examples, -1)[:, 0]
        score_of = {i: float(fx[i]) for i in molecules}
        if deleted_scores is not None and not 0 <= column < deleted_scores.shape[1]:
            raise InputError(f"expected target to be an output index in [0, {deleted_scores.shape[1] - 1}]; "
                             f"got {target!r}")
    scored = iter(deleted_scores[:, column].tolist()) if deleted_scores is not None else iter(())
    reports = {}
    for label, rows in found.items():
        checks = [DeletionCheck(
            molecule=i, row=int(result.rows[i]) if result.rows else i, atoms=atoms, attribution=float(attribution),
            score=float(score_of[i]), deleted_score=float(next(scored)) if graph is not None else math.nan,
            deleted_smiles=Chem.MolToSmiles(deleted) if deleted is not None else "", note=note)
            for i, atoms, attribution, deleted, graph, note in rows]
        reports[label] = DeletionReport(pattern=label, checks=checks, threshold=threshold, skipped=skipped[label])
    return reports


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


def group_notes(model, result: MoleculeAttribution, featurizer, target, threshold: float | None,
                advice: str) -> list[str]:
    """Per molecule of a single-target classifier result, a note for every group of
    :data:`CHECKED_GROUPS` whose deletion takes the score across ``threshold`` while its
    attribution is 0 or of the other sign ("" where there is none). Not run (all "", and
    ``result.meta["group_check"]`` says why) without a threshold, for several targets, for a
    target that is not an output column, or when the model's scores cannot be reproduced.
    ``advice`` says what to try."""
    notes = [""] * result.n_examples
    index = target_index(target, tuple(result.target_names))
    skip = ("no decision threshold" if threshold is None else "several targets" if result.multi_target
            else "no featurizer" if featurizer is None
            else "the target is not an output column" if index is not None and not isinstance(index, int) else "")
    if skip or threshold is None or not result.n_examples:
        result.meta["group_check"] = f"not run: {skip or 'no molecule'}"
        return notes
    patterns = {label: Chem.MolFromSmarts(smarts) for label, smarts in CHECKED_GROUPS.items()}
    fx = result.forward_x.detach().double().cpu().reshape(result.n_examples, -1)[:, 0].tolist()

    def could_disagree(i: int, attribution: float) -> bool:
        # crossing from above needs a positive drop, from below a negative one: only a group credited
        # the other way (or 0) can be said
        return attribution <= 0 if fx[i] > threshold else attribution >= 0

    try:
        reports = _reports(model, result, patterns, featurizer, index, threshold, wanted=could_disagree)
    except InputError as exc:  # e.g. a model whose scores change between calls (dropout in training mode)
        result.meta["group_check"] = f"not run: {exc}"
        return notes
    result.meta["group_check"] = f"run on {', '.join(CHECKED_GROUPS)}"
    found: list[list[str]] = [[] for _ in range(result.n_examples)]
    for label, report in reports.items():
        for c in report.checks:
            crosses = c.score > threshold >= c.deleted_score or c.score <= threshold < c.deleted_score
            if not crosses or c.attribution * c.drop > 0:
                continue
            way = "falls" if c.drop > 0 else "rises"
            found[c.molecule].append(
                f"the {label} (input atoms {', '.join(map(str, c.atoms))}) decides the prediction -- without it "
                f"F {way} from {c.score:.4g} to {c.deleted_score:.4g}, across the decision threshold {threshold:g} "
                f"-- but its attribution is {c.attribution:+.3g}: the baseline hides its part; try {advice}")
    return ["; ".join(f) for f in found]
