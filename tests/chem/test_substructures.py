"""Aggregating attributions onto functional groups, ring systems, BRICS fragments and R-groups."""

import itertools

import numpy as np
import pytest
import torch
from rdkit import Chem

from sciattr.chem import W2N2, SimpleWeaveFeaturizer
from sciattr.chem.adapter import explain_molecules
from sciattr.chem.substructures import (
    aggregate_attribution,
    aggregate_substructures,
    atom_scores,
    brics_units,
    compare_with_free_wilson,
    functional_group_units,
    ring_system_units,
)
from sciattr.errors import InputError

ASPIRIN = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")


def test_functional_groups_of_aspirin():
    units = {(name, tuple(sorted(atoms))) for name, atoms in functional_group_units(ASPIRIN)}
    assert units == {("carboxylic acid", (10, 11, 12)), ("ester", (0, 1, 2, 3, 4)), ("ether", (1, 3, 4)),
                     ("benzene", (4, 5, 6, 7, 8, 9))}


def test_ring_systems_fuse_only_across_bonds():
    systems = ring_system_units(Chem.MolFromSmiles("c1ccc2ccccc2c1-c1ccccc1"))
    assert sorted((key, len(atoms)) for key, atoms in systems) == [("c1ccc2ccccc2c1", 10), ("c1ccccc1", 6)]
    spiro = ring_system_units(Chem.MolFromSmiles("C1CCC2(C1)CCCC2"))
    assert len(spiro) == 2
    assert ring_system_units(Chem.MolFromSmiles("CCO")) == []


def test_brics_fragments_partition_the_atoms():
    units = brics_units(ASPIRIN)
    assert sorted(key for key, _ in units) == ["*C(=O)O", "*C(C)=O", "*O*", "*c1ccccc1*"]
    atoms = sorted(a for _, group in units for a in group)
    assert atoms == list(range(ASPIRIN.GetNumAtoms()))


def test_aggregation_statistics_by_hand():
    phenol, toluene = Chem.MolFromSmiles("Oc1ccccc1"), Chem.MolFromSmiles("Cc1ccccc1")
    values = [np.array([3.0, 1, 1, 1, 1, 1, 1]), np.array([0.0, -1, -1, -1, 0, 0, 0])]
    ranking = aggregate_substructures([phenol, toluene], values, kind="functional_groups")
    stats = {s.key: s for s in ranking.stats}
    assert stats["benzene"].n_occurrences == 2 and stats["benzene"].n_molecules == 2
    assert stats["benzene"].mean == pytest.approx((6.0 - 3.0) / 2)
    assert stats["benzene"].mean_per_atom == pytest.approx(0.25)
    assert stats["benzene"].total == pytest.approx(3.0)
    assert stats["phenol"].mean == pytest.approx(4.0)  # O (3) + its carbon (1)
    assert [s.key for s in ranking.stats] == ["phenol", "benzene"]
    assert aggregate_substructures([phenol, toluene], values, min_count=2).top(5)[0].key == "benzene"
    with pytest.raises(InputError, match="kind"):
        aggregate_substructures([phenol], values[:1], kind="scaffolds")


def test_molecules_with_the_wrong_number_of_values_are_reported():
    ranking = aggregate_substructures([ASPIRIN, ASPIRIN], [np.ones(13), np.ones(5)], kind="brics")
    assert ranking.n_molecules == 1 and ranking.skipped[0]["molecule"] == 1


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(1)
    featurizer = SimpleWeaveFeaturizer()
    model = W2N2(featurizer.n_atom_features, featurizer.n_pair_features, 1).double().eval()
    return explain_molecules(model, ["CO", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1CCN", "ClCC(=O)C"],
                             featurizer=featurizer, steps=64)


def test_atom_scores_split_each_pair_between_its_atoms(result):
    atoms, pairs = result.atom_feature_values(0).numpy(), result.link_values(0).numpy()
    assert pairs.shape == (1,)
    np.testing.assert_allclose(atom_scores(result, 0), atoms + pairs[0] / 2, rtol=1e-12)
    for i in range(result.n_examples):
        total = float(result.atom_feature_values(i).sum() + result.link_values(i).sum())
        assert atom_scores(result, i).sum() == pytest.approx(total, rel=1e-12)
        # the same numbers as the default atom view
        np.testing.assert_allclose(atom_scores(result, i), result.atom_values(i).numpy(), rtol=1e-15)
        assert [a["attribution"] for a in result.to_atoms(i)] == pytest.approx(atom_scores(result, i).tolist(),
                                                                               rel=1e-15)


def test_aggregate_attribution_uses_the_molecules_predicted_active(result):
    threshold = float(result.forward_x.median())
    ranking = aggregate_attribution(result, kind="brics", active_threshold=threshold)
    assert ranking.n_molecules == int((result.forward_x > threshold).sum())
    every = aggregate_attribution(result, kind="brics", active_threshold=None)
    assert every.n_molecules == 4
    total = sum(s.total for s in every.stats)
    expected = sum(atom_scores(result, i).sum() for i in range(4))  # BRICS fragments cover every atom
    assert total == pytest.approx(expected, rel=1e-10)


def _factorial_series():
    """4 x 3 substituents on a pyridine; atoms of R1 come first in the SMILES, then 5 ring atoms, then R2."""
    r1 = {"F": 0.3, "Cl": 0.7, "OC": -0.4, "N#C": 1.1}
    r2 = {"N": 0.0, "C(=O)O": 0.9, "CC": -0.6}
    mols, activity, values = [], [], []
    for (a, ca), (b, cb) in itertools.product(r1.items(), r2.items()):
        mol = Chem.MolFromSmiles(f"{a}c1ccnc({b})c1")
        na, nb = Chem.MolFromSmiles(a).GetNumAtoms(), Chem.MolFromSmiles(b).GetNumAtoms()
        v = np.zeros(mol.GetNumAtoms())
        v[:na] = ca / na
        v[na + 5:na + 5 + nb] = cb / nb
        mols.append(mol)
        activity.append(5.0 + ca + cb)
        values.append(v)
    return mols, np.array(activity), values


def test_free_wilson_and_additive_attributions_rank_alike():
    mols, activity, values = _factorial_series()
    scaffold = Chem.MolFromSmiles("[*:1]c1ccnc([*:2])c1")
    comparison = compare_with_free_wilson(mols, values, activity, scaffold, min_count=1)
    assert comparison.n_molecules == 12
    assert comparison.fit.r2 == pytest.approx(1.0)
    assert comparison.attribution[("R1", "Cl[*:1]")] == pytest.approx(0.7)
    assert comparison.attribution[("R2", "CC[*:2]")] == pytest.approx(-0.6)
    assert comparison.spearman == pytest.approx(1.0)
    assert comparison.per_position == {"R1": pytest.approx(1.0), "R2": pytest.approx(1.0)}
    # Free-Wilson coefficients are relative to a reference (Cl, CC); centred they equal the truth minus
    # each position's mean: C(=O)O 0.9 - 0.1 is the largest
    assert comparison.ranking("free_wilson")[0] == ("R2", "O=C(O)[*:2]")
    assert comparison.centred("free_wilson")[("R2", "O=C(O)[*:2]")] == pytest.approx(0.8)
    assert comparison.ranking("attribution") == comparison.ranking("free_wilson")
    assert len(comparison.table()) == 7
    flipped = compare_with_free_wilson(mols, [-v for v in values], activity, scaffold, min_count=1)
    assert flipped.spearman == pytest.approx(-1.0)
