"""Ground-truth attribution tasks: a molecule is positive when SMARTS rules match, and the
matching atoms are the true attribution.

Following the synthetic benchmarks of McCloskey et al. (PNAS 2019) and Rao et al. (J. Cheminf.
2022), a task is a logic formula over substructure rules:

* :class:`SmartsTask` -- a conjunction ``A AND B AND ...``;
* :class:`LogicTask` -- a disjunction of conjunctions with exclusions,
  ``(A AND B) OR C ... AND NOT D``: positive when at least one clause matches completely and no
  excluded rule matches.

A positive molecule may satisfy the formula in several ways (two benzene rings, a nitro group
*and* a nitrile, three carbonyls ...): every way is kept as one boolean atom mask -- the union of
one match of each rule of a clause that is present -- and so is the mask of *all* of them at once
(every match of every present clause; and each clause's own matches). An attribution is scored
by the best mask: a model may find just one way the formula holds, or every occurrence. The
masks of all occurrences matter: a model that sums evidence over the molecule gives two
symmetric benzene rings equal scores (the symmetry axiom demands it), and scored against one ring
only it would rank the other ring's atoms as false positives. Excluded rules never contribute
atoms: for ``A AND NOT B`` the true atoms are those of ``A`` (``B`` is absent from every positive).

Scoring: per molecule the AUROC of the atom attributions (signed, higher = more evidence for the
positive class) against the mask, maximised over the alternatives; the task score is the mean
over the positive molecules of a test set. Molecules whose every mask covers all atoms (or
none) have no AUROC and are counted apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from sciattr.datasets.molecules import MoleculeSet
from sciattr.datasets.ranks import auroc
from sciattr.errors import InputError, require

__all__ = [
    "TASKS",
    "AttributionScore",
    "LogicTask",
    "SmartsTask",
    "TaskData",
    "attribution_auroc",
    "build_task",
    "get_task",
    "rule_evidence",
    "score_attributions",
    "task_label_matrix",
]


@cache
def _pattern(smarts: str):
    require("rdkit", "chem")
    from rdkit import Chem

    pattern = Chem.MolFromSmarts(smarts)
    if pattern is None:
        raise InputError(f"expected a valid SMARTS pattern; got {smarts!r}")
    return pattern


@dataclass(frozen=True)
class SmartsTask:
    """A conjunction of named SMARTS rules.

    Attributes
    ----------
    name:
        Short identifier (used in model names, e.g. ``"w2n2-benzene"``).
    description:
        One line for tables and reports.
    rules:
        ``(rule name, SMARTS)`` pairs; a molecule is positive when every rule matches.
    max_alternatives:
        Cap on the number of alternative true masks kept per molecule (products of matches
        can grow fast): the all-occurrence mask first, then the first combinations in RDKit's
        match order.
    """

    name: str
    description: str
    rules: tuple[tuple[str, str], ...]
    max_alternatives: int = 256

    @property
    def formula(self) -> str:
        """The formula in words, e.g. ``"halide AND carbonyl"``."""
        return " AND ".join(rule for rule, _ in self.rules)

    def rule_matches(self, mol) -> list[tuple[tuple[int, ...], ...]]:
        """Atom-index tuples of every (unique) match of each rule."""
        return [tuple(mol.GetSubstructMatches(_pattern(smarts), uniquify=True, maxMatches=10_000))
                for _, smarts in self.rules]

    def is_positive(self, mol) -> bool:
        return all(mol.HasSubstructMatch(_pattern(smarts)) for _, smarts in self.rules)

    def true_masks(self, mol) -> list[np.ndarray]:
        """Alternative ``(n_atoms,)`` boolean masks of the true attribution; empty if negative."""
        matches = self.rule_matches(mol)
        if not all(matches):
            return []
        return _union_masks(mol.GetNumAtoms(), [matches], self.max_alternatives)


def _union_masks(n_atoms: int, clauses: list[list[tuple]], cap: int) -> list[np.ndarray]:
    """Distinct true masks of a positive molecule, given each present clause as a list of per-rule match lists.

    First the masks that hold every occurrence -- the union of all matches of all present clauses,
    then of each clause on its own -- then, clause by clause in RDKit's match order, the unions of
    one match per rule. At most ``cap`` masks in all.
    """
    per_clause = [frozenset(a for rule in m for match in rule for a in match) for m in clauses]
    candidates = itertools.chain(
        [frozenset().union(*per_clause)] if clauses else [], per_clause,
        *(itertools.islice((frozenset(a for match in combo for a in match) for combo in itertools.product(*m)),
                           50 * cap) for m in clauses))
    masks, seen = [], set()
    for atoms in candidates:
        if atoms in seen:
            continue
        seen.add(atoms)
        mask = np.zeros(n_atoms, dtype=bool)
        mask[list(atoms)] = True
        masks.append(mask)
        if len(masks) == cap:
            break
    return masks


@dataclass(frozen=True)
class LogicTask:
    """A disjunction of conjunctions of named SMARTS rules, with excluded rules.

    A molecule is positive when every rule of at least one clause matches and no rule of
    ``excluded`` matches. Its true masks are the union of every match of every clause that
    matches, each such clause's own matches, and for every clause that matches, the unions of one
    match of each of the clause's rules (excluded rules contribute no atoms).

    Attributes
    ----------
    name, description:
        As in :class:`SmartsTask`.
    rules:
        ``(rule name, SMARTS)`` pairs of every rule the formula uses.
    clauses:
        Tuples of rule names; the formula is ``clause_1 OR clause_2 OR ...``, each clause the AND
        of its rules.
    excluded:
        Rule names that must not match (``AND NOT``).
    max_alternatives:
        Cap on the number of alternative true masks kept per molecule.

    Example
    -------
    >>> task = TASKS["halide_not_carbonyl"]
    >>> task.formula
    'halide AND NOT carbonyl'
    """

    name: str
    description: str
    rules: tuple[tuple[str, str], ...]
    clauses: tuple[tuple[str, ...], ...]
    excluded: tuple[str, ...] = ()
    max_alternatives: int = 256

    def __post_init__(self):
        known = {rule for rule, _ in self.rules}
        used = {rule for clause in self.clauses for rule in clause} | set(self.excluded)
        if not self.clauses or not all(self.clauses) or used - known:
            raise InputError(f"expected non-empty clauses of rule names among {sorted(known)}; got clauses "
                             f"{self.clauses!r} and excluded {self.excluded!r}")

    @property
    def formula(self) -> str:
        """The formula in words, e.g. ``"(halide AND carbonyl) OR nitro"``."""
        parts = [" AND ".join(c) if len(c) == 1 or len(self.clauses) == 1 else f"({' AND '.join(c)})"
                 for c in self.clauses]
        text = " OR ".join(parts)
        if self.excluded:
            text = (f"({text})" if len(self.clauses) > 1 else text) + "".join(f" AND NOT {r}" for r in self.excluded)
        return text

    def _smarts(self, rule: str) -> str:
        return dict(self.rules)[rule]

    def rule_matches(self, mol) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Atom-index tuples of every (unique) match of each rule, by rule name."""
        return {rule: tuple(mol.GetSubstructMatches(_pattern(smarts), uniquify=True, maxMatches=10_000))
                for rule, smarts in self.rules}

    def is_positive(self, mol) -> bool:
        if any(mol.HasSubstructMatch(_pattern(self._smarts(r))) for r in self.excluded):
            return False
        return any(all(mol.HasSubstructMatch(_pattern(self._smarts(r))) for r in clause) for clause in self.clauses)

    def true_masks(self, mol) -> list[np.ndarray]:
        """Alternative ``(n_atoms,)`` boolean masks of the true attribution; empty if negative."""
        matches = self.rule_matches(mol)
        if any(matches[r] for r in self.excluded):
            return []
        present = [[matches[r] for r in clause] for clause in self.clauses if all(matches[r] for r in clause)]
        return _union_masks(mol.GetNumAtoms(), present, self.max_alternatives)


