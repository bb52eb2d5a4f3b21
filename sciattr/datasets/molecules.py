"""Molecule tables read from files that ship inside installed packages, and seeded splits.

Nothing here downloads anything: every loader reads a file inside an installed wheel (RDKit's
``Data`` and ``Contrib`` folders) and says which one when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sciattr.errors import InputError, MissingDependencyError, require

__all__ = ["MoleculeSet", "SkippedRow", "molecules_from_smiles", "rdkit_file", "split_indices"]


@dataclass(frozen=True)
class SkippedRow:
    """A row of a source file that could not be turned into a molecule."""

    line: int
    text: str
    reason: str


@dataclass
class MoleculeSet:
    """Parsed molecules with their names and (optional) measured values.

    Attributes
    ----------
    smiles, names:
        One entry per parsed molecule (``n_molecules``).
    mols:
        RDKit molecules, hydrogens implicit.
    values:
        ``(n_molecules,)`` float64 label (TPSA, pIC50 ...) or ``None``.
    source:
        Path of the file read.
    skipped:
        Rows that did not parse; they are reported, not silently dropped.
    """

    smiles: list[str]
    names: list[str]
    mols: list
    values: np.ndarray | None = None
    source: str = ""
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.mols)

    def subset(self, indices: Iterable[int]) -> MoleculeSet:
        """The molecules at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < len(self)]
        if bad:
            raise InputError(f"expected indices in [0, {len(self) - 1}]; got {bad[:5]}")
        return MoleculeSet(
            smiles=[self.smiles[i] for i in idx], names=[self.names[i] for i in idx],
            mols=[self.mols[i] for i in idx],
            values=None if self.values is None else self.values[idx],
            source=self.source, skipped=list(self.skipped),
        )


def rdkit_file(folder: str, *parts: str) -> Path:
    """Path of a file shipped in RDKit's ``Data`` (``folder="data"``) or ``Contrib`` folder.

    Raises
    ------
    MissingDependencyError
        When RDKit is not installed or its wheel does not carry the file.
    """
    require("rdkit", "chem")
    from rdkit import RDConfig

    roots = {"data": RDConfig.RDDataDir, "contrib": RDConfig.RDContribDir}
    if folder not in roots:
        raise InputError(f"expected folder 'data' or 'contrib'; got {folder!r}")
    path = Path(roots[folder], *parts)
    if not path.is_file():
        raise MissingDependencyError(
            f"expected {'/'.join(parts)} inside the installed RDKit ({roots[folder]}); it is not there. "
            f"Install the rdkit wheel from PyPI (`pip install rdkit`), which ships it")
    return path


def molecules_from_smiles(rows: Sequence[tuple[int, str, str]], source: str,
                          values: Sequence[float] | None = None) -> MoleculeSet:
    """Parse ``(line number, smiles, name)`` rows; unparsable rows go to ``skipped``.

    ``values`` (same length as ``rows``) is kept for the rows that parse.
    """
    require("rdkit", "chem")
    from rdkit import Chem, RDLogger

    if values is not None and len(values) != len(rows):
        raise InputError(f"expected one value per row ({len(rows)}); got {len(values)}")
    kept_smiles, kept_names, mols, kept_values, skipped = [], [], [], [], []
    RDLogger.DisableLog("rdApp.*")
    try:
        for k, (line, smiles, name) in enumerate(rows):
            mol = Chem.MolFromSmiles(smiles)
            if mol is None or mol.GetNumAtoms() == 0:
                skipped.append(SkippedRow(line, smiles, "RDKit could not parse the SMILES"))
                continue
            kept_smiles.append(smiles)
            kept_names.append(name)
            mols.append(mol)
            if values is not None:
                kept_values.append(float(values[k]))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return MoleculeSet(kept_smiles, kept_names, mols,
                       None if values is None else np.asarray(kept_values, dtype=np.float64),
                       source, skipped)


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[np.ndarray]:
    """Seeded random split of ``range(n)`` into parts of the given fractions (they must sum to 1).

    Returns one sorted index array per fraction; the last part takes the rounding remainder.
    """
    if n < 0:
        raise InputError(f"expected n >= 0; got {n}")
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0 or (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-9:
        raise InputError(f"expected non-negative fractions summing to 1; got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fr)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(order, bounds)]
