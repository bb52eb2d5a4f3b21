"""The run folder: schemas, atomic part files, the manifest of completed row ranges, and reading it back.

Layout of ``RUN_DIR``::

    manifest.json                 kind, model (name, weights digest), settings, target, batch size,
                                  input (path, size, columns), format, schema version
    ranges/shard-I-of-N.jsonl     one line per completed row range [start, end) with its part files
    rows/part-START-END.parquet   one row per input row (ROW_COLUMNS)
    atoms/part-START-END.parquet  molecules: one row per atom (ATOM_COLUMNS)
    bonds/part-START-END.parquet  molecules: one row per bond (BOND_COLUMNS)
    tokens/part-START-END.parquet texts: one row per token (TOKEN_COLUMNS)
    pictures/rowN.svg             optional drawings

Every part is written under a temporary name and renamed, then its range is appended to the
shard's ``ranges`` file; a range counts as done only when it is listed and its files exist, so a
run killed at any moment resumes from the first range that is not.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sciattr.errors import InputError, require

__all__ = ["ATOM_COLUMNS", "BOND_COLUMNS", "ROW_COLUMNS", "SCHEMA_VERSION", "TEXT_ROW_COLUMNS", "TOKEN_COLUMNS", "Details",
           "completed_ranges", "merge", "read_manifest", "read_table"]

#: Version of the output schema, stored in every Parquet file's metadata and in the manifest.
SCHEMA_VERSION = "1"

#: (name, type) of the molecule ``rows`` table.
ROW_COLUMNS = (("id", "string"), ("row", "int64"), ("input", "string"), ("status", "string"), ("error", "string"),
               ("smiles", "string"), ("prediction", "float64"), ("probability", "float64"),
               ("baseline_score", "float64"), ("gap", "float64"), ("relative_gap", "float64"),
               ("evaluations", "int64"), ("converged", "bool"), ("notes", "string"), ("picture", "string"))
#: (name, type) of the text ``rows`` table.
TEXT_ROW_COLUMNS = (("id", "string"), ("row", "int64"), ("input", "string"), ("status", "string"),
                    ("error", "string"), ("target", "string"), ("prediction", "float64"),
                    ("baseline_score", "float64"), ("gap", "float64"), ("relative_gap", "float64"),
                    ("evaluations", "int64"), ("converged", "bool"), ("notes", "string"))
#: (name, type) of the ``atoms`` table: ``atom`` is the atom's index in the input molecule,
#: ``attribution`` that of its own features, ``score`` the complete atom score (own features plus
#: half of every pair or bond it belongs to; a molecule's scores add up to F(x) - F(x') + gap).
ATOM_COLUMNS = (("row", "int64"), ("id", "string"), ("atom", "int64"), ("element", "string"),
                ("attribution", "float64"), ("score", "float64"))
#: (name, type) of the ``bonds`` table: ``begin``/``end`` are the bond's atoms in the input's numbering,
#: ``attribution`` that of its pair (Weave) or both directed edges (PyG).
BOND_COLUMNS = (("row", "int64"), ("id", "string"), ("begin", "int64"), ("end", "int64"), ("bond_type", "string"),
                ("attribution", "float64"))
#: (name, type) of the ``tokens`` table: ``position`` is the token's place in the input's tokens.
TOKEN_COLUMNS = (("row", "int64"), ("id", "string"), ("position", "int64"), ("token", "string"),
                 ("attribution", "float64"))

TABLES = {"molecule": ("rows", "atoms", "bonds"), "text": ("rows", "tokens")}


def columns_of(kind: str, table: str):
    if table == "rows":
        return ROW_COLUMNS if kind == "molecule" else TEXT_ROW_COLUMNS
    return {"atoms": ATOM_COLUMNS, "bonds": BOND_COLUMNS, "tokens": TOKEN_COLUMNS}[table]


def arrow_schema(kind: str, table: str):
    pa = require("pyarrow", "scale")
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [pa.field(name, types[t]) for name, t in columns_of(kind, table)]
    meta = {"sciattr.schema_version": SCHEMA_VERSION, "sciattr.kind": kind, "sciattr.table": table}
    return pa.schema(fields, metadata=meta)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


#: Detail tables of a batch as columns (lists or numpy arrays):
#: ``{"atoms": {"row": [...], "atom": [...], ...}, "bonds": ...}``.
Details = dict[str, dict[str, Any]]


def extend_details(into: Details, more: Details) -> Details:
    """Append the columns of ``more`` to those of ``into`` (table by table); returns ``into``."""
    for table, columns in more.items():
        found = into.setdefault(table, {})
        for name, values in columns.items():
            found.setdefault(name, []).extend(values.tolist() if hasattr(values, "tolist") else values)
    return into


def write_part(folder: Path, kind: str, table: str, rows: list[dict] | dict[str, list], start: int, end: int,
               fmt: str) -> Path:
    """Write one part file atomically; returns its path. ``rows``: one dict per row, or the
    table's columns (a column left out is null)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = columns_of(kind, table)
    path = folder / f"part-{start:010d}-{end:010d}.{fmt}"
    tmp = folder / f".tmp-{uuid.uuid4().hex}-{path.name}"
    if isinstance(rows, dict):
        n = max((len(v) for v in rows.values()), default=0)
        data = {name: rows.get(name, [None] * n) for name, _ in columns}
    else:
        data = {name: [r.get(name) for r in rows] for name, _ in columns}
    if fmt == "parquet":
        pa = require("pyarrow", "scale")
        pq = require("pyarrow.parquet", "scale")
        schema = arrow_schema(kind, table)
        pq.write_table(pa.Table.from_pydict(data, schema=schema), tmp)
    else:
        data = {name: values.tolist() if hasattr(values, "tolist") else values for name, values in data.items()}
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([name for name, _ in columns])
            for values in zip(*data.values()):
                writer.writerow(["" if v is None else _csv_value(v) for v in values])
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def _csv_value(value):
    return repr(value) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------- manifest
