"""HTML reports and the `sciattr molecule` entry points (single SMILES and batch files)."""

import csv
import re

import pytest
import torch
from rdkit import Chem

from sciattr.chem import W2N2, SimpleWeaveFeaturizer
from sciattr.chem.adapter import explain_molecules
from sciattr.chem.report import (
    BATCH_COLUMNS,
    molecule_report,
    read_molecule_file,
    run_batch_cli,
    run_molecule_cli,
)
from sciattr.errors import InputError
from sciattr.zoo import load_model


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    featurizer = SimpleWeaveFeaturizer()
    model = W2N2(featurizer.n_atom_features, featurizer.n_pair_features, 1).double().eval()
    return explain_molecules(model, ["c1ccccc1O", "CCN"], featurizer=featurizer, steps=64)


def test_report_is_self_contained_and_states_the_numbers(result, tmp_path):
    path = molecule_report(result, tmp_path / "sub" / "phenol.html", model_name="tiny-w2n2")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "tiny-w2n2" in text and "Oc1ccccc1" in text
    assert text.count("<svg") == 1 and "<script" not in text and "src=" not in text and "href=" not in text
    assert f"{float(result.forward_x[0]):+.6g}" in text
    assert f"{float(result.completeness_gap[0]):+.6g}" in text
    atom_rows = re.findall(r"<tr><td>(\d+)</td><td class='l'>([A-Z][a-z]?)</td>", text)
    assert [int(k) for k, _ in atom_rows] == list(range(7))
    assert [s for _, s in atom_rows] == [a.GetSymbol() for a in result.molecules[0].GetAtoms()]
    with pytest.raises(InputError, match="molecule index"):
        molecule_report(result, tmp_path / "x.html", index=2)


def test_single_molecule_cli_writes_html_and_png(tmp_path):
    model = load_model("w2n2-benzene")
    paths = run_molecule_cli("CC(=O)Oc1ccccc1C(=O)O", model, None, tmp_path / "aspirin.html")
    assert [p.name for p in paths] == ["aspirin.html", "aspirin.png"]
    assert "w2n2-benzene" in paths[0].read_text()
    assert paths[1].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="valid SMILES"):
        run_molecule_cli("C1CC", model, None, tmp_path / "bad.html")
    with pytest.raises(InputError, match=r"expected a model with its card \(e.g. sciattr.zoo.load_model\(name\)\); got str"):
        run_molecule_cli("CCO", "w2n2-benzene", None, tmp_path / "bad.html")


def test_batch_cli_keeps_every_row_in_order(tmp_path):
    source = tmp_path / "input.csv"
    source.write_text("name,SMILES\nphenol,c1ccccc1O\nbroken,not_a_smiles\nsalt,CCN(CC)CCOc1ccccc1.Cl\nempty,\n")
    paths = run_batch_cli(source, load_model("gcn-benzene"), None, tmp_path / "out")
    with (tmp_path / "out" / "molecules.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(BATCH_COLUMNS)
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "error"]
    assert rows[1]["error"].startswith("expected a valid SMILES; got 'not_a_smiles' (RDKit: SMILES Parse Error: ")
    assert "position 3" in rows[1]["error"]  # RDKit's own reason reaches the row
    assert rows[3]["error"] == "expected a non-empty SMILES string; got ''"
    assert "largest fragment" in rows[2]["notes"]
    assert abs(float(rows[0]["relative_gap"])) < 0.05
    with (tmp_path / "out" / "atoms.csv").open() as handle:
        atoms = list(csv.DictReader(handle))
    assert len(atoms) == 7 + 14
    assert {p.name for p in paths} >= {"molecules.csv", "atoms.csv", "grid.svg", "row0.svg", "row2.svg"}


def test_batch_cli_reads_sdf_with_an_unreadable_record(tmp_path):
    good = Chem.MolToMolBlock(Chem.MolFromSmiles("c1ccccc1C"))
    sdf = tmp_path / "input.sdf"
    sdf.write_text(good + "$$$$\nbroken\n  garbage\n\n  1  0  0  0  0  0            999 V2000\nM  END\n$$$$\n" + good
                   + "$$$$\n")
    run_batch_cli(sdf, load_model("w1n2-benzene"), None, tmp_path / "out")
    with (tmp_path / "out" / "molecules.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["error"] == "RDKit cannot read record 1 (broken): Atom line too short: 'M  END' on line 25"


@pytest.mark.parametrize("text", ["formula\nCO\nNO\n", "name,formula\nmethanol,CO\n", "CO\nNO\n"])
def test_a_csv_without_a_smiles_column_is_refused(tmp_path, text):
    source = tmp_path / "input.csv"
    source.write_text(text)
    with pytest.raises(InputError, match=r"expected a CSV with a column named 'smiles'; got columns \["):
        read_molecule_file(source)
    (tmp_path / "named.csv").write_text("Name,SMILES\nmethanol,CO\n")
    assert read_molecule_file(tmp_path / "named.csv") == (["CO"], ["CO"])


def test_a_file_that_is_not_utf8_is_refused_with_the_offset(tmp_path):
    source = tmp_path / "input.csv"
    source.write_bytes("smiles\nCCO\nC\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"expected a UTF-8 text file; got .* byte 0xe9 at offset 12"):
        read_molecule_file(source)