BENZENE = "c1ccccc1"
HALIDE = "[F,Cl,Br,I]"
CARBONYL = "[CX3]=[OX1]"
# aliphatic three-connected nitrogen that is not an amide/sulfonamide/thioamide/amidine, not charged,
# not bonded to N or O (hydrazines, hydroxylamines)
AMINE = "[NX3;!$(N-[C,S,P]=[O,S,N]);!$([N+]);!$(N-[N,O])]"
ETHER = "[OD2]([#6])[#6]"
# nitro in both the charge-separated and the pentavalent spelling
NITRO = "[NX3;$(N(=O)=O),$([N+](=O)[O-])](~[OX1])~[OX1]"
NITRILE = "[CX2]#[NX1]"

#: The shipped tasks. ``halide_carbonyl`` widens McCloskey's "fluoride AND carbonyl" to all
#: halogens: only 13 of the NCI molecules carry both a fluorine and a carbonyl. Positives among
#: the 4,991 NCI molecules: benzene 2,936 (58.8 %), halide_carbonyl 373 (7.5 %),
#: amine_ether_benzene 123 (2.5 %), nitro_or_nitrile 683 (13.7 %), halide_not_carbonyl 572
#: (11.5 %), halide_carbonyl_or_nitro 776 (15.5 %).
TASKS: dict[str, SmartsTask | LogicTask] = {
    task.name: task for task in (
        SmartsTask("benzene", "has a benzene ring", (("benzene", BENZENE),)),
        SmartsTask("halide_carbonyl", "halogen (F, Cl, Br, I) AND carbonyl",
                   (("halide", HALIDE), ("carbonyl", CARBONYL))),
        SmartsTask("amine_ether_benzene", "amine AND ether AND benzene ring",
                   (("amine", AMINE), ("ether", ETHER), ("benzene", BENZENE))),
        LogicTask("nitro_or_nitrile", "nitro group OR nitrile",
                  (("nitro", NITRO), ("nitrile", NITRILE)), (("nitro",), ("nitrile",))),
        LogicTask("halide_not_carbonyl", "halogen (F, Cl, Br, I) AND NOT carbonyl",
                  (("halide", HALIDE), ("carbonyl", CARBONYL)), (("halide",),), excluded=("carbonyl",)),
        LogicTask("halide_carbonyl_or_nitro", "(halogen AND carbonyl) OR nitro group",
                  (("halide", HALIDE), ("carbonyl", CARBONYL), ("nitro", NITRO)),
                  (("halide", "carbonyl"), ("nitro",))),
    )
}


