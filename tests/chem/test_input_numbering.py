"""Every atom index is the input's own; what was left out, what RDKit said and what the featurizer
cannot represent is on the row; batches whose only molecule has no pairs work; the model card
decides the featurizer."""

import re
import warnings

import pytest
import torch
from torch import nn

from sciattr.chem import (
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    draw_attribution,
    draw_attribution_grid,
    explain_molecules,
    molecule_report,
    terminal_table,
)
from sciattr.chem.weave import W2N2
from sciattr.errors import BaselineWarning

FEAT = SimpleWeaveFeaturizer()


class LinearWeave(nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w_atom = nn.Parameter(torch.randn(FEAT.n_atom_features, generator=gen, dtype=torch.float64))
        self.w_pair = nn.Parameter(torch.randn(FEAT.n_pair_features, generator=gen, dtype=torch.float64))

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_zeros(n_molecules).index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)


@pytest.fixture(scope="module")
def salts():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return explain_molecules(LinearWeave(), ["[Na+].CC(=O)[O-]", "[H]OC", "CC(=O)O"], featurizer=FEAT, steps=2)


def test_atoms_are_numbered_as_in_the_input(salts):
    # [Na+].CC(=O)[O-]: atom 0 of the input is Na (left out); the carbons are 1 and 2
    assert [(a["index"], a["symbol"]) for a in salts.to_atoms(0)] == [(1, "C"), (2, "C"), (3, "O"), (4, "O")]
    assert [(a["index"], a["symbol"]) for a in salts.to_atoms(1)] == [(1, "O"), (2, "C")]  # [H]OC: H was 0
    assert salts.input_atoms(0) == [1, 2, 3, 4] and salts.input_atoms(2) == [0, 1, 2, 3]
    assert [(b["bond"], b["begin"], b["end"]) for b in salts.to_bonds(1)] == [(1, 1, 2)]  # input bond 1 (O-C)
    assert {(p["begin"], p["end"]) for p in salts.pair_list(0)} == {(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)}
    matrix = salts.to_pairs(0)
    assert matrix.shape == (5, 5) and float(matrix[0].abs().sum()) == 0  # Na: no pairs
    # the same molecule without the salt gets the same numbers, shifted by one atom
    plain = [a["attribution"] for a in salts.to_atoms(2)]
    assert [a["attribution"] for a in salts.to_atoms(0)][:3] == pytest.approx(plain[:3], rel=1e-12)
    atoms = salts.table("atom")
    assert [(t["row"], t["atom"]) for t in atoms[:6]] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]


def test_what_was_left_out_is_said_in_every_output(salts, tmp_path):
    assert salts.notes[0][0] == "kept the largest fragment; left out [Na+] (input atoms 0)"
    assert salts.notes[1][0] == "explicit hydrogens left out as atoms (input atoms 0)"
    assert not any("left out" in n for n in salts.notes[2])
    for level in ("molecule", "atom", "bond", "pair"):
        frame = salts.to_dataframe(level)
        left = frame.groupby("row")["notes"].apply(lambda s: s.str.contains("left out").all())
        assert left.to_dict() == {0: True, 1: True, 2: False}, level
    svg = draw_attribution(salts, 0, title="salt")
    assert re.search(r"<title>salt \(atoms left out \(see notes\)\) +F\(x\) [-\d.e]+ +F\(x'\) 0 ", svg)
    assert "atoms left out" not in draw_attribution(salts, 2)
    grid = re.search(r"<title>(.*)</title>", draw_attribution_grid(salts)).group(1).split(" | ")
    assert [legend.endswith("*") for legend in grid] == [True, True, False] and "F(x')" in grid[0]
    page = molecule_report(salts, tmp_path / "salt.html", index=0).read_text()
    assert "left out [Na+]" in page
    assert "left out" in terminal_table(salts, 0)


