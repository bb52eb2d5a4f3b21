"""Dead features and the effective receptive field of a molecular model, read off its attributions.

Public API
----------
``wl_colours(mol, atom_labels, max_radius) -> list[list[int]]``
    Weisfeiler-Lehman colours of every atom at radius ``0 .. max_radius`` (bond types label the
    edges).
``receptive_field_report(result, *, expected_radius=None, max_radius=3, rtol=1e-4, task=None)``
    Atoms of one molecule whose attributions are equal within tolerance although their
    neighbourhoods differ, and the radius up to which the attributions tell neighbourhoods apart.
``ReceptiveFieldReport``
    ``collapsed`` pairs, ``effective_radius``, ``expected_radius``, ``flagged`` and ``summary()``.

The estimate. Two atoms of one molecule first differ at WL radius ``d`` (their own features at
``d = 0``; their neighbourhoods at ``d >= 1``). A model that sees radius ``r`` gives atoms that
differ at some radius ``<= r`` different attributions (exact ties are not expected from real
numbers). So the smallest ``d`` among *collapsed* pairs -- equal attributions, different
neighbourhoods -- bounds what the model resolves: ``effective_radius = min d - 1``; with no
collapsed pair up to ``max_radius`` it is ``max_radius``. The report is flagged when
``effective_radius < expected_radius`` (by default ``result.meta["receptive_radius"]``: the number
of weave modules or message-passing layers). Sundararajan et al.'s W1N2 anecdote is the case
``effective_radius = 0 < 1``: atoms of one type with the same bonds get identical attributions
whatever their neighbours are.

Atom labels at radius 0 are the model's own atom-feature rows, so two atoms that the
featurization cannot tell apart are never counted as collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch

from sciattr.errors import InputError
from sciattr.chem.adapter import ATOMS, MoleculeAttribution

__all__ = ["wl_colours", "receptive_field_report", "ReceptiveFieldReport"]


def wl_colours(mol, atom_labels: Sequence, max_radius: int) -> list[list[int]]:
    """Weisfeiler-Lehman colours of the atoms of ``mol``.

    Parameters
    ----------
    mol:
        An RDKit molecule.
    atom_labels:
        One hashable label per atom (e.g. a tuple of its feature row).
    max_radius:
        Last radius computed.

    Returns
    -------
    list of ``max_radius + 1`` lists of ``n_atoms`` ints: ``colours[r][a]`` is atom ``a``'s colour
    at radius ``r``; equal colours mean isomorphic-looking radius-``r`` neighbourhoods (bond
    types included). Colour ids are comparable within one radius of one call.
    """
    if isinstance(max_radius, bool) or not isinstance(max_radius, int) or max_radius < 0:
        raise InputError(f"expected max_radius to be an integer >= 0; got {max_radius!r}")
    n = mol.GetNumAtoms()
    if len(atom_labels) != n:
        raise InputError(f"expected one label per atom ({n}); got {len(atom_labels)}")
    neighbours = [[(str(b.GetBondType()), b.GetOtherAtomIdx(a.GetIdx())) for b in a.GetBonds()]
                  for a in mol.GetAtoms()]
    colours = [_compress(list(atom_labels))]
    for _ in range(max_radius):
        prev = colours[-1]
        signatures = [(prev[a], tuple(sorted((bond, prev[b]) for bond, b in neighbours[a]))) for a in range(n)]
        colours.append(_compress(signatures))
    return colours


def _compress(signatures: list) -> list[int]:
    table: dict = {}
    return [table.setdefault(s, len(table)) for s in signatures]


@dataclass
class ReceptiveFieldReport:
    """What :func:`receptive_field_report` found.

    Attributes
    ----------
    collapsed:
        One dict per collapsed atom pair: ``molecule``, ``atoms`` ``(a, b)``, ``symbols``,
        ``differ_at`` (first WL radius where the neighbourhoods differ) and ``attributions``.
    effective_radius:
        Largest radius up to which every neighbourhood difference changes the attribution.
    expected_radius:
        What the architecture suggests (``None`` if unknown).
    max_radius:
        Largest radius examined.
    n_pairs_compared:
        Atom pairs (within molecules) whose neighbourhoods differ within ``max_radius``.
    """

    collapsed: list = field(default_factory=list)
    effective_radius: int = 0
    expected_radius: Optional[int] = None
    max_radius: int = 3
    n_pairs_compared: int = 0

    @property
    def flagged(self) -> bool:
        """True when the attributions resolve a smaller radius than the architecture suggests."""
        return self.expected_radius is not None and self.effective_radius < self.expected_radius

    def summary(self) -> str:
        bound = "" if self.collapsed else ">= "
        lines = [f"effective radius {bound}{self.effective_radius} (architecture suggests "
                 f"{self.expected_radius if self.expected_radius is not None else 'unknown'}); "
                 f"{len(self.collapsed)} of {self.n_pairs_compared} atom pairs with different "
                 f"neighbourhoods got equal attributions"]
        if self.flagged:
            lines.append("FLAGGED: atoms with different neighbourhoods are treated identically "
                         "(dead features / receptive field smaller than the architecture's)")
        for item in self.collapsed[:10]:
            a, b = item["atoms"]
            lines.append(f"  molecule {item['molecule']}: atoms {a}{item['symbols'][0]} and {b}{item['symbols'][1]} "
                         f"differ at radius {item['differ_at']}, attribution {item['attributions'][0]:.6g}")
        return "\n".join(lines)


def _first_difference(colours: list[list[int]], a: int, b: int) -> Optional[int]:
    for r, col in enumerate(colours):
        if col[a] != col[b]:
            return r
    return None


def receptive_field_report(result: MoleculeAttribution, *, expected_radius: Optional[int] = None,
                           max_radius: int = 3, rtol: float = 1e-4, task: Optional[int] = None,
                           molecules: Optional[Sequence[int]] = None) -> ReceptiveFieldReport:
    """Find atoms treated identically although their neighbourhoods differ.

    Parameters
    ----------
    result:
        A :class:`MoleculeAttribution`.
    expected_radius:
        The radius the architecture should resolve; default ``result.meta["receptive_radius"]``.
    max_radius:
        Largest WL radius compared.
    rtol:
        Two atom attributions are equal when they differ by at most ``rtol`` times the largest
        absolute atom attribution of their molecule.
    task:
        Which attributed target, for multi-target results.
    molecules:
        Indices of the molecules to examine (default: all).
    """
    if not isinstance(result, MoleculeAttribution):
        raise InputError(f"expected a MoleculeAttribution; got {type(result).__name__}")
    if not isinstance(rtol, (int, float)) or isinstance(rtol, bool) or rtol < 0:
        raise InputError(f"expected rtol to be a number >= 0; got {rtol!r}")
    if expected_radius is None:
        expected_radius = result.meta.get("receptive_radius")
    report = ReceptiveFieldReport(expected_radius=expected_radius, max_radius=max_radius,
                                  effective_radius=max_radius)
    for i in range(result.n_examples) if molecules is None else molecules:
        _examine(result, i, max_radius, rtol, task, report)
    if report.collapsed:
        report.effective_radius = min(item["differ_at"] for item in report.collapsed) - 1
    return report


def _examine(result: MoleculeAttribution, i: int, max_radius: int, rtol: float, task, report) -> None:
    values = result.atom_values(i, task).detach().double().cpu()
    rows = result.inputs[ATOMS][result.segments[ATOMS] == i].cpu()
    labels = [tuple(row.tolist()) for row in rows]
    mol = result.molecules[i]
    colours = wl_colours(mol, labels, max_radius)
    tolerance = rtol * float(values.abs().max()) if values.numel() else 0.0
    n = values.shape[0]
    close = (values[:, None] - values[None, :]).abs() <= tolerance
    for a in range(n):
        for b in range(a + 1, n):
            radius = _first_difference(colours, a, b)
            if radius is None:
                continue
            report.n_pairs_compared += 1
            if bool(close[a, b]):
                report.collapsed.append({
                    "molecule": i, "atoms": (a, b),
                    "symbols": (mol.GetAtomWithIdx(a).GetSymbol(), mol.GetAtomWithIdx(b).GetSymbol()),
                    "differ_at": radius, "attributions": (float(values[a]), float(values[b])),
                })
