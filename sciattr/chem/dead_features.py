"""Dead features and the effective receptive field of a molecular model, read off its attributions.

Public API
----------
``wl_colours(mol, atom_labels, max_radius) -> list[list[int]]``
    Weisfeiler-Lehman colours of every atom at radius ``0 .. max_radius`` (bond types label the
    edges).
``receptive_field_report(result, *, expected_radius=None, max_radius=3, rtol=1e-6, min_share=1e-3, ...)``
    Atoms of one molecule whose attributions are equal within tolerance although their
    neighbourhoods differ, and the radius up to which the attributions tell neighbourhoods apart.
``ReceptiveFieldReport``
    ``collapsed`` pairs, per-radius counts, ``effective_radius``, ``expected_radius``, ``flagged``
    and ``summary()``.

The estimate. Two atoms of one molecule first differ at WL radius ``d`` (their own features at
``d = 0``; their neighbourhoods at ``d >= 1``). A model that sees radius ``r`` gives atoms that
differ at some radius ``<= r`` different attributions (exact ties are not expected from real
numbers). So the smallest ``d`` at which pairs *collapse* -- equal attributions, different
neighbourhoods -- bounds what the model resolves: ``effective_radius = d - 1``; with no such
radius up to ``max_radius`` it is ``max_radius`` (read: at least). A radius counts only when more
than ``min_share`` of its pairs collapse, so a rare accidental tie does not decide. The report is
flagged when ``effective_radius < expected_radius`` (by default ``result.meta["receptive_radius"]``:
the number of weave modules or message-passing layers). Sundararajan et al.'s W1N2 anecdote is
the case ``effective_radius = 0 < 1``: atoms of one type with the same bonds get identical
attributions whatever their neighbours are.

Atom labels at radius 0 are the model's own atom-feature rows, so two atoms that the
featurization cannot tell apart are never counted as collapsed.

Which per-atom number. The report compares the *feature-only* attributions
(:meth:`~sciattr.chem.adapter.MoleculeAttribution.atom_feature_values`): what flows through the
atom's own representation, the quantity the anecdote is about. The complete atom score (the
default elsewhere) adds half of each pair the atom is in, and a pair's attribution also flows
through its other atom, so complete scores see the neighbours' types even in W1N2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sciattr.chem._vocabulary import renamed_keywords
from sciattr.chem.adapter import ATOMS, MoleculeAttribution
from sciattr.errors import InputError

__all__ = ["ReceptiveFieldReport", "receptive_field_report", "wl_colours"]


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
        One dict per collapsed atom pair: ``molecule``, ``atoms`` ``(a, b)`` (input atom indices), ``symbols``,
        ``differ_at`` (first WL radius where the neighbourhoods differ) and ``attributions``.
    compared_by_radius, collapsed_by_radius:
        Atom pairs (within molecules) first differing at each radius, and how many of them collapsed.
    effective_radius:
        Largest radius up to which neighbourhood differences change the attribution.
    expected_radius:
        What the architecture suggests (``None`` if unknown).
    max_radius:
        Largest radius examined.
    """

    collapsed: list = field(default_factory=list)
    compared_by_radius: dict = field(default_factory=dict)
    collapsed_by_radius: dict = field(default_factory=dict)
    effective_radius: int = 0
    expected_radius: int | None = None
    max_radius: int = 3

    @property
    def n_pairs_compared(self) -> int:
        """Atom pairs whose neighbourhoods differ within ``max_radius``."""
        return sum(self.compared_by_radius.values())

    @property
    def flagged(self) -> bool:
        """True when the attributions resolve a smaller radius than the architecture suggests."""
        return self.expected_radius is not None and self.effective_radius < self.expected_radius

    def summary(self) -> str:
        bound = ">= " if self.effective_radius == self.max_radius else ""
        expected = self.expected_radius if self.expected_radius is not None else "unknown"
        lines = [(f"effective radius {bound}{self.effective_radius} (architecture suggests {expected}); "
                  f"{len(self.collapsed)} of {self.n_pairs_compared} atom pairs with different "
                  f"neighbourhoods got equal attributions")]
        for radius in sorted(self.compared_by_radius):
            lines.append(f"  first differing at radius {radius}: {self.collapsed_by_radius.get(radius, 0)} of "
                         f"{self.compared_by_radius[radius]} collapsed")
        if self.flagged:
            lines.append("FLAGGED: atoms with different neighbourhoods are treated identically "
                         "(dead features / receptive field smaller than the architecture's)")
        for item in self.collapsed[:10]:
            a, b = item["atoms"]
            lines.append(f"  molecule {item['molecule']}: atoms {a}{item['symbols'][0]} and {b}{item['symbols'][1]} "
                         f"differ at radius {item['differ_at']}, attribution {item['attributions'][0]:.6g}")
        return "\n".join(lines)