def get_task(task: str | SmartsTask | LogicTask) -> SmartsTask | LogicTask:
    """A task by name (see :data:`TASKS`), or the task itself."""
    if isinstance(task, (SmartsTask, LogicTask)):
        return task
    if task not in TASKS:
        raise InputError(f"expected a task name among {sorted(TASKS)}; got {task!r}")
    return TASKS[task]


@dataclass
class TaskData:
    """Labels and true masks of one task over a molecule set.

    Attributes
    ----------
    labels:
        ``(n_molecules,)`` bool.
    masks:
        Per molecule, the list of alternative ``(n_atoms,)`` boolean masks (empty for negatives).
    """

    task: SmartsTask | LogicTask
    molecules: MoleculeSet
    labels: np.ndarray
    masks: list[list[np.ndarray]] = field(repr=False)

    @property
    def positives(self) -> np.ndarray:
        return np.flatnonzero(self.labels)


def build_task(task: str | SmartsTask | LogicTask, molecules: MoleculeSet | None = None) -> TaskData:
    """Label ``molecules`` (default: the NCI set) with ``task`` and collect the true masks."""
    spec = get_task(task)
    if molecules is None:
        from sciattr.datasets.nci import load_nci

        molecules = load_nci()
    masks = [spec.true_masks(mol) for mol in molecules.mols]
    labels = np.array([bool(m) for m in masks], dtype=bool)
    return TaskData(spec, molecules, labels, masks)


def task_label_matrix(tasks: Sequence[str | SmartsTask | LogicTask], molecules: MoleculeSet) -> np.ndarray:
    """``(n_molecules, n_tasks)`` float32 0/1 labels, one column per task."""
    specs = [get_task(t) for t in tasks]
    return np.array([[float(s.is_positive(mol)) for s in specs] for mol in molecules.mols],
                    dtype=np.float32).reshape(len(molecules), len(specs))


