"""The CHEMBL2321810 SAR series shipped in RDKit's Contrib (1,017 compounds with pIC50), its
R-group decomposition, and a Free–Wilson analysis.

Free & Wilson (J. Med. Chem. 1964) model an activity as additive contributions of the
substituent found at each R position: ``pIC50 = mu + sum_positions a[position, substituent]``.
:func:`free_wilson` fits it by least squares on indicator variables, with the most common
substituent of each position as the reference (coefficient 0), which makes the fit unique.

Files: ``rdkit/Contrib/FreeWilson/data/CHEMBL2321810.smi`` (SMILES, ChEMBL compound id),
``CHEMBL2321810_act.csv`` (id, pIC50) and ``CHEMBL2321810_scaffold.mol`` (the core with R1, R3
and R10 attachment points). With RDKit's default decomposition 628 compounds match the scaffold;
the others carry a different core (a CF3 or F in place of the nitrile ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sciattr.datasets.molecules import MoleculeSet, molecules_from_smiles, rdkit_file
from sciattr.errors import InputError, require

__all__ = [
    "FreeWilsonFit",
    "RGroupTable",
    "chembl2321810_scaffold",
    "decompose_rgroups",
    "free_wilson",
    "load_chembl2321810",
]

FREEWILSON_DATA = ("FreeWilson", "data")


def load_chembl2321810() -> MoleculeSet:
    """The 1,017 compounds; ``names`` are ChEMBL compound ids and ``values`` the pIC50."""
    smi = rdkit_file("contrib", *FREEWILSON_DATA, "CHEMBL2321810.smi")
    act = rdkit_file("contrib", *FREEWILSON_DATA, "CHEMBL2321810_act.csv")
    activity = {}
    for line in act.read_text().splitlines()[1:]:
        if line.strip():
            name, value = line.split(",")
            activity[name.strip()] = float(value)
    rows = []
    for number, line in enumerate(smi.read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) >= 2:
            rows.append((number, fields[0], fields[1]))
    missing = [name for _, _, name in rows if name not in activity]
    if missing:
        raise InputError(f"expected a pIC50 for every compound in {smi.name}; missing for {missing[:5]}")
    return molecules_from_smiles(rows, str(smi), [activity[name] for _, _, name in rows])


def chembl2321810_scaffold():
    """The series' core as an RDKit molecule with labelled R groups (R1, R3, R10)."""
    require("rdkit", "chem")
    from rdkit import Chem

    path = rdkit_file("contrib", *FREEWILSON_DATA, "CHEMBL2321810_scaffold.mol")
    return Chem.MolFromMolBlock(path.read_text())


@dataclass
class RGroupTable:
    """An R-group decomposition of a molecule list onto one scaffold.

    Attributes
    ----------
    labels:
        R positions found, e.g. ``["R1", "R10", "R3"]``.
    matched:
        ``(n_matched,)`` indices (into the input molecules) of the molecules the scaffold matched.
    substituents:
        Per matched molecule, ``{label: canonical substituent SMILES}`` (attachment as ``[*:k]``).
    atoms:
        Per matched molecule, ``{label: atom indices of the substituent in the input molecule}``
        (empty for a hydrogen, which is not a graph atom).
    core_atoms:
        Per matched molecule, the atom indices of the scaffold.
    """

    labels: list[str]
    matched: np.ndarray
    substituents: list[dict[str, str]] = field(repr=False)
    atoms: list[dict[str, tuple[int, ...]]] = field(repr=False)
    core_atoms: list[tuple[int, ...]] = field(repr=False)

    def counts(self) -> Counter:
        """How many matched molecules carry each ``(label, substituent)``."""
        return Counter((label, smi) for row in self.substituents for label, smi in row.items())


def _target_atoms(fragment, n_atoms: int) -> tuple[int, ...]:
    if not fragment.HasProp("_rgroupTargetAtoms"):
        return ()
    atoms = fragment.GetPropsAsDict(True, True)["_rgroupTargetAtoms"]
    return tuple(sorted(int(a) for a in atoms if int(a) < n_atoms))  # drop added hydrogens


