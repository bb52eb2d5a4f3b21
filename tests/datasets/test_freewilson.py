"""The CHEMBL2321810 series, R-group decomposition and the Free–Wilson fit."""

import itertools

import numpy as np
import pytest
from rdkit import Chem

from sciattr.datasets import (
    chembl2321810_scaffold,
    decompose_rgroups,
    free_wilson,
    load_chembl2321810,
)
from sciattr.errors import InputError


@pytest.fixture(scope="module")
def series():
    return load_chembl2321810()


def test_series_has_measured_pic50(series):
    assert len(series) == 1017 and not series.skipped
    assert series.values.min() == pytest.approx(4.27) and series.values.max() == pytest.approx(9.22)
    assert series.names[0] == "1520012" and series.values[0] == pytest.approx(5.48)


def test_decomposition_partitions_each_molecule_into_core_and_substituents(series):
    mols = series.mols[:150]
    table = decompose_rgroups(mols, chembl2321810_scaffold())
    assert table.labels == ["R1", "R3"]  # R10 is hydrogen in all of these: RDKit drops the position
    assert 50 < table.matched.size < 150
    for row, index in enumerate(table.matched):
        mol = mols[index]
        atoms = list(table.core_atoms[row]) + [a for group in table.atoms[row].values() for a in group]
        assert sorted(atoms) == list(range(mol.GetNumAtoms()))
        for label, smiles in table.substituents[row].items():
            heavy = Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()
            assert len(table.atoms[row][label]) == heavy


def _factorial_series():
    """All 4 x 3 combinations of two substituents on a benzene core."""
    r1 = {"F": 0.0, "Cl": 0.7, "OC": -0.4, "C#N": 1.1}
    r2 = {"N": 0.0, "C(=O)O": 0.9, "CC": -0.6}
    rows, activity = [], []
    for (a, ca), (b, cb) in itertools.product(r1.items(), r2.items()):
        rows.append({"R1": a, "R2": b})
        activity.append(5.0 + ca + cb)
    return rows, np.array(activity), r1, r2


def test_free_wilson_recovers_additive_coefficients():
    rows, y, r1, r2 = _factorial_series()
    fit = free_wilson(rows, y)
    assert fit.reference == {"R1": "C#N", "R2": "C(=O)O"}  # ties in count: the first by key order
    for sub, value in r1.items():
        assert fit.coefficients[("R1", sub)] == pytest.approx(value - r1["C#N"], abs=1e-10)
    for sub, value in r2.items():
        assert fit.coefficients[("R2", sub)] == pytest.approx(value - r2["C(=O)O"], abs=1e-10)
    assert fit.intercept == pytest.approx(5.0 + r1["C#N"] + r2["C(=O)O"], abs=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit.predict(rows), y, atol=1e-10)


def test_ridge_shrinks_the_coefficients():
    rows, y, _, _ = _factorial_series()
    plain, ridge = free_wilson(rows, y), free_wilson(rows, y, ridge=5.0)
    assert sum(abs(v) for v in ridge.coefficients.values()) < sum(abs(v) for v in plain.coefficients.values())
    assert ridge.r2 < plain.r2


def test_free_wilson_on_the_measured_series(series):
    table = decompose_rgroups(series.mols, chembl2321810_scaffold())
    assert table.matched.size == 628
    fit = free_wilson(table.substituents, series.values[table.matched])
    assert fit.n_compounds == 628
    assert 0.95 < fit.r2 < 1.0  # many singleton substituents: a close fit
    assert 0.7 < free_wilson(table.substituents, series.values[table.matched], ridge=1.0).r2 < 0.85


def test_free_wilson_input_errors():
    with pytest.raises(InputError, match="one activity per compound"):
        free_wilson([{"R1": "F"}], [1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        free_wilson([{"R1": "F"}], [np.nan])
    with pytest.raises(InputError, match="ridge"):
        free_wilson([{"R1": "F"}], [1.0], ridge=-1.0)
