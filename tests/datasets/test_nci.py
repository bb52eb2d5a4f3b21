"""The NCI molecules shipped with RDKit, molecule sets and seeded splits."""

import numpy as np
import pytest

from sciattr.datasets import MoleculeSet, load_nci, split_indices
from sciattr.errors import InputError


@pytest.fixture(scope="module")
def nci():
    return load_nci()


def test_every_line_is_a_molecule_or_a_reported_skip(nci):
    assert len(nci) == 4991
    assert len(nci) + len(nci.skipped) == 4999
    assert [row.line for row in nci.skipped][:2] == [2098, 2898]
    assert all(row.reason for row in nci.skipped)
    assert nci.source.endswith("first_5K.smi")


def test_names_and_tpsa_values_come_from_the_files(nci):
    assert nci.names[:3] == ["1", "2", "3"]
    assert nci.smiles[0] == "CC1=CC(=O)C=CC1=O"
    np.testing.assert_allclose(nci.values[:3], [34.14, 25.78, 106.51])
    assert np.isfinite(nci.values).all()
    assert nci.mols[0].GetNumAtoms() == 9


def test_limit_and_subset():
    first = load_nci(limit=10)
    assert len(first) == 10
    part = first.subset([3, 1])
    assert isinstance(part, MoleculeSet)
    assert part.names == ["4", "2"] and part.values.tolist() == first.values[[3, 1]].tolist()
    with pytest.raises(InputError, match="expected indices"):
        first.subset([10])
    with pytest.raises(InputError, match="positive integer"):
        load_nci(limit=0)


def test_split_is_a_seeded_partition():
    parts = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    assert [len(p) for p in parts] == [81, 10, 10]
    joined = np.sort(np.concatenate(parts))
    np.testing.assert_array_equal(joined, np.arange(101))
    again = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    assert all((a == b).all() for a, b in zip(parts, again))
    other = split_indices(101, (0.8, 0.1, 0.1), seed=4)
    assert not all(len(a) == len(b) and (a == b).all() for a, b in zip(parts, other))


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (1.2, -0.2), ()])
def test_split_rejects_fractions_not_summing_to_one(fractions):
    with pytest.raises(InputError, match="fractions"):
        split_indices(10, fractions)
