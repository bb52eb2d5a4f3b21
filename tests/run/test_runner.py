"""The streaming runner: values equal to the in-memory API, ids and input numbering, schema, resume after
kill -9, shards, refusal to mix runs, progress lines."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from sciattr.errors import InputError
from sciattr.run import explain_file, explain_stream, merge, parse_shard, summarize
from sciattr.run.progress import Progress
from tests.run.conftest import SMILES

MODEL = "w2n2-benzene"
FAST = {"steps": 8, "rule": "trapezoid", "progress": False}


def _run(path, out, **options):
    return explain_file(path, model=MODEL, out_dir=out, **{**FAST, "part_rows": 4, **options})


def test_rows_ids_values_and_input_numbering(library, tmp_path):
    from sciattr.chem import explain_molecules
    from sciattr.chem.substructures import atom_scores
    from sciattr.zoo import load_featurizer, load_model

    summary = _run(library, tmp_path / "out")
    assert (summary.rows, summary.ok, summary.errors) == (16, 14, 2)
    rows = merge(tmp_path / "out")
    assert list(rows["row"]) == list(range(16)) and list(rows["id"]) == [f"mol{k}" for k in range(16)]
    assert list(rows["input"]) == SMILES
    bad = rows[rows["status"] == "error"]
    assert list(bad["row"]) == [1, 6]
    # RDKit's own message reaches the row
    assert "expected a valid SMILES" in bad["error"].iloc[0] and "SMILES Parse Error" in bad["error"].iloc[0]
    assert "non-empty SMILES" in bad["error"].iloc[1]
    assert "left out [Na+] (input atoms 0)" in rows.loc[3, "notes"]
    # the same numbers as one in-memory call with the same settings
    model = load_model(MODEL)
    good = [s for s in SMILES if s not in ("not_a_smiles", "")]
    res = explain_molecules(model, good, featurizer=load_featurizer(model), steps=8, rule="trapezoid")
    ok = rows[rows["status"] == "ok"].reset_index(drop=True)
    np.testing.assert_allclose(ok["prediction"], res.forward_x.double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ok["baseline_score"], res.forward_baseline.double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ok["probability"], 1 / (1 + np.exp(-ok["prediction"])), rtol=1e-12)
    atoms = merge(tmp_path / "out", "atoms")
    for i, row in enumerate(ok["row"]):
        mine = atoms[atoms["row"] == row]
        assert set(mine["id"]) == {f"mol{row}"}
        np.testing.assert_allclose(np.sort(mine["score"]), np.sort(atom_scores(res, i)), rtol=1e-4, atol=1e-5)
        # "attribution" is the atom's own features only (no share of pairs): not the complete score
        own = res.atom_feature_values(i).double().numpy()
        np.testing.assert_allclose(np.sort(mine["attribution"]), np.sort(own), rtol=1e-4, atol=1e-5)
        assert not np.allclose(mine["attribution"], mine["score"])
        # complete atom scores add up to F(x) - F(x') + gap
        total = ok.loc[i, "prediction"] - ok.loc[i, "baseline_score"] + ok.loc[i, "gap"]
        assert mine["score"].sum() == pytest.approx(total, rel=1e-4, abs=1e-4)
    # the salt: Na is atom 0 of the input, so the acetate's atoms are 1..4
    salt = atoms[atoms["row"] == 3]
    assert list(salt["atom"]) == [1, 2, 3, 4] and list(salt["element"]) == ["C", "C", "O", "O"]
    bonds = merge(tmp_path / "out", "bonds")
    assert set(zip(bonds[bonds["row"] == 3]["begin"], bonds[bonds["row"] == 3]["end"])) == {(1, 2), (2, 3), (2, 4)}


def test_schema_is_versioned_and_documented_columns_present(library, tmp_path):
    _run(library, tmp_path / "out")
    part = min((tmp_path / "out" / "rows").glob("part-*.parquet"))
    schema = pq.read_schema(part)
    assert schema.metadata[b"sciattr.schema_version"] == b"1" and schema.metadata[b"sciattr.table"] == b"rows"
    for name in ("id", "row", "input", "status", "error", "prediction", "baseline_score", "gap", "relative_gap",
                 "evaluations", "notes"):
        assert name in schema.names
    atoms = pq.read_schema(min((tmp_path / "out" / "atoms").glob("part-*.parquet")))
    assert atoms.names == ["row", "id", "atom", "element", "attribution", "score"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["schema_version"] == "1" and manifest["model"]["name"] == MODEL
    assert manifest["settings"]["steps"] == 8 and len(manifest["model"]["weights_sha256"]) == 64


def test_csv_format_gives_the_same_rows(library, tmp_path):
    _run(library, tmp_path / "pq")
    _run(library, tmp_path / "csv", format="csv")
    a, b = merge(tmp_path / "pq"), merge(tmp_path / "csv")
    assert list(a["status"]) == list(b["status"]) and list(a["id"]) == list(b["id"])
    np.testing.assert_allclose(a["prediction"].astype(float), b["prediction"].astype(float), rtol=1e-15)
    for table in ("atoms", "bonds"):  # the detail tables too, number for number
        x, y = merge(tmp_path / "pq", table), merge(tmp_path / "csv", table)
        assert len(x) > 0 and x.drop(columns=["attribution"] + (["score"] if table == "atoms" else [])).equals(
            y.drop(columns=["attribution"] + (["score"] if table == "atoms" else [])))
        np.testing.assert_array_equal(x["attribution"].to_numpy(float), y["attribution"].to_numpy(float))


def test_column_is_never_guessed(tmp_path):
    path = tmp_path / "formulas.csv"
    path.write_text("formula,name\nCO,methanol\nNO,hydroxylamine\n")
    with pytest.raises(InputError, match=r"column named 'smiles'.*\['formula', 'name'\]"):
        _run(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "manifest.json").exists()
    _run(path, tmp_path / "out", column="formula")
    assert list(merge(tmp_path / "out")["id"]) == ["methanol", "hydroxylamine"]
    with pytest.raises(InputError, match="id column named 'nope'"):
        _run(path, tmp_path / "out2", column="formula", id_column="nope")


def test_refuses_another_settings_or_model_in_the_same_folder(library, tmp_path):
    _run(library, tmp_path / "out")
    with pytest.raises(InputError, match=r"settings \(steps: folder has 8, this run has 16\)"):
        _run(library, tmp_path / "out", steps=16)
    with pytest.raises(InputError, match=r"model"):
        explain_file(library, model="gcn-benzene", out_dir=tmp_path / "out", part_rows=4, **FAST)
    summary = _run(library, tmp_path / "out", steps=16, overwrite=True)
    assert summary.rows == 16 and json.loads((tmp_path / "out" / "manifest.json").read_text())["settings"]["steps"] == 16
    again = _run(library, tmp_path / "out", steps=16)
    assert (again.rows, again.skipped) == (0, 16)  # everything was done: nothing recomputed


_CHILD = """
import sys, torch
torch.set_num_threads(int(sys.argv[3]))  # the test's own: float32 sums depend on the thread count
from sciattr.run import explain_file
explain_file(sys.argv[1], model="w2n2-benzene", out_dir=sys.argv[2], steps=8, rule="trapezoid", part_rows=2,
             progress=False)