def decompose_rgroups(mols: Sequence, scaffold) -> RGroupTable:
    """R-group decomposition (``rdkit.Chem.rdRGroupDecomposition``) of ``mols`` onto ``scaffold``.

    Uses RDKit's default parameters and keeps, for every substituent, the atoms of the input
    molecule it comes from (so attributions can be summed over it).
    """
    require("rdkit", "chem")
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdRGroupDecomposition as rgd

    if scaffold is None:
        raise InputError("expected an RDKit scaffold molecule; got None")
    params = rgd.RGroupDecompositionParameters()
    params.includeTargetMolInResults = True
    decomposer = rgd.RGroupDecomposition(scaffold, params)
    quiet = rdBase.BlockLogs()  # "No core matches" for every non-member; they are reported via `matched`
    matched = [i for i, mol in enumerate(mols) if mol is not None and decomposer.Add(mol) >= 0]
    decomposer.Process()
    del quiet
    rows = decomposer.GetRGroupsAsRows() if matched else []
    labels = sorted({key for row in rows for key in row if key.startswith("R")},
                    key=lambda s: (len(s), s))
    substituents, atoms, cores = [], [], []
    for index, row in zip(matched, rows):
        n_atoms = mols[index].GetNumAtoms()
        substituents.append({label: Chem.MolToSmiles(row[label]) for label in labels if label in row})
        atoms.append({label: _target_atoms(row[label], n_atoms) for label in labels if label in row})
        cores.append(_target_atoms(row["Core"], n_atoms) if "Core" in row else ())
    return RGroupTable(labels, np.asarray(matched, dtype=np.int64), substituents, atoms, cores)


@dataclass
class FreeWilsonFit:
    """A fitted Free–Wilson model.

    Attributes
    ----------
    intercept:
        Activity of the compound carrying every reference substituent.
    coefficients:
        ``{(label, substituent SMILES): contribution}`` relative to the reference of that position.
    reference:
        ``{label: substituent}`` with coefficient 0 by construction.
    counts:
        How many compounds carry each ``(label, substituent)``.
    r2:
        Coefficient of determination on the fitted compounds.
    n_compounds:
        Compounds used in the fit.
    """

    intercept: float
    coefficients: dict[tuple[str, str], float]
    reference: dict[str, str]
    counts: dict[tuple[str, str], int]
    r2: float
    n_compounds: int

    def predict(self, substituents: Sequence[dict[str, str]]) -> np.ndarray:
        """Predicted activity of rows ``{label: substituent}``; unseen substituents count 0."""
        return np.array([self.intercept + sum(self.coefficients.get((label, smi), 0.0) for label, smi in row.items())
                         for row in substituents], dtype=np.float64)


def free_wilson(substituents: Sequence[dict[str, str]], activity, ridge: float = 0.0) -> FreeWilsonFit:
    """Least-squares Free–Wilson fit of ``activity`` on substituent indicator variables.

    Parameters
    ----------
    substituents:
        Per compound ``{label: substituent}`` (e.g. ``RGroupTable.substituents``).
    activity:
        ``(n_compounds,)`` activities (pIC50).
    ridge:
        Optional L2 penalty on the coefficients (0: plain least squares; the minimum-norm
        solution is taken when the design is rank deficient).
    """
    y = np.asarray(activity, dtype=np.float64).reshape(-1)
    if len(substituents) != y.size:
        raise InputError(f"expected one activity per compound ({len(substituents)}); got {y.size}")
    if y.size == 0:
        raise InputError("expected at least one compound; got none")
    if not np.isfinite(y).all():
        raise InputError("expected finite activities; got NaN or infinite values")
    if ridge < 0:
        raise InputError(f"expected ridge >= 0; got {ridge}")
    counts = Counter((label, smi) for row in substituents for label, smi in row.items())
    reference = {}
    for (label, smi), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        reference.setdefault(label, smi)
    variables = sorted(key for key in counts if reference[key[0]] != key[1])
    column = {key: j for j, key in enumerate(variables)}
    design = np.zeros((y.size, len(variables) + 1))
    design[:, 0] = 1.0
    for i, row in enumerate(substituents):
        for key in row.items():
            if key in column:
                design[i, column[key] + 1] = 1.0
    if ridge > 0:
        penalty = np.sqrt(ridge) * np.eye(design.shape[1])[1:]
        solution = np.linalg.lstsq(np.vstack([design, penalty]), np.r_[y, np.zeros(len(variables))], rcond=None)[0]
    else:
        solution = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ solution
    total = ((y - y.mean()) ** 2).sum()
    r2 = float(1.0 - (residual ** 2).sum() / total) if total > 0 else float("nan")
    coefficients = {key: float(solution[column[key] + 1]) for key in variables}
    coefficients.update({(label, smi): 0.0 for label, smi in reference.items()})
    return FreeWilsonFit(float(solution[0]), coefficients, reference, dict(counts), r2, int(y.size))