def rule_evidence(task: str | SmartsTask | LogicTask, molecules: MoleculeSet | Sequence) -> list[dict]:
    """How much a set of molecules shows that each rule of a task matters.

    For every rule of every clause, its *contrasts*: the negatives in which every other rule of
    the clause matches and this one does not (for a clause of one rule: every negative without
    it) -- molecules that differ from a positive of that clause by this rule. For every excluded
    rule, the molecules in which a clause matches and the excluded rule too. A rule with few
    contrasts can be left out by a model at little cost in accuracy, and then gets little
    attribution however well the model scores.

    Parameters
    ----------
    molecules:
        A :class:`MoleculeSet` or a sequence of RDKit molecules (e.g. the training split).

    Returns
    -------
    list of dict
        ``{"clause", "rule", "kind": "required" | "excluded", "contrasts", "positives"}`` in the
        order of the formula; ``positives`` counts the molecules the task labels positive.

    Example
    -------
    >>> from rdkit import Chem
    >>> mols = [Chem.MolFromSmiles(s) for s in ["ClCC=O", "ClCC", "CC=O", "CCBr", "CC"]]
    >>> [(e["rule"], e["contrasts"]) for e in rule_evidence("halide_carbonyl", mols)]
    [('halide', 1), ('carbonyl', 2)]
    """
    spec = get_task(task)
    mols = molecules.mols if isinstance(molecules, MoleculeSet) else list(molecules)
    clauses: tuple[tuple[str, ...], ...] = (tuple(rule for rule, _ in spec.rules),)
    excluded: tuple[str, ...] = ()
    if isinstance(spec, LogicTask):
        clauses, excluded = spec.clauses, spec.excluded
    smarts = dict(spec.rules)
    matched = [{rule for rule in smarts if mol.HasSubstructMatch(_pattern(smarts[rule]))} for mol in mols]
    # the task's own label, from the same matches (is_positive would match every SMARTS again)
    positive = [not set(excluded) & m and any(set(c) <= m for c in clauses) for m in matched]
    n_positive = int(sum(positive))
    out = []
    for clause in clauses:
        label = " AND ".join(clause)
        for rule in clause:
            others = set(clause) - {rule}
            count = sum(1 for m, pos in zip(matched, positive) if not pos and rule not in m and others <= m)
            out.append({"clause": label, "rule": rule, "kind": "required", "contrasts": count,
                        "positives": n_positive})
    for rule in excluded:
        count = sum(1 for m in matched if rule in m and any(set(c) <= m for c in clauses))
        out.append({"clause": " OR ".join(" AND ".join(c) for c in clauses), "rule": rule, "kind": "excluded",
                    "contrasts": count, "positives": n_positive})
    return out


def attribution_auroc(atom_scores, masks: Sequence[np.ndarray]) -> float:
    """Best AUROC of ``atom_scores`` ``(n_atoms,)`` over the alternative true ``masks``.

    ``nan`` when no mask gives a defined AUROC (no masks, or every mask covers all atoms).
    """
    scores = np.asarray(atom_scores, dtype=np.float64).reshape(-1)
    best = float("nan")
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != scores.shape:
            raise InputError(f"expected a mask over {scores.size} atoms; got shape {mask.shape}")
        value = auroc(scores, mask)
        if not np.isnan(value) and (np.isnan(best) or value > best):
            best = value
    return best


@dataclass
class AttributionScore:
    """Attribution AUROC over a set of molecules.

    Attributes
    ----------
    mean:
        Mean of the defined per-molecule AUROCs (``nan`` if none).
    per_molecule:
        ``(n_molecules,)`` AUROC, ``nan`` for negatives and undefined ones.
    n_scored, n_undefined:
        Positive molecules with a defined AUROC / without one.
    """

    mean: float
    per_molecule: np.ndarray
    n_scored: int
    n_undefined: int


def score_attributions(atom_scores: Sequence, masks: Sequence[Sequence[np.ndarray]]) -> AttributionScore:
    """Score per-molecule atom attributions against the true masks of a task.

    Parameters
    ----------
    atom_scores:
        One ``(n_atoms_i,)`` array per molecule (signed attributions to the positive class).
    masks:
        ``TaskData.masks`` of the same molecules; molecules without masks (negatives) are skipped.
    """
    if len(atom_scores) != len(masks):
        raise InputError(f"expected one attribution array per molecule ({len(masks)}); got {len(atom_scores)}")
    per = np.full(len(masks), np.nan)
    undefined = 0
    for i, (scores, alternatives) in enumerate(zip(atom_scores, masks)):
        if not alternatives:
            continue
        per[i] = attribution_auroc(scores, alternatives)
        undefined += int(np.isnan(per[i]))
    scored = int(np.isfinite(per).sum())
    return AttributionScore(float(np.nanmean(per)) if scored else float("nan"), per, scored, undefined)