def read_manifest(out_dir: str | os.PathLike) -> dict:
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(f"expected a sciattr run folder with a manifest.json; got {os.fspath(out_dir)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"expected a readable manifest.json in {os.fspath(out_dir)!r}; got {exc}") from None


#: Manifest entries that must agree for a run to continue in an existing folder.
IDENTITY_KEYS = ("kind", "model", "settings", "target", "batch_size", "input", "format", "schema_version")


def check_or_create_manifest(out_dir: Path, manifest: dict, overwrite: bool) -> bool:
    """Create the manifest, or check it against an existing one. Returns ``True`` when resuming.

    Raises :class:`InputError` when the folder holds a run of other settings, another model or
    another input (unless ``overwrite``, which clears the folder's run files first).
    """
    path = out_dir / "manifest.json"
    if path.is_file() and overwrite:
        clear_run(out_dir)
    if path.is_file():
        old = read_manifest(out_dir)
        differ = [k for k in IDENTITY_KEYS if _canon(old.get(k)) != _canon(manifest.get(k))]
        if differ:
            lines = "; ".join(_difference(k, old.get(k), manifest.get(k)) for k in differ)
            raise InputError(f"expected {os.fspath(out_dir)!r} to hold a run of the same model, settings and input; "
                             f"it differs in {lines}. Use another folder, or overwrite=True (--overwrite) to "
                             f"discard it")
        return True
    out_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
    tmp = out_dir / f".tmp-{uuid.uuid4().hex}-manifest.json"
    tmp.write_bytes(data)
    try:  # two shards starting together: the first link wins, the other checks against it
        os.link(tmp, path)
    except FileExistsError:
        tmp.unlink()
        return check_or_create_manifest(out_dir, manifest, False)
    tmp.unlink()
    _fsync_dir(out_dir)
    return False


def _difference(key: str, old, new) -> str:
    old, new = _canon(old), _canon(new)
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"{key} ({', '.join(f'{k}: folder has {_short(old.get(k))}, this run has {_short(new.get(k))}' for k in keys)})"
    return f"{key}: folder has {_short(old)}, this run has {_short(new)}"


def _canon(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _short(value) -> str:
    text = json.dumps(_canon(value), sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


def clear_run(out_dir: Path) -> None:
    """Remove a run's own files (manifest, ranges, parts, pictures, summary) from ``out_dir``."""
    for name in ("rows", "atoms", "bonds", "tokens", "ranges", "pictures"):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in ("manifest.json", "summary.json", "summary.html"):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()


def record_range(out_dir: Path, shard: tuple[int, int], entry: dict) -> None:
    folder = out_dir / "ranges"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shard-{shard[0]}-of-{shard[1]}.jsonl"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def completed_ranges(out_dir: str | os.PathLike) -> dict[int, dict]:
    """start -> entry of every range listed in any shard's file whose part files all exist."""
    out_dir = Path(out_dir)
    done: dict[int, dict] = {}
    folder = out_dir / "ranges"
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("shard-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill: that range is simply redone
                continue
            if all((out_dir / p).is_file() for p in entry.get("files", [])):
                done[int(entry["start"])] = entry
    return done


def remove_temporaries(out_dir: Path) -> None:
    for folder in (out_dir, *(out_dir / n for n in ("rows", "atoms", "bonds", "tokens", "pictures"))):
        if folder.is_dir():
            for tmp in folder.glob(".tmp-*"):
                with contextlib.suppress(OSError):
                    tmp.unlink()


# ---------------------------------------------------------------------------------------- reading back
def _part_files(out_dir: Path, table: str) -> list[Path]:
    done = completed_ranges(out_dir)
    files = []
    for start in sorted(done):
        for name in done[start]["files"]:
            if name.split("/", 1)[0] == table:
                files.append(out_dir / name)
    return files


def dataset(out_dir: str | os.PathLike, table: str = "rows"):
    """The completed parts of one table of a run folder (any number of shards) as a
    ``pyarrow.dataset.Dataset``: nothing is loaded until it is scanned."""
    ds = require("pyarrow.dataset", "scale")
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if table not in TABLES[manifest["kind"]]:
        raise InputError(f"expected a table among {list(TABLES[manifest['kind']])} for a {manifest['kind']} run; "
                         f"got {table!r}")
    files = [os.fspath(p) for p in _part_files(out_dir, table)]
    fmt = manifest.get("format", "parquet")
    schema = arrow_schema(manifest["kind"], table)
    if fmt == "csv":
        csv_format = ds.CsvFileFormat(convert_options=_csv_convert(schema))
        return ds.dataset(files, schema=schema, format=csv_format)
    return ds.dataset(files, schema=schema, format="parquet")


def _csv_convert(schema):
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(column_types={f.name: f.type for f in schema}, strings_can_be_null=True,
                                quoted_strings_can_be_null=False)


def read_table(out_dir: str | os.PathLike, table: str = "rows", columns: list[str] | None = None):
    """One table of a run folder as a ``pyarrow.Table`` sorted by input row (then atom/position)."""
    data = dataset(out_dir, table).to_table(columns=columns)
    keys = [("row", "ascending")]
    names = data.column_names
    for extra in ("atom", "position", "begin", "end"):
        if extra in names:
            keys.append((extra, "ascending"))
    return data.sort_by(keys) if "row" in names else data


def merge(out_dir: str | os.PathLike, table: str = "rows", *, as_pandas: bool = True, columns: list[str] | None = None
          ) -> Any:
    """A run folder (any number of shards) as one pandas DataFrame (or pyarrow Table), sorted by row.

    Raises :class:`InputError` if two parts hold the same input row (a folder mixed by hand).
    """
    data = read_table(out_dir, table, columns)
    if table == "rows" and "row" in data.column_names:
        rows = data.column("row").to_numpy()
        if len(rows) > 1 and (rows[1:] == rows[:-1]).any():
            raise InputError(f"expected each input row once in {os.fspath(out_dir)!r}; some rows appear twice")
    return data.to_pandas() if as_pandas else data
