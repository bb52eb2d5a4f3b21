"""Dataset-level views of attributions: substructures, ring systems, BRICS fragments, R-groups.

Per-molecule attributions answer "why this molecule"; summed over many molecules onto chemical
units they answer "what does the model look for". For every molecule the atom scores
(:func:`atom_scores`: atom-feature attribution plus half of each incident pair/edge attribution,
so that the scores of a molecule still add up to ``F(x) - F(x')``) are summed over each
occurrence of a unit; units are then ranked by their mean attribution per occurrence.

Units:

* ``"functional_groups"`` -- the SMARTS table :data:`FUNCTIONAL_GROUPS` (overlapping groups
  each get their atoms);
* ``"ring_systems"`` -- fused ring systems, keyed by their canonical SMILES;
* ``"brics"`` -- BRICS fragments (Degen et al. 2008), keyed by their canonical SMILES with
  generic attachment points ``*``.

For a congeneric series the units are the R-groups of an R-group decomposition;
:func:`compare_with_free_wilson` ranks the substituents by their mean attribution and by their
Free–Wilson coefficient (least squares on indicator variables against the measured activity)
and reports the rank correlation of the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sciattr.chem._vocabulary import renamed_keywords
from sciattr.datasets.freewilson import FreeWilsonFit, RGroupTable, decompose_rgroups, free_wilson
from sciattr.datasets.ranks import spearman
from sciattr.datasets.tasks import AMINE, BENZENE, ETHER
from sciattr.errors import InputError, describe, require

__all__ = [
    "FUNCTIONAL_GROUPS",
    "UNIT_KINDS",
    "RGroupComparison",
    "SubstructureRanking",
    "SubstructureStat",
    "aggregate_attribution",
    "aggregate_substructures",
    "atom_scores",
    "brics_units",
    "compare_with_free_wilson",
    "functional_group_units",
    "rgroup_attributions",
    "ring_system_units",
]

#: A small table of functional groups (name -> SMARTS); every match is one occurrence.
FUNCTIONAL_GROUPS: dict[str, str] = {
    "carboxylic acid": "[CX3](=O)[OX2H1,OX1-]",
    "ester": "[#6][CX3](=O)[OX2H0][#6]",
    "amide": "[NX3][CX3](=[OX1])",
    "ketone": "[#6][CX3](=O)[#6]",
    "aldehyde": "[CX3H1](=O)",
    "alcohol": "[CX4][OX2H]",
    "phenol": "c[OX2H]",
    "ether": ETHER,
    "amine": AMINE,
    "aromatic amine": "c[NX3;!$(N-[C,S,P]=[O,S,N]);!$([N+])]",
    "nitro": "[$([NX3](=O)=O),$([NX3+](=O)[O-])]",
    "nitrile": "[CX2]#[NX1]",
    "sulfonamide": "[SX4](=O)(=O)[NX3]",
    "sulfone": "[#6][SX4](=O)(=O)[#6]",
    "thioether": "[#6][SX2][#6]",
    "thiol": "[SX2H]",
    "halogen": "[F,Cl,Br,I]",
    "trifluoromethyl": "[CX4](F)(F)F",
    "benzene": BENZENE,
    "pyridine": "n1ccccc1",
    "alkene": "[CX3]=[CX3]",
    "alkyne": "[CX2]#[CX2]",
    "imine": "[CX3]=[NX2]",
    "azo": "[NX2]=[NX2]",
    "phosphate": "[PX4](=O)([OX2])([OX2])",
}

UNIT_KINDS = ("functional_groups", "ring_systems", "brics")


# ---------------------------------------------------------------------------------------- atom scores
@renamed_keywords
def atom_scores(result, index: int, target=None) -> np.ndarray:
    """``(n_atoms,)`` complete score of each atom of molecule ``index`` of a ``MoleculeAttribution``
    (processed-molecule order, as ``result.molecules[index]``).

    The atom's own features plus half of every pair (Weave) or directed edge (PyG) it belongs
    to; the scores of a molecule sum to its atom plus link attributions, i.e. to
    ``F(x) - F(x')`` up to the completeness gap. The same numbers as
    ``result.atom_scores(index, target)`` and the default view of ``to_atoms``.
    """
    return result.atom_scores(index, target).detach().double().cpu().numpy()


# ---------------------------------------------------------------------------------------- units
def _chem():
    return require("rdkit.Chem", "chem")


def _ready(mol):
    """A sanitized copy (ring perception and valences) of a possibly unsanitized molecule."""
    chem = _chem()
    if not isinstance(mol, chem.Mol):
        raise InputError(f"expected an RDKit Mol; got {describe(mol)}")
    copy = chem.Mol(mol)
    try:
        chem.SanitizeMol(copy)
    except Exception as exc:  # noqa: BLE001 -- RDKit raises several unrelated exception types
        raise InputError(f"expected a molecule RDKit can sanitize; got {chem.MolToSmiles(mol)!r} ({exc})") from None
    return copy


def functional_group_units(mol, groups: dict[str, str] | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """``(group name, atom indices)`` of every match of every functional group in ``mol``."""
    chem = _chem()
    mol = _ready(mol)
    units: list[tuple[str, tuple[int, ...]]] = []
    for name, smarts in (FUNCTIONAL_GROUPS if groups is None else groups).items():
        pattern = chem.MolFromSmarts(smarts)
        if pattern is None:
            raise InputError(f"expected a valid SMARTS for group {name!r}; got {smarts!r}")
        units.extend((name, match) for match in mol.GetSubstructMatches(pattern, uniquify=True))
    return units


def ring_system_units(mol) -> list[tuple[str, tuple[int, ...]]]:
    """``(canonical SMILES, atom indices)`` of every fused ring system of ``mol``."""
    chem = _chem()
    mol = _ready(mol)
    systems: list[set[int]] = []
    for ring in mol.GetRingInfo().AtomRings():
        merged = set(ring)
        rest = []
        for system in systems:
            if len(system & merged) >= 2:  # sharing a bond: fused (spiro atoms alone do not fuse)
                merged |= system
            else:
                rest.append(system)
        systems = rest + [merged]
    return [(chem.MolFragmentToSmiles(mol, atomsToUse=sorted(s), canonical=True), tuple(sorted(s)))
            for s in systems]


def brics_units(mol) -> list[tuple[str, tuple[int, ...]]]:
    """``(canonical SMILES with ``*`` attachments, atom indices)`` of every BRICS fragment of ``mol``."""
    chem = _chem()
    brics = require("rdkit.Chem.BRICS", "chem")
    mol = _ready(mol)
    n = mol.GetNumAtoms()
    broken = brics.BreakBRICSBonds(mol)
    for atom in broken.GetAtoms():
        if atom.GetAtomicNum() == 0:
            atom.SetIsotope(0)
    units = []
    for fragment in chem.GetMolFrags(broken, asMols=False, sanitizeFrags=False):
        key = chem.MolFragmentToSmiles(broken, atomsToUse=list(fragment), canonical=True)
        units.append((key, tuple(sorted(a for a in fragment if a < n))))
    return units


_UNIT_FUNCTIONS: dict[str, Callable] = {"functional_groups": functional_group_units,
                                        "ring_systems": ring_system_units, "brics": brics_units}


# ---------------------------------------------------------------------------------------- aggregation
@dataclass
class SubstructureStat:
    """Attribution of one kind of unit over a set of molecules.

    ``mean`` is the mean over occurrences of the summed atom scores of an occurrence,
    ``mean_per_atom`` the same divided by the occurrence's atom count, ``total`` the sum over
    all occurrences, ``std`` the standard deviation over occurrences.
    """

    key: str
    n_molecules: int
    n_occurrences: int
    mean: float
    std: float
    mean_per_atom: float
    total: float


@dataclass
class SubstructureRanking:
    """Units ranked by mean attribution per occurrence (highest first)."""

    kind: str
    stats: list[SubstructureStat]
    n_molecules: int
    skipped: list[dict] = field(default_factory=list)

    def top(self, k: int = 10) -> list[SubstructureStat]:
        return self.stats[:k]

    def bottom(self, k: int = 10) -> list[SubstructureStat]:
        return self.stats[::-1][:k]

    def table(self) -> list[dict]:
        """One dict per unit: rank, key and the statistics."""
        return [{"rank": r + 1, **s.__dict__} for r, s in enumerate(self.stats)]

    def __str__(self) -> str:
        lines = [f"{self.kind} over {self.n_molecules} molecules",
                 f"{'rank':>4}  {'mean':>9}  {'per atom':>9}  {'n':>5}  key"]
        for r, s in enumerate(self.stats[:20]):
            lines.append(f"{r + 1:>4}  {s.mean:>9.4f}  {s.mean_per_atom:>9.4f}  {s.n_occurrences:>5}  {s.key}")
        return "\n".join(lines)


def aggregate_substructures(mols: Sequence, atom_values: Sequence, *, kind: str = "functional_groups",
                            min_count: int = 1, groups: dict[str, str] | None = None) -> SubstructureRanking:
    """Sum per-atom attributions over the units of every molecule and rank the units.

    Parameters
    ----------
    mols:
        RDKit molecules; ``atom_values[k]`` ``(n_atoms_k,)`` are the atom scores of ``mols[k]``.
    kind:
        ``"functional_groups"``, ``"ring_systems"`` or ``"brics"``.
    min_count:
        Units seen fewer times are left out of the ranking.
    groups:
        Functional-group table replacing :data:`FUNCTIONAL_GROUPS`.

    Molecules RDKit cannot process are listed in ``skipped`` (``{"molecule", "message"}``).
    """
    if kind not in _UNIT_FUNCTIONS:
        raise InputError(f"expected kind among {list(UNIT_KINDS)}; got {kind!r}")
    if len(mols) != len(atom_values):
        raise InputError(f"expected one attribution array per molecule ({len(mols)}); got {len(atom_values)}")
    occurrences: dict[str, list[tuple[float, int]]] = defaultdict(list)
    molecules_with: dict[str, set[int]] = defaultdict(set)
    skipped = []
    for k, (mol, values) in enumerate(zip(mols, atom_values)):
        scores = np.asarray(values, dtype=np.float64).reshape(-1)
        if mol is None or scores.shape[0] != mol.GetNumAtoms():
            skipped.append({"molecule": k, "message": f"expected {getattr(mol, 'GetNumAtoms', lambda: '?')()} "
                                                      f"atom values; got {scores.shape[0]}"})
            continue
        try:
            units = (_UNIT_FUNCTIONS[kind](mol, groups) if kind == "functional_groups"
                     else _UNIT_FUNCTIONS[kind](mol))
        except InputError as exc:
            skipped.append({"molecule": k, "message": str(exc)})
            continue
        for key, atoms in units:
            if atoms:
                occurrences[key].append((float(scores[list(atoms)].sum()), len(atoms)))
                molecules_with[key].add(k)
    stats = []
    for key, items in occurrences.items():
        if len(items) < min_count:
            continue
        sums = np.array([s for s, _ in items])
        sizes = np.array([n for _, n in items], dtype=np.float64)
        stats.append(SubstructureStat(key, len(molecules_with[key]), len(items), float(sums.mean()),
                                      float(sums.std()), float((sums / sizes).mean()), float(sums.sum())))
    stats.sort(key=lambda s: (-s.mean, s.key))
    return SubstructureRanking(kind, stats, len(mols) - len(skipped), skipped)


def _selected(result, target, active_threshold: float | None,
              indices: Sequence[int] | None) -> list[int]:
    if indices is not None:
        return [int(i) for i in indices]
    if active_threshold is None:
        return list(range(result.n_examples))
    scores = result.forward_x.detach().cpu().double()
    if scores.dim() == 2:
        if target is None:
            raise InputError("expected target= for a multi-target result; got None")
        scores = torch.stack([result._task_column(scores[i], target) for i in range(scores.shape[0])])
    return [i for i in range(result.n_examples) if float(scores[i]) > active_threshold]


@renamed_keywords
def aggregate_attribution(result, *, kind: str = "functional_groups", target=None,
                          active_threshold: float | None = 0.0, indices: Sequence[int] | None = None,
                          min_count: int = 1, groups: dict[str, str] | None = None) -> SubstructureRanking:
    """:func:`aggregate_substructures` over the molecules of a ``MoleculeAttribution``.

    By default only the molecules predicted active (score ``> active_threshold``, a logit of 0
    being probability 0.5) are aggregated; ``active_threshold=None`` takes all, ``indices`` an
    explicit choice.
    """
    chosen = _selected(result, target, active_threshold, indices)
    return aggregate_substructures([result.molecules[i] for i in chosen],
                                   [atom_scores(result, i, target) for i in chosen],
                                   kind=kind, min_count=min_count, groups=groups)


# ---------------------------------------------------------------------------------------- R-groups
def rgroup_attributions(table: RGroupTable, atom_values: Sequence) -> dict[tuple[str, str], list[float]]:
    """Attribution summed over each substituent's atoms, per ``(label, substituent)``.

    ``atom_values`` is indexed like the molecules given to
    :func:`~sciattr.datasets.decompose_rgroups` (one array per molecule, not per matched one).
    A hydrogen substituent has no atoms and scores 0.
    """
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row, index in enumerate(table.matched.tolist()):
        scores = np.asarray(atom_values[index], dtype=np.float64).reshape(-1)
        for label, smiles in table.substituents[row].items():
            atoms = list(table.atoms[row].get(label, ()))
            values[(label, smiles)].append(float(scores[atoms].sum()) if atoms else 0.0)
    return dict(values)


@dataclass
class RGroupComparison:
    """Substituents ranked by attribution and by Free–Wilson coefficient.

    Attributes
    ----------
    keys:
        ``(label, substituent)`` compared (seen at least ``min_count`` times).
    attribution:
        Mean attribution of each key over the molecules carrying it.
    free_wilson:
        Free–Wilson coefficient of each key (relative to its position's reference).
    counts:
        Molecules carrying each key.
    spearman:
        Rank correlation over all keys after centring both values within each position
        (count-weighted), which removes the arbitrary per-position reference of Free–Wilson.
    per_position:
        Rank correlation within each R position (``nan`` with fewer than 3 keys).
    fit:
        The Free–Wilson fit.
    n_molecules:
        Molecules decomposed.
    """

    keys: list[tuple[str, str]]
    attribution: dict[tuple[str, str], float]
    free_wilson: dict[tuple[str, str], float]
    counts: dict[tuple[str, str], int]
    spearman: float
    per_position: dict[str, float]
    fit: FreeWilsonFit
    n_molecules: int

    def centred(self, by: str = "attribution") -> dict[tuple[str, str], float]:
        """Values of each key minus the count-weighted mean of its position (``by`` =
        ``"attribution"`` or ``"free_wilson"``): comparable across positions."""
        if by not in ("attribution", "free_wilson"):
            raise InputError(f"expected by='attribution' or 'free_wilson'; got {by!r}")
        values = self.attribution if by == "attribution" else self.free_wilson
        return dict(zip(self.keys, _centred(values, self.counts, self.keys)))

    def ranking(self, by: str = "attribution") -> list[tuple[str, str]]:
        """Keys from the most positive to the most negative centred value (see :meth:`centred`)."""
        values = self.centred(by)
        return sorted(self.keys, key=lambda k: (-values[k], k))

    def table(self) -> list[dict]:
        """One dict per key, in attribution order: raw values and both (centred) ranks."""
        rank_a = {k: r + 1 for r, k in enumerate(self.ranking("attribution"))}
        rank_f = {k: r + 1 for r, k in enumerate(self.ranking("free_wilson"))}
        return [{"position": k[0], "substituent": k[1], "count": self.counts[k],
                 "attribution": self.attribution[k], "attribution_rank": rank_a[k],
                 "free_wilson": self.free_wilson[k], "free_wilson_rank": rank_f[k]}
                for k in self.ranking("attribution")]


def _centred(values: dict, counts: dict, keys: list) -> np.ndarray:
    """``values[k]`` minus the count-weighted mean over the keys of ``k``'s position."""
    by_label: dict[str, list] = defaultdict(list)
    for k in keys:
        by_label[k[0]].append(k)
    centre = {}
    for label, members in by_label.items():
        weights = np.array([counts[k] for k in members], dtype=np.float64)
        centre[label] = float(np.average([values[k] for k in members], weights=weights))
    return np.array([values[k] - centre[k[0]] for k in keys])


def compare_with_free_wilson(mols: Sequence, atom_values: Sequence, activity, scaffold=None, *,
                             min_count: int = 3, ridge: float = 0.0) -> RGroupComparison:
    """Rank the R-group substituents of a series by attribution and by Free–Wilson analysis.

    Parameters
    ----------
    mols:
        The molecules the attributions belong to (e.g. ``result.molecules``).
    atom_values:
        One ``(n_atoms,)`` array of atom scores per molecule (see :func:`atom_scores`).
    activity:
        ``(n_molecules,)`` measured activity (pIC50) for the Free–Wilson fit.
    scaffold:
        Core with labelled R groups; default the CHEMBL2321810 scaffold shipped with RDKit.
    min_count:
        Substituents carried by fewer molecules are left out of the comparison (they are
        still in the Free–Wilson fit).
    ridge:
        L2 penalty of the Free–Wilson fit (see :func:`~sciattr.datasets.free_wilson`).
    """
    if scaffold is None:
        from sciattr.datasets.freewilson import chembl2321810_scaffold

        scaffold = chembl2321810_scaffold()
    y = np.asarray(activity, dtype=np.float64).reshape(-1)
    if not (len(mols) == len(atom_values) == y.size):
        raise InputError(f"expected molecules, attributions and activities of one length; got "
                         f"{len(mols)}, {len(atom_values)} and {y.size}")
    table = decompose_rgroups(list(mols), scaffold)
    if table.matched.size == 0:
        raise InputError("expected at least one molecule matching the scaffold; got none")
    fit = free_wilson(table.substituents, y[table.matched], ridge=ridge)
    per_key = rgroup_attributions(table, atom_values)
    counts = {k: len(v) for k, v in per_key.items()}
    keys = sorted(k for k in per_key if counts[k] >= min_count)
    attribution = {k: float(np.mean(per_key[k])) for k in keys}
    coefficients = {k: fit.coefficients[k] for k in keys}
    overall = spearman(_centred(attribution, counts, keys), _centred(coefficients, counts, keys)) \
        if len(keys) >= 3 else float("nan")
    per_position = {}
    for label in table.labels:
        members = [k for k in keys if k[0] == label]
        per_position[label] = spearman([attribution[k] for k in members], [coefficients[k] for k in members]) \
            if len(members) >= 3 else float("nan")
    return RGroupComparison(keys, attribution, coefficients, {k: counts[k] for k in keys}, overall,
                            per_position, fit, int(table.matched.size))
