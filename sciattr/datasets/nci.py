"""The 4,999 NCI molecules that ship with RDKit (``rdkit/Data/NCI/first_5K.smi``).

Each line holds a SMILES and an NCI serial number; ``first_5k.tpsa.csv`` beside it gives the
topological polar surface area of the same molecules in the same order (Daylight / Ertl
``tpsa.c``), used here as the ``values`` column. Eight SMILES do not parse with current RDKit
and are reported in ``MoleculeSet.skipped``.
"""

from __future__ import annotations

from sciattr.datasets.molecules import MoleculeSet, molecules_from_smiles, rdkit_file
from sciattr.errors import InputError

__all__ = ["NCI_SMILES_FILE", "NCI_TPSA_FILE", "load_nci"]

NCI_SMILES_FILE = ("NCI", "first_5K.smi")
NCI_TPSA_FILE = ("NCI", "first_5k.tpsa.csv")


def _read_tpsa() -> list[tuple[str, float]]:
    """``(smiles, tpsa)`` rows, in the order of the SMILES file."""
    rows = []
    for line in rdkit_file("data", *NCI_TPSA_FILE).read_text().splitlines():
        if line and not line.startswith("#"):
            smiles, _, value = line.rpartition(",")
            rows.append((smiles, float(value)))
    return rows


def load_nci(limit: int | None = None) -> MoleculeSet:
    """Read the NCI molecules (optionally only the first ``limit`` lines of the file).

    Returns
    -------
    MoleculeSet
        ``names`` are the NCI serial numbers, ``values`` the TPSA (Å², float64).

    Example
    -------
    >>> nci = load_nci(limit=3)
    >>> nci.names, nci.values.tolist()
    (['1', '2', '3'], [34.14, 25.78, 106.51])
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"expected limit to be a positive integer or None; got {limit!r}")
    rows = []
    for number, line in enumerate(rdkit_file("data", *NCI_SMILES_FILE).read_text().splitlines(), start=1):
        if limit is not None and number > limit:
            break
        fields = line.split()
        if not fields:
            continue
        rows.append((number, fields[0], fields[1] if len(fields) > 1 else str(number)))
    tpsa = _read_tpsa()
    values = [tpsa[number - 1][1] if number <= len(tpsa) and tpsa[number - 1][0] == smiles else float("nan")
              for number, smiles, _ in rows]
    return molecules_from_smiles(rows, str(rdkit_file("data", *NCI_SMILES_FILE)), values)