def test_rdkit_warnings_and_unrepresented_features_reach_the_row():
    molecules = ["C/C(\\F)=C/C", "[CH3]", "[13CH3]O", "[Xe]C(=O)O", "C[N+](C)(C)C", "*CC", "CCO"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(LinearWeave(), molecules, featurizer=FEAT, steps=2)
    notes = ["; ".join(n) for n in res.notes]
    assert notes[0] == ("RDKit: Conflicting single bond directions around double bond at index 2.; "
                        "BondStereo set to STEREONONE and single bond directions set to NONE.")
    assert notes[1] == ("radical electrons (input atom 0) not represented by this featurizer "
                        "(featurized like the same atom without it)")
    assert notes[2] == "isotope (input atom 0) not represented by this featurizer (featurized like the same atom without it)"
    assert "element Xe (input atom 0) featurized as element=other" in notes[3]
    assert notes[4] == ("formal charge (input atom 1) not represented by this featurizer "
                        "(featurized like the same atom without it)")
    assert notes[5] == "dummy atom (input atom 0) featurized as element=other"
    assert notes[6] == ""
    # the radical's prediction is the closed-shell molecule's: that is why the note is there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        closed = explain_molecules(LinearWeave(), ["C"], featurizer=FEAT, steps=2)
    assert float(res.forward_x[1]) == float(closed.forward_x[0])


@pytest.mark.parametrize("only", ["C", "[Na+]", "[Og]"])
@pytest.mark.parametrize("kind", ["weave", "pyg"])
def test_a_batch_whose_only_molecule_has_no_pairs(only, kind):
    if kind == "weave":
        torch.manual_seed(0)
        model = W2N2(FEAT.n_atom_features, FEAT.n_pair_features, 1, n_hidden=8, n_atom_hidden=8, n_dense=8).double()
        feat = FEAT
    else:
        geometric = pytest.importorskip("torch_geometric.nn")

        class GCN(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = geometric.GCNConv(PyGFeaturizer().n_atom_features, 8)
                self.out = nn.Linear(8, 1)

            def forward(self, x, edge_index, edge_attr, batch):
                return self.out(geometric.global_add_pool(torch.tanh(self.conv(x, edge_index)), batch))

        torch.manual_seed(0)
        model, feat = GCN().double(), PyGFeaturizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, ["not a smiles", only], featurizer=feat)
    assert res.rows == [1] and res.errors[0]["row"] == 0
    assert res.attributions[res.link_name].shape[0] == 0 and res.link_values(0).numel() == 0
    (atom,) = res.to_atoms(0)  # the complete score of the only atom is the whole attribution
    assert atom["index"] == 0 and atom["attribution"] == pytest.approx(float(res.per_example()[0]), rel=1e-12)
    assert float(res.relative_gap[0]) <= 0.05 and abs(float(res.delta[0])) > 0
    assert res.to_bonds(0) == [] and res.pair_list(0) == []


def test_the_model_card_decides_the_featurizer():
    zoo = pytest.importorskip("sciattr.zoo")
    pytest.importorskip("torch_geometric")
    model = zoo.load_model("gcn-benzene")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, ["c1ccccc1O", "CCO"])  # no featurizer=
        given = explain_molecules(model, ["c1ccccc1O", "CCO"], featurizer=zoo.load_featurizer(model))
    torch.testing.assert_close(res.attributions["atoms"], given.attributions["atoms"], rtol=0, atol=0)
    assert res.link_name == "edges" and res.target_names == ("benzene",)
    assert res.meta["decision_threshold"] == 0.0
    by_name = explain_molecules(model, ["c1ccccc1O"], target="benzene", steps=8)
    by_index = explain_molecules(model, ["c1ccccc1O"], target=0, steps=8)
    torch.testing.assert_close(by_name.attributions["atoms"], by_index.attributions["atoms"], rtol=0, atol=0)


def test_convergence_warnings_name_input_rows():
    from sciattr.errors import ConvergenceWarning

    torch.manual_seed(0)
    model = W2N2(FEAT.n_atom_features, FEAT.n_pair_features, 1, n_hidden=16, n_atom_hidden=16, n_dense=16).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        with pytest.warns(ConvergenceWarning, match=r"\['row 2'") as seen:
            res = explain_molecules(model, ["xyz", "", "CC(=O)Nc1ccc(O)cc1"], steps=1, rule="riemann_left")
    assert res.rows == [2] and float(res.relative_gap[0]) > 0.05
    assert "row 0" not in str(seen[0].message)  # never the position among the valid molecules
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        with pytest.warns(ConvergenceWarning, match=r"'row 2 \(baseline 1\)'"):
            explain_molecules(model, ["xyz", "", "CC(=O)Nc1ccc(O)cc1"], steps=1, rule="riemann_left",
                              baselines=["zeros", "mean"])


@pytest.mark.parametrize("make,charges", [(SimpleWeaveFeaturizer, False), (lambda: PyGFeaturizer(atoms="simple"), False),
                                          (PyGFeaturizer, True)])
