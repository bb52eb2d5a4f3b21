"""Bad rows get a clear message each, the rest is processed, nothing is dropped silently."""

import pytest
import torch

from sciattr.chem.adapter import explain_molecules
from sciattr.chem.featurize import MAX_ATOMS, Chem, SimpleWeaveFeaturizer
from sciattr.chem.weave import W1N2, W2N2
from sciattr.errors import InputError, TargetError

FEAT = SimpleWeaveFeaturizer()


def _model(preset=W2N2, n_tasks=1):
    torch.manual_seed(0)
    return preset(FEAT.n_atom_features, FEAT.n_pair_features, n_tasks, n_hidden=8, n_atom_hidden=8,
                  n_dense=8).double()


BATCH = [
    ("CCO", None),
    ("not a smiles", "expected a valid SMILES"),
    ("", "non-empty SMILES"),
    ("   ", "non-empty SMILES"),
    ("[H][H]", "at least one heavy atom"),
    ("C(C)(C)(C)(C)C", "Explicit valence"),
    ("C1CC", "expected a valid SMILES"),
    ("[Xe]C(=O)O", None),
    (None, "got None"),
    (42, "got int 42"),
    ("C" * (MAX_ATOMS + 1), f"at most {MAX_ATOMS} atoms"),
    ("c1ccccc1[N+](=O)[O-].[Na+]", None),
]


def test_bad_rows_are_reported_and_the_rest_processed():
    items = [item for item, _ in BATCH]
    res = explain_molecules(_model(), items, steps=8)
    good = [k for k, (_, message) in enumerate(BATCH) if message is None]
    assert res.rows == good and len(res.rows) + len(res.errors) == len(BATCH)
    for error in res.errors:
        expected = BATCH[error["row"]][1]
        assert expected is not None and expected in error["message"], error
    assert [e["row"] for e in res.errors] == [k for k, (_, m) in enumerate(BATCH) if m is not None]
    assert res.errors[0]["input"] == "not a smiles"
    xenon = res.rows.index(7)
    assert any("Xe" in note for note in res.notes[xenon]) and res.to_atoms(xenon)[0]["symbol"] == "Xe"
    salt = res.rows.index(11)
    assert res.molecules[salt].GetNumAtoms() == 9 and any("[Na+]" in note for note in res.notes[salt])
    assert res.relative_gap.max() < 0.2  # processed rows are real attributions, not placeholders


def test_a_500_atom_molecule_runs():
    smiles = "CC(O)" * 167  # 501 heavy atoms, pairs within distance 2
    # 167 identical units put their ReLU kinks at the same alphas: a kinked path wants many nodes
    res = explain_molecules(_model(W1N2), [smiles, "CCO"], steps=256, rule="riemann_trapezoid")
    assert res.molecules[0].GetNumAtoms() == 501 and not res.errors
    assert res.attributions["atoms"].shape[0] == 504
    assert torch.isfinite(res.attributions["pairs"]).all() and res.relative_gap[0] < 0.05


def test_too_many_pairs_is_a_clear_row_error():
    feat = SimpleWeaveFeaturizer(max_distance=None, max_links=1000)
    res = explain_molecules(_model(), ["C" * 100, "CCO"], featurizer=feat, steps=4)
    assert res.rows == [1]
    assert "at most 1000 atom pairs" in res.errors[0]["message"] and "max_distance" in res.errors[0]["message"]


def test_all_rows_bad_raises_with_the_reasons():
    with pytest.raises(InputError, match=r"row 0: expected a valid SMILES.*row 1: expected a non-empty"):
        explain_molecules(_model(), ["xyz", ""])


@pytest.mark.parametrize("molecules", ["CCO", None, 3, {"CCO"}])
def test_molecules_must_be_a_sequence(molecules):
    with pytest.raises(InputError, match=r"expected a list \(or any (ordered )?sequence, or a pandas Series\) of SMILES"):
        explain_molecules(_model(), molecules)


def test_a_single_smiles_string_is_refused_with_advice():
    with pytest.raises(InputError, match=r"got str 'CCO' \(one molecule: wrap it in a list, e.g. \['CCO'\]\)"):
        explain_molecules(_model(), "CCO")


def test_any_sequence_or_series_of_molecules_is_accepted():
    pandas = pytest.importorskip("pandas")
    model = _model()
    listed = explain_molecules(model, ["CCO", "xyz", "CC"], steps=4)
    for molecules in (("CCO", "xyz", "CC"), pandas.Series(["CCO", "xyz", "CC"])):
        res = explain_molecules(model, molecules, steps=4)
        assert res.rows == listed.rows == [0, 2] and res.errors[0]["row"] == 1
        torch.testing.assert_close(res.attributions["atoms"], listed.attributions["atoms"])
    labelled = explain_molecules(model, pandas.Series(["CCO", "xyz", "CC"], index=["a", "b", "c"]), steps=4)
    assert labelled.ids == ["a", "c"] and labelled.rows == [0, 2]
    assert list(labelled.to_dataframe("molecule")["id"]) == ["a", "c"]


def test_unsanitizable_mol_object_is_a_row_error():
    raw = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    res = explain_molecules(_model(), [raw, "CC"], steps=4)
    assert res.rows == [1] and res.errors[0]["row"] == 0 and "sanitizable" in res.errors[0]["message"]


def test_target_out_of_range():
    with pytest.raises(TargetError, match="out of range"):
        explain_molecules(_model(n_tasks=2), ["CCO"], target=5, steps=4)


def test_featurizer_model_mismatch_names_the_widths():
    from sciattr.chem.featurize import WeaveFeaturizer

    with pytest.raises(InputError, match=r"atoms of shape \(N, 14\); got \(\d+, 54\)"):
        explain_molecules(_model(), ["CCO"], featurizer=WeaveFeaturizer(), steps=4)


def test_a_model_that_cannot_take_the_featurizers_widths_is_named_before_any_work():
    from torch import nn

    from sciattr.chem import PyGFeaturizer

    class Narrow(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 1)

        def forward(self, x, edge_index, edge_attr, batch):
            return self.lin(x).sum(0, keepdim=True)

    width = PyGFeaturizer().n_atom_features
    with pytest.raises(InputError, match=rf"expected a model that takes atom features of width {width} and edge "
                                         r"features of width \d+ from PyGFeaturizer; calling it on 'CCO' failed: "
                                         r"mat1 and mat2 shapes cannot be multiplied .*pass the featurizer="):
        explain_molecules(Narrow().eval(), ["CCO"])