"""


def _ranges(out: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (out / "ranges").glob("*.jsonl")) if (out / "ranges").is_dir() else 0


def _start_child(library, out):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    import torch

    return subprocess.Popen([sys.executable, "-c", _CHILD, str(library), str(out), str(torch.get_num_threads())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_ranges(child, out, n, timeout=60):
    deadline = time.monotonic() + timeout
    while _ranges(out) < n and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def test_resume_after_kill_9_gives_every_row_once_equal_to_an_uninterrupted_run(library, tmp_path):
    out = tmp_path / "killed"
    child = _start_child(library, out)
    _wait_for_ranges(child, out, 2)
    child.kill()  # SIGKILL: no handler runs
    child.wait()
    done_before = _ranges(out)
    assert 2 <= done_before < 8, "the child should have been killed mid-run"
    resumed = explain_file(library, model=MODEL, out_dir=out, part_rows=2, **FAST)
    assert resumed.skipped == 2 * len({json.loads(x)["start"] for p in (out / "ranges").glob("*.jsonl")
                                       for x in p.read_text().splitlines()[:done_before]})
    assert resumed.skipped + resumed.rows == 16
    whole = explain_file(library, model=MODEL, out_dir=tmp_path / "whole", part_rows=2, **FAST)
    assert whole.rows == 16
    for table in ("rows", "atoms", "bonds"):
        a, b = merge(out, table), merge(tmp_path / "whole", table)
        assert a.equals(b), table
    assert list(merge(out)["row"]) == list(range(16))
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_current_batch_and_says_how_to_resume(library, tmp_path, sig):
    out = tmp_path / "stopped"
    child = _start_child(library, out)
    _wait_for_ranges(child, out, 1)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0 and _ranges(out) < 8, "the child should have stopped early, cleanly"
    assert f"{sig.name} received; stopping after the current batch" in err and "Run the same command again" in err
    assert "Traceback" not in err
    before = _ranges(out)
    rest = explain_file(library, model=MODEL, out_dir=out, part_rows=2, **FAST)
    assert rest.skipped == 2 * before and rest.skipped + rest.rows == 16
    assert list(merge(out)["row"]) == list(range(16))


def test_resume_flag_requires_a_run_and_a_fresh_start_refuses_one(library, tmp_path):
    with pytest.raises(InputError, match="expected a run to resume"):
        _run(library, tmp_path / "none", resume=True)
    _run(library, tmp_path / "out")
    with pytest.raises(InputError, match="expected a fresh output folder"):
        _run(library, tmp_path / "out", resume=False)
    assert _run(library, tmp_path / "out", resume=True).skipped == 16


def test_shards_cover_the_input_once(library, tmp_path, monkeypatch):
    out = tmp_path / "sharded"
    first = _run(library, out, shard="0/2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    second = _run(library, out)  # torchrun's variables
    assert second.shard == (1, 2) and first.rows + second.rows == 16
    assert len(list((out / "ranges").glob("*.jsonl"))) == 2
    _run(library, tmp_path / "whole", shard="0/1")
    assert merge(out).equals(merge(tmp_path / "whole"))
    assert merge(out, "atoms").equals(merge(tmp_path / "whole", "atoms"))


@pytest.mark.parametrize("bad", ["2/2", "1", "a/b", "-1/3"])
def test_bad_shard_is_refused(bad):
    with pytest.raises(InputError, match="shard 'i/n'"):
        parse_shard(bad)


def test_progress_lines_when_not_a_terminal(library, tmp_path):
    stream = io.StringIO()
    bar = Progress(10, stream=stream, interval=0)
    bar.update(4, 1)
    bar.update(6)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("sciattr: 4/10 rows (40.0%), ") and "1 errors, ETA" in lines[0]
    assert lines[-1].startswith("sciattr: 10/10 rows (100.0%)") and len(lines) == 2
    quiet = io.StringIO()
    Progress(10, stream=quiet, enabled=False).update(10)
    assert quiet.getvalue() == ""


def test_progress_bar_on_a_terminal_shows_rows_rate_and_errors():
    stream = io.StringIO()
    bar = Progress(10, stream=stream, bar=True)
    bar.update(4, 1)
    bar.close()
    text = stream.getvalue()
    assert "4/10" in text and "rows/s" in text and "errors=1" in text


def test_progress_of_a_run_on_stderr(library, tmp_path, capsys):
    explain_file(library, model=MODEL, out_dir=tmp_path / "o", steps=8, rule="trapezoid", part_rows=8, log_interval=0)
    err = capsys.readouterr().err
    assert "sciattr: 8/16 rows (50.0%)" in err and "sciattr: 16/16 rows (100.0%)" in err and "2 errors" in err


def test_stream_of_pairs_and_pictures(tmp_path):
    items = [("a", "c1ccccc1O"), ("b", "CCO"), ("c", "c1ccccc1N")]
    summary = explain_stream(items, model=MODEL, out_dir=tmp_path / "o", pictures="top:2", **FAST)
    assert summary.ok == 3
    rows = merge(tmp_path / "o")
    assert list(rows["id"]) == ["a", "b", "c"]
    top2 = set(rows.sort_values("prediction")["row"].iloc[-2:])
    assert {p.name for p in (tmp_path / "o" / "pictures").glob("*.svg")} == {f"row{r}.svg" for r in top2}
    explain_stream(items, model=MODEL, out_dir=tmp_path / "all", pictures="all", **FAST)
    assert list(merge(tmp_path / "all")["picture"]) == ["pictures/row0.svg", "pictures/row1.svg", "pictures/row2.svg"]
    with pytest.raises(InputError, match="top:N"):
        explain_stream(items, model=MODEL, out_dir=tmp_path / "x", pictures="some", **FAST)


def test_unwritable_output_is_refused_before_any_work(library, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    start = time.perf_counter()
    with pytest.raises(InputError, match="writable output folder"):
        _run(library, blocker / "sub")
    assert time.perf_counter() - start < 2


def test_summaries_from_the_output(library, tmp_path):
    _run(library, tmp_path / "out")
    s = summarize(tmp_path / "out", min_count=2)
    rows = merge(tmp_path / "out")
    atoms = merge(tmp_path / "out", "atoms")
    assert (s.rows, s.ok, s.errors) == (16, 14, 2)
    carbon = next(e for e in s.elements if e["element"] == "C")
    assert carbon["total"] == pytest.approx(atoms[atoms["element"] == "C"]["score"].sum(), rel=1e-9)
    assert sum(e["share"] for e in s.elements) == pytest.approx(1.0)
    assert sum(b["share"] for b in s.bond_types) == pytest.approx(1.0)
    ok = rows[rows["status"] == "ok"]
    assert s.convergence["converged"] == int(ok["converged"].sum())
    assert s.convergence["max_relative_gap"] == pytest.approx(ok["relative_gap"].max())
    benzene = next(u for u in s.substructures if u["key"] == "benzene")
    # aniline, phenol, aspirin, benzoic acid, ibuprofen, aminophenol, anisole (pyridine is not benzene)
    assert (benzene["count"], benzene["molecules"]) == (7, 7) and s.unmatched_rows == 0
    from rdkit import Chem

    ring = Chem.MolFromSmarts("c1ccccc1")
    totals = []
    for row, smiles in zip(ok["row"], ok["input"]):
        for match in Chem.MolFromSmiles(smiles).GetSubstructMatches(ring):
            mine = atoms[atoms["row"] == row].set_index("atom")["score"]
            totals.append(mine.loc[list(match)].sum())
    assert benzene["mean"] == pytest.approx(np.mean(totals), rel=1e-9)


def test_a_batch_of_bad_rows_gives_each_row_its_own_reason_and_warnings_stay_on_the_rows(tmp_path):
    import warnings

    items = ["C1CC", "", "CCO", "c1ccccc1O"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is warned per batch (the rows carry it)
        # a tolerance no float32 gap meets: every ok row is counted as not converged
        summary = explain_stream(items, model=MODEL, out_dir=tmp_path / "o", part_rows=2, tolerance=1e-12,
                                 baselines="dummy", **FAST)
    rows = merge(tmp_path / "o")
    assert list(rows["status"]) == ["error", "error", "ok", "ok"]
    assert rows.loc[0, "error"].startswith("expected a valid SMILES; got 'C1CC' (RDKit: SMILES Parse Error: unclosed")
    assert rows.loc[1, "error"] == "expected a non-empty SMILES string; got ''"
    # the rows above the tolerance are counted and marked
    ok = rows[rows["status"] == "ok"]
    assert list(ok["converged"]) == [False, False] and (ok["relative_gap"] > 1e-12).all()
    assert summary.unconverged == 2 and "2 ok rows above the completeness tolerance" in str(summary)
    # the baseline warnings of the in-memory API are on the rows, word for word
    from sciattr.chem import explain_molecules
    from sciattr.zoo import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = explain_molecules(load_model(MODEL), ["CCO", "c1ccccc1O"], steps=8, rule="trapezoid",
                                baselines="dummy")
    assert res.baseline_warnings[0] and not res.baseline_warnings[1]  # one of each
    for i, row in enumerate((2, 3)):
        warned = res.baseline_warnings[i]
        assert (warned in rows.loc[row, "notes"]) if warned else ("baseline" not in rows.loc[row, "notes"])


def test_default_settings_are_the_api_defaults(library, tmp_path):
    from sciattr.settings import Settings

    explain_file(library, model=MODEL, out_dir=tmp_path / "o", progress=False, part_rows=16)
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["settings"] == json.loads(json.dumps(Settings().describe()))
    rows = merge(tmp_path / "o")
    ok = rows[rows["status"] == "ok"]
    # adaptive steps: every molecule within the default 5 % tolerance, with its own number of evaluations
    assert ok["converged"].all() and (ok["relative_gap"] <= 0.05).all()
    assert ok["evaluations"].min() >= 16 and ok["evaluations"].nunique() >= 1


def test_row_count_for_the_eta_reads_in_blocks_and_agrees_with_the_reader(tmp_path):
    from rdkit import Chem

    from sciattr.run.readers import read_records
    from sciattr.run.runner import _count_rows

    blocks = []
    for smi in ["CCO", "c1ccccc1", "CC(=O)O"]:
        mol = Chem.MolFromSmiles(smi)
        mol.SetProp("_Name", smi)
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    files = {"a.csv": "smiles,id\nCCO,1\nCC,2\n", "b.csv": "smiles\nCCO\nCC", "c.smi": "smiles id\nCCO a\nCC b\n",
             "d.smi": "CCO a\nCC b", "e.txt": "CCO\n\nCC\n", "f.sdf": "".join(blocks),
             "g.sdf": "".join(blocks).rstrip("$\n"), "h.csv": "smiles\n"}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        truth = sum(1 for _ in read_records(path))
        assert {_count_rows(path, "molecule", size) for size in (1, 2, 3, 5, 7, 1 << 20)} == {truth}, name
