"""The W1N2 anecdote of "Gradients of Counterfactuals": dead features found from attributions."""

from collections import Counter

import pytest
import torch

from sciattr.chem.adapter import explain_molecules
from sciattr.chem.dead_features import receptive_field_report, wl_colours
from sciattr.chem.featurize import Chem, SimpleWeaveFeaturizer
from sciattr.chem.weave import W1N2, W2N2
from sciattr.errors import InputError

FEAT = SimpleWeaveFeaturizer()
SMILES = ["CC(=O)Nc1ccc(O)cc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(N)C(=O)OCCS",
          "c1ccc2ccccc2c1CCN"]
CAFFEINE = 2  # atoms 6 and 9: carbonyl carbons, one bonded to C/O/N, the other to N/O/N


def _explain(preset, seed):
    torch.manual_seed(seed)
    model = preset(FEAT.n_atom_features, FEAT.n_pair_features, 1, n_hidden=16, n_atom_hidden=16, n_dense=16)
    return explain_molecules(model.double(), SMILES, steps=32)


def test_wl_colours():
    mol = Chem.MolFromSmiles("OCCCO")
    labels = [a.GetSymbol() for a in mol.GetAtoms()]
    colours = wl_colours(mol, labels, 2)
    assert colours[0] == [0, 1, 1, 1, 0]
    assert colours[1][1] == colours[1][3] != colours[1][2]  # C next to O vs the middle C
    assert colours[2][0] == colours[2][4]  # symmetric atoms never split
    ring = Chem.MolFromSmiles("c1ccccc1")
    assert wl_colours(ring, ["c"] * 6, 3)[3] == [0] * 6
    with pytest.raises(InputError):
        wl_colours(mol, labels[:2], 1)


def _pair_signature(res, i, atom):
    """(own feature row, multiset of the atom's pair-feature rows): all a W1N2 atom can see."""
    rows = res.inputs["atoms"][res.segments["atoms"] == i]
    pairs = res.inputs["pairs"][res.segments["pairs"] == i]
    ends = res.link_atoms(i)
    mine = (ends[0] == atom) | (ends[1] == atom)
    return tuple(rows[atom].tolist()), frozenset(Counter(tuple(p.tolist()) for p in pairs[mine]).items())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w1n2_attributions_depend_only_on_own_type_and_pairs(seed):
    """Atoms of one type with the same pairs (bond types, distances) get the same attribution,
    whatever their neighbours are -- and the diagnostic flags it."""
    res = _explain(W1N2, seed)
    n_equal_signatures = 0
    for i in range(res.n_examples):
        # the atom-feature view: what flows through the atom's own representation. (The complete
        # score adds half of each pair, and a pair's attribution also flows through its other atom.)
        values = res.atom_feature_values(i)
        signatures = [_pair_signature(res, i, a) for a in range(values.shape[0])]
        for a in range(len(signatures)):
            for b in range(a + 1, len(signatures)):
                if signatures[a] == signatures[b]:
                    n_equal_signatures += 1
                    assert float(values[a]) == pytest.approx(float(values[b]), rel=1e-9, abs=1e-13)
    assert n_equal_signatures > 10
    caffeine = res.atom_feature_values(CAFFEINE)
    assert float(caffeine[6]) == pytest.approx(float(caffeine[9]), rel=1e-9)
    complete = res.atom_values(CAFFEINE)  # pairs see both ends: the complete scores tell them apart
    assert abs(float(complete[6] - complete[9])) > 1e-4 * float(complete.abs().max())
    report = receptive_field_report(res, max_radius=3)
    assert report.expected_radius == 1 and report.effective_radius == 0 and report.flagged
    assert any(c["molecule"] == CAFFEINE and c["atoms"] == (6, 9) and c["differ_at"] == 1 for c in report.collapsed)
    assert report.collapsed_by_radius[1] > 0 and "FLAGGED" in report.summary()
    assert report.n_pairs_compared == sum(report.compared_by_radius.values()) > 300


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w2n2_is_not_flagged(seed):
    res = _explain(W2N2, seed)
    report = receptive_field_report(res, max_radius=3)
    assert report.expected_radius == 2 and report.effective_radius >= 2 and not report.flagged
    assert report.n_pairs_compared > 300
    caffeine = res.atom_feature_values(CAFFEINE)
    assert abs(float(caffeine[6] - caffeine[9])) > 1e-4 * float(caffeine.abs().max())


def test_expected_radius_can_be_given_and_options_checked():
    res = _explain(W2N2, 0)
    assert receptive_field_report(res, expected_radius=5, max_radius=3).flagged  # asked for more than it resolves
    with pytest.raises(InputError, match="rtol"):
        receptive_field_report(res, rtol=-1.0)
    with pytest.raises(InputError, match="MoleculeAttribution"):
        receptive_field_report(object())