@renamed_keywords
def receptive_field_report(result: MoleculeAttribution, *, expected_radius: int | None = None,
                           max_radius: int = 3, rtol: float = 1e-6, min_share: float = 1e-3,
                           target=None, molecules: Sequence[int] | None = None) -> ReceptiveFieldReport:
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
        Two atom attributions are equal when ``|a - b| <= rtol * max(|a|, |b|)``. A model blind
        to a difference gives ties up to rounding (W1N2: exactly equal, float32 or float64);
        different atoms of a random W2N2 differ by > 1e-5 relative on NCI molecules.
    min_share:
        A radius counts as unresolved when more than this share of the pairs first differing
        there collapse (one accidental tie among thousands of pairs does not flag a model).
    target:
        Which attributed target (index or task name), for multi-target results.
    molecules:
        Indices of the molecules to examine (default: all).
    """
    if not isinstance(result, MoleculeAttribution):
        raise InputError(f"expected a MoleculeAttribution; got {type(result).__name__}")
    for name, value in (("rtol", rtol), ("min_share", min_share)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise InputError(f"expected {name} to be a number >= 0; got {value!r}")
    if expected_radius is None:
        expected_radius = result.meta.get("receptive_radius")
    report = ReceptiveFieldReport(expected_radius=expected_radius, max_radius=max_radius,
                                  effective_radius=max_radius)
    for i in range(result.n_examples) if molecules is None else molecules:
        _examine(result, i, max_radius, rtol, target, report)
    unresolved = [r for r, n in report.compared_by_radius.items()
                  if report.collapsed_by_radius.get(r, 0) > min_share * n]
    if unresolved:
        report.effective_radius = min(unresolved) - 1
    return report


def _first_difference(colours: list[list[int]]) -> torch.Tensor:
    """``(n, n)`` first radius at which two atoms' colours differ, ``-1`` if they never do."""
    table = torch.tensor(colours)  # (R + 1, n)
    differ = table[:, :, None] != table[:, None, :]  # (R + 1, n, n)
    first = differ.int().argmax(0)
    return torch.where(differ.any(0), first, torch.full_like(first, -1))


def _examine(result: MoleculeAttribution, i: int, max_radius: int, rtol: float, target, report) -> None:
    # the atom-feature view: what the model's atom representations resolve (pairs differ anyway)
    values = result.atom_feature_values(i, target).detach().double().cpu()
    if result.segments is None:
        raise InputError("expected a molecule result with segments (the molecule of every atom row); got none")
    rows = result.inputs[ATOMS][result.segments[ATOMS] == i].cpu()
    mol = result.molecules[i]
    first = _first_difference(wl_colours(mol, [tuple(row.tolist()) for row in rows], max_radius))
    scale = torch.maximum(values[:, None].abs(), values[None, :].abs())
    close = (values[:, None] - values[None, :]).abs() <= rtol * scale
    upper = torch.ones_like(close).triu(1)
    compared = upper & (first >= 0)
    for radius, count in zip(*torch.unique(first[compared], return_counts=True)):
        report.compared_by_radius[int(radius)] = report.compared_by_radius.get(int(radius), 0) + int(count)
    source = result.input_atoms(i)
    for a, b in (compared & close).nonzero().tolist():
        radius = int(first[a, b])
        report.collapsed_by_radius[radius] = report.collapsed_by_radius.get(radius, 0) + 1
        report.collapsed.append({
            "molecule": i, "atoms": (source[a], source[b]),
            "symbols": (mol.GetAtomWithIdx(a).GetSymbol(), mol.GetAtomWithIdx(b).GetSymbol()),
            "differ_at": radius, "attributions": (float(values[a]), float(values[b])),
        })
