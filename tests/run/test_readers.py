"""Lazy readers: every format, ids, row numbers, and errors before any work."""

import gzip

import pytest

from sciattr.errors import InputError
from sciattr.run.readers import read_records

pytest.importorskip("rdkit")

MOLBLOCK = """{title}
     RDKit          2D

  2  1  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.2990    0.7500    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
M  END
> <code>
{code}

$$$$
"""


def _rows(path, **options):
    return [(r.row, r.id, r.input, r.error) for r in read_records(path, **options)]


def test_csv_tsv_smi_text_and_parquet(tmp_path):
    (tmp_path / "a.tsv").write_text("ID\tSMILES\nx\tCCO\ny\tc1ccccc1\n")
    assert _rows(tmp_path / "a.tsv") == [(0, "x", "CCO", None), (1, "y", "c1ccccc1", None)]
    (tmp_path / "a.smi").write_text("SMILES Name\nCCO ethanol\nCN\n")
    assert _rows(tmp_path / "a.smi") == [(0, "ethanol", "CCO", None), (1, None, "CN", None)]
    (tmp_path / "t.txt").write_text("the cat\tsports\nsat\n")
    recs = list(read_records(tmp_path / "t.txt", kind="text"))
    assert [(r.row, r.input, r.target) for r in recs] == [(0, "the cat", "sports"), (1, "sat", None)]
    (tmp_path / "short.csv").write_text("id,smiles\nx\n")
    assert "expected 2 fields" in _rows(tmp_path / "short.csv")[0][3]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"name": ["p", "q"], "smiles": ["CCO", None]}), tmp_path / "a.parquet")
    assert _rows(tmp_path / "a.parquet") == [(0, "p", "CCO", None), (1, "q", "", "expected a value; got a null")]


def test_sdf_and_sdf_gz_titles_and_properties(tmp_path):
    text = MOLBLOCK.format(title="first", code="A1") + MOLBLOCK.format(title="", code="B2")
    (tmp_path / "m.sdf").write_text(text)
    with gzip.open(tmp_path / "m.sdf.gz", "wt") as handle:
        handle.write(text)
    for name in ("m.sdf", "m.sdf.gz"):
        recs = list(read_records(tmp_path / name))
        assert [(r.row, r.id, r.kind) for r in recs] == [(0, "first", "molblock"), (1, None, "molblock")]
    assert [r.id for r in read_records(tmp_path / "m.sdf", id_column="code")] == ["A1", "B2"]


def test_errors_come_before_any_row(tmp_path):
    (tmp_path / "f.csv").write_text("formula\nCO\n")
    with pytest.raises(InputError, match=r"\['formula'\]"):
        read_records(tmp_path / "f.csv")
    (tmp_path / "l.csv").write_bytes("smiles\nC\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_records(tmp_path / "l.csv")
    with pytest.raises(InputError, match="existing input file"):
        read_records(tmp_path / "missing.csv")
    (tmp_path / "m.xyz").write_text("CCO\n")
    with pytest.raises(InputError, match=r"\.csv"):
        read_records(tmp_path / "m.xyz")


def test_column_flags_on_a_file_without_columns_are_refused(tmp_path):
    (tmp_path / "l.smi").write_text("CCO ethanol\n")
    with pytest.raises(InputError, match=r"expected no id_column for .*l\.smi.*SMILES, then an optional name.*got "
                                         r"id_column='name'"):
        read_records(tmp_path / "l.smi", id_column="name")
    (tmp_path / "t.txt").write_text("a text\n")
    with pytest.raises(InputError, match=r"expected no column .*one text per line.*got column='text'"):
        read_records(tmp_path / "t.txt", kind="text", column="text")
    assert [(r.id, r.input) for r in read_records(tmp_path / "l.smi")] == [("ethanol", "CCO")]
