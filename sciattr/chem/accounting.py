"""Accounting of a prediction: who carries how much of ``F(x) - F(x')``.

Public API
----------
``account(result, molecules=None, *, target=None) -> Accounting``
    Totals carried by atoms, bonded pairs, non-bonded pairs, each element and each bond type,
    over one molecule or many (the paper: "atom-pairs that have a bond between them cumulatively
    contribute 46% of the prediction score, all other atom pairs -3%").
``group_total(result, i, atoms, *, target=None, links="internal") -> GroupTotal``
    What a set of atoms of molecule ``i`` carries (its atoms and its links).
``smarts_totals(result, smarts, *, target=None, links="internal", molecules=None) -> list[GroupTotal]``
    :func:`group_total` of every match of a SMARTS pattern (e.g. a nitro group).

Shares are fractions of ``F(x) - F(x')`` (with the zero baseline, of the score's change from the
empty molecule); by completeness the parts add up to it, up to ``gap``. For edge models (PyG)
every link is a bond, so the non-bonded share is zero; both directed edges count for their bond.

``links`` of a group: ``"internal"`` counts pairs/edges with both atoms in the group, ``"half"``
adds half of each link with one atom inside (the group's complete atom scores), ``"touching"``
counts every link with an atom inside.

Atoms of a group are given by their INPUT atom indices (those of ``to_atoms``, tables and
pictures); SMARTS matches are found in the processed molecule and reported in input indices.
Here ``atoms`` is the atom-feature part only: pairs and bonds are counted separately.
``target`` is an output index or a task name of the model card.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sciattr.chem._vocabulary import renamed_keywords
from sciattr.chem.adapter import MoleculeAttribution
from sciattr.chem.featurize import Chem
from sciattr.errors import InputError

__all__ = ["Accounting", "GroupTotal", "account", "group_total", "smarts_totals"]

_LINK_MODES = ("internal", "half", "touching")


@dataclass
class Accounting:
    """Additive parts of ``F(x) - F(x')`` summed over the molecules examined.

    ``atoms + bonded + nonbonded = delta - gap``; ``by_element`` splits ``atoms``,
    ``by_bond_type`` splits ``bonded`` (keys like ``"single"``, ``"aromatic"``).
    """

    delta: float
    atoms: float
    bonded: float
    nonbonded: float
    by_element: dict = field(default_factory=dict)
    by_bond_type: dict = field(default_factory=dict)
    n_molecules: int = 1

    @property
    def gap(self) -> float:
        """``atoms + bonded + nonbonded - delta`` (the completeness gap)."""
        return self.atoms + self.bonded + self.nonbonded - self.delta

    def share(self, value: float) -> float:
        """``value`` as a fraction of ``delta`` (nan when ``delta`` is 0)."""
        return value / self.delta if self.delta != 0 else float("nan")

    def shares(self) -> dict:
        """Every part as a fraction of ``delta``."""
        parts = {"atoms": self.atoms, "bonded pairs": self.bonded, "non-bonded pairs": self.nonbonded}
        parts.update({f"element {k}": v for k, v in self.by_element.items()})
        parts.update({f"bond {k}": v for k, v in self.by_bond_type.items()})
        return {k: self.share(v) for k, v in parts.items()}

    def summary(self) -> str:
        lines = [f"F(x) - F(x') = {self.delta:.6g} over {self.n_molecules} molecule(s); gap {self.gap:.3g}"]
        lines += [f"  {name:<20} {100 * value:8.2f}%" for name, value in self.shares().items()]
        return "\n".join(lines)


@dataclass
class GroupTotal:
    """What a group of atoms carries: ``atoms`` + ``links`` = ``total``; ``share`` of ``F(x) - F(x')``.
    ``atom_indices`` are input atom indices."""

    molecule: int
    atom_indices: tuple
    atoms: float
    links: float
    delta: float

    @property
    def total(self) -> float:
        return self.atoms + self.links

    @property
    def share(self) -> float:
        return self.total / self.delta if self.delta != 0 else float("nan")


def _check(result) -> MoleculeAttribution:
    if not isinstance(result, MoleculeAttribution):
        raise InputError(f"expected a MoleculeAttribution; got {type(result).__name__}")
    return result


def _molecule_ids(result: MoleculeAttribution, molecules) -> list[int]:
    if molecules is None:
        return list(range(result.n_examples))
    if isinstance(molecules, int) and not isinstance(molecules, bool):
        return [molecules]
    return list(molecules)


def _delta(result: MoleculeAttribution, i: int, target) -> float:
    return float(result._task_column(result.delta[i], target))


@renamed_keywords
def account(result: MoleculeAttribution, molecules: int | Sequence[int] | None = None, *,
            target=None) -> Accounting:
    """Split ``F(x) - F(x')`` of one molecule (an index) or many (indices; default all)."""
    result = _check(result)
    ids = _molecule_ids(result, molecules)
    totals: defaultdict[str, float] = defaultdict(float)
    by_element: dict = defaultdict(float)
    by_bond: dict = defaultdict(float)
    for i in ids:
        mol = result.molecules[i]
        atoms = result.atom_feature_values(i, target).tolist()
        for k, value in enumerate(atoms):
            by_element[mol.GetAtomWithIdx(k).GetSymbol()] += value
        links = result.link_values(i, target)
        bonds = result.link_bonds(i).to(links.device)
        for bond_index, value in zip(bonds.tolist(), links.tolist()):
            if bond_index < 0:
                totals["nonbonded"] += value
            else:
                by_bond[str(mol.GetBondWithIdx(bond_index).GetBondType()).lower()] += value
        totals["atoms"] += sum(atoms)
        totals["delta"] += _delta(result, i, target)
    return Accounting(delta=totals["delta"], atoms=totals["atoms"], bonded=sum(by_bond.values()),
                      nonbonded=totals["nonbonded"], by_element=dict(by_element), by_bond_type=dict(by_bond),
                      n_molecules=len(ids))


@renamed_keywords
def group_total(result: MoleculeAttribution, i: int, atoms: Sequence[int], *, target=None,
                links: str = "internal") -> GroupTotal:
    """Attribution carried by the atoms ``atoms`` (input atom indices) of molecule ``i`` and by their links."""
    result = _check(result)
    if links not in _LINK_MODES:
        raise InputError(f"expected links in {_LINK_MODES}; got {links!r}")
    values = result.atom_feature_values(i, target)
    source = result.input_atoms(i)
    position = {a: k for k, a in enumerate(source)}
    asked = sorted({int(a) for a in atoms})
    missing = [a for a in asked if a not in position]
    if not asked or missing:
        raise InputError(f"expected a non-empty set of input atom indices among {sorted(position)} of molecule "
                         f"{i}; got {list(atoms)}" + (f" ({missing} not in the processed molecule)" if missing else ""))
    members = sorted(position[a] for a in asked)
    n = values.shape[0]
    inside = torch.zeros(n, dtype=torch.bool, device=values.device)
    inside[members] = True
    link_values = result.link_values(i, target)
    ends = inside[result.link_atoms(i).to(values.device)]  # (2, n_links)
    count = ends.sum(0)
    weight = {"internal": (count == 2).to(link_values.dtype),
              "half": count.to(link_values.dtype) / 2,
              "touching": (count > 0).to(link_values.dtype)}[links]
    return GroupTotal(molecule=i, atom_indices=tuple(asked), atoms=float(values[inside].sum()),
                      links=float((link_values * weight).sum()), delta=_delta(result, i, target))


@renamed_keywords
def smarts_totals(result: MoleculeAttribution, smarts, *, target=None, links: str = "internal",
                  molecules: int | Sequence[int] | None = None) -> list[GroupTotal]:
    """:class:`GroupTotal` of every match of ``smarts`` (a SMARTS string or query Mol) in the molecules."""
    result = _check(result)
    pattern = Chem.MolFromSmarts(smarts) if isinstance(smarts, str) else smarts
    if pattern is None or not isinstance(pattern, Chem.Mol):
        raise InputError(f"expected a valid SMARTS pattern; got {smarts!r}")
    found = []
    for i in _molecule_ids(result, molecules):
        source = result.input_atoms(i)
        for match in result.molecules[i].GetSubstructMatches(pattern):
            found.append(group_total(result, i, [source[a] for a in match], target=target, links=links))
    return found