def test_each_featurizer_notes_what_it_cannot_represent(make, charges):
    feat = make()
    charged = feat("C[N+](C)(C)C")
    # charges: a column where the featurizer has one (and a note for what is beyond +-2)
    assert charged.notes == (() if charges else (
        "formal charge (input atom 1) not represented by this featurizer (featurized like the same atom without it)",))
    iron = feat("CC[Fe+3]").notes
    assert "element Fe (input atom 2) featurized as element=other" in iron
    assert ("formal charge beyond +-2 (input atom 2) featurized as the +-2 column" in iron) == charges
    # the same features with and without what is not represented
    assert torch.equal(feat("[13CH3]O").atoms, feat("CO").atoms)
    assert feat("[13CH3]O").notes == (("isotope (input atom 0) not represented by this featurizer "
                                      "(featurized like the same atom without it)"),)


def test_added_hydrogens_get_their_own_numbers_in_every_view():
    feat = SimpleWeaveFeaturizer(hydrogens="explicit")
    model = LinearWeave()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, ["[Na+].OC"], featurizer=feat, steps=2)
    assert [(a["index"], a["symbol"]) for a in res.to_atoms(0)] == [(1, "O"), (2, "C")] + [(k, "H") for k in range(3, 7)]
    pairs = res.pair_list(0)
    # 6 atoms: 15 pairs less the 3 between the hydroxyl H and the methyl Hs (distance 3): all distinct
    assert len(pairs) == len({(p["begin"], p["end"]) for p in pairs}) == 12
    matrix = res.to_pairs(0)
    assert matrix.shape == (7, 7) and float(matrix.diagonal().abs().sum()) == 0 and float(matrix[0].abs().sum()) == 0
    assert float(matrix.triu().sum()) == pytest.approx(float(res.link_values(0).sum()), rel=1e-12)
    bonds = res.to_bonds(0)
    assert sorted(b["bond"] for b in bonds) == [0, 1, 2, 3, 4] and bonds[0] == {**bonds[0], "begin": 1, "end": 2}
    assert "hydrogens added as atoms 3-6" in "; ".join(res.notes[0])


@pytest.mark.parametrize("featurizer", [FEAT, PyGFeaturizer(atoms="simple")], ids=["weave", "pyg"])
def test_batch_columns_equal_the_per_molecule_views(featurizer):
    """atom_columns/bond_columns (what tables, DataFrames and the runner read) hold exactly the
    numbers of to_atoms/to_bonds, molecule by molecule, in the input's numbering."""
    from sciattr.chem.gnn import GINENetwork

    molecules = ["[Na+].CC(=O)[O-]", "[H]OC", "C", "c1ccccc1Cl", "not a smiles", "CC#N"]
    torch.manual_seed(0)
    model = LinearWeave() if featurizer is FEAT else GINENetwork(featurizer.n_atom_features,
                                                                   featurizer.n_edge_features, hidden=8).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = explain_molecules(model, molecules, featurizer=featurizer, steps=8)
    atoms, bonds = res.atom_columns(), res.bond_columns()
    expected_atoms = [(i, a["index"], a["symbol"], a["atom_score"], a["feature_attribution"])
                      for i in range(res.n_examples) for a in res.to_atoms(i)]
    got_atoms = list(zip(atoms["molecule"].tolist(), atoms["atom"].tolist(), atoms["element"],
                         atoms["atom_score"].tolist(), atoms["feature_attribution"].tolist()))
    assert got_atoms == expected_atoms
    expected_bonds = [(i, b["bond"], b["begin"], b["end"], b["bond_type"], b["attribution"])
                      for i in range(res.n_examples) for b in res.to_bonds(i)]
    got_bonds = list(zip(bonds["molecule"].tolist(), bonds["bond"].tolist(), bonds["begin"].tolist(),
                         bonds["end"].tolist(), bonds["bond_type"], bonds["attribution"].tolist()))
    assert got_bonds == expected_bonds
    assert res.errors[0]["row"] == 4 and bonds["bond_type"].count("aromatic") == 6
    # each molecule's complete scores add up to its atoms' and links' attributions (nothing lost)
    for i in range(res.n_examples):
        total = float(res.atom_feature_values(i).sum() + res.link_values(i).sum())
        assert atoms["atom_score"][atoms["molecule"] == i].sum() == pytest.approx(total, rel=1e-10, abs=1e-12)
    if featurizer is FEAT:  # the linear oracle: an atom's own features give x . w_atom exactly
        w = model.w_atom.detach()
        graph = featurizer("CC#N")
        own = (graph.atoms.double() @ w).tolist()
        last = res.n_examples - 1
        assert atoms["feature_attribution"][atoms["molecule"] == last].tolist() == pytest.approx(own, rel=1e-12)
    frame = res.to_dataframe("atom")
    assert frame["atom_score"].tolist() == atoms["atom_score"].tolist()
    assert frame["row"].tolist() == [res.rows[i] for i in atoms["molecule"].tolist()]
