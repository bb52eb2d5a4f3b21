"""Lazy readers: one :class:`Record` per input row, never the whole file in memory.

Formats (chosen by the file name): CSV (``.csv``), TSV (``.tsv``), SMILES (``.smi``, ``.smiles``:
``SMILES [name]`` per line), SDF (``.sdf``, ``.sdf.gz``), Parquet (``.parquet``, ``.pq``) and plain
text lines (``.txt`` and anything else for texts: one text per line, an optional target after a
tab). Every format may also be gzip-compressed (``.gz``) except Parquet.

The input column of a table is ``column``; without it, a column named ``smiles`` (molecules) or
``text`` (texts), in any case. Otherwise it is an error listing the columns -- never silently the
first column. The id of each row comes from ``id_column``; without it, a column named ``id`` or
``name`` (SDF: the record's title line; ``.smi``: the second field), else none.

Rows are numbered from 0 in the order of the file (header excluded; SDF: records). A row that
cannot be read (a short CSV line, an SDF record RDKit refuses) is still yielded, with ``error``
set, so that the output keeps one row per input row.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from sciattr.errors import InputError

__all__ = ["DEFAULT_COLUMNS", "Record", "file_format", "read_records", "records_from_items"]

#: Input column used when ``column`` is not given.
DEFAULT_COLUMNS = {"molecule": "smiles", "text": "text"}
_ID_COLUMNS = ("id", "name")
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".smi": "smi", ".smiles": "smi", ".sdf": "sdf", ".sd": "sdf",
            ".parquet": "parquet", ".pq": "parquet", ".txt": "lines", ".text": "lines"}


@dataclass
class Record:
    """One input row.

    Attributes
    ----------
    row:
        0-based position in the input.
    id:
        The row's id (``None`` when the input has none).
    input:
        The SMILES or text; for SDF records the molecule block (the domain turns it into a SMILES).
    target:
        A per-row target (text files: after a tab), else ``None``.
    error:
        Why the row could not be read, else ``None``.
    kind:
        ``"smiles"``, ``"molblock"`` or ``"text"``.
    """

    row: int
    id: str | None
    input: str
    target: str | None = None
    error: str | None = None
    kind: str = "smiles"


def file_format(path: str | os.PathLike) -> tuple[str, bool]:
    """``(format, gzipped)`` of a path from its suffixes (``"lines"`` when unknown)."""
    name = os.fspath(path).lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    suffix = os.path.splitext(name)[1]
    return _FORMATS.get(suffix, "lines"), gz


def _open_text(path: Path, gz: bool):
    raw = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 -- closed by the reader
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _check_utf8(path: Path, gz: bool) -> None:
    """Fail early (before any work) on a file that is not UTF-8: the first 1 MiB is decoded."""
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(1 << 20)
    except (OSError, EOFError) as exc:
        raise InputError(f"expected a readable {'gzip ' if gz else ''}file; got {os.fspath(path)!r} ({exc})") from None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < (1 << 20) or exc.start < len(head) - 4:  # not merely a character cut at the 1 MiB boundary
            raise InputError(f"expected a UTF-8 text file; got {os.fspath(path)!r} with a non-UTF-8 byte "
                             f"{head[exc.start:exc.start + 1]!r} at byte {exc.start}") from None


@overload
def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: str,
          required: Literal[True]) -> int: ...
@overload
def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: str,
          required: bool) -> int | None: ...
def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: str,
          required: bool) -> int | None:
    """The index of the ``what`` column: ``wanted``, else the first of ``defaults``; ``None`` only when
    not ``required`` (a required column that is missing is an :class:`InputError`)."""
    lower = [c.strip().lower() for c in columns]
    if wanted is not None:
        if wanted in columns:
            return columns.index(wanted)
        if wanted.strip().lower() in lower:
            return lower.index(wanted.strip().lower())
        raise InputError(f"expected a {what} column named {wanted!r} in {path!r}; got the columns {columns}")
    for name in defaults:
        if name in lower:
            return lower.index(name)
    if required:
        raise InputError(f"expected a {what} column named {defaults[0]!r} in {path!r} (or name one with "
                         f"column=/--column); got the columns {columns}")
    return None


def read_records(path: str | os.PathLike, *, kind: str = "molecule", column: str | None = None,
                 id_column: str | None = None) -> Iterator[Record]:
    """Check the file and its columns now, then yield its rows lazily.

    The checks (exists, UTF-8, the columns) run when this function is called, before the first
    row is asked for, so a wrong column fails before any work is done.

    Raises
    ------
    InputError
        A missing or unreadable file, a non-UTF-8 file, an unknown column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected an existing input file; got {os.fspath(path)!r}")
    fmt, gz = file_format(path)
    if kind == "molecule" and fmt == "lines" and not os.fspath(path).lower().removesuffix(".gz").endswith(
            (".txt", ".text")):
        raise InputError(f"expected a molecule file ending in .csv, .tsv, .smi, .sdf, .sdf.gz, .parquet or .txt; got "
                         f"{os.fspath(path)!r}")
    if fmt == "parquet":
        return _parquet(path, kind, column, id_column)
    if fmt in ("smi", "lines"):
        layout = ("SMILES, then an optional name, per line" if kind == "molecule" or fmt == "smi"
                  else "one text per line, then an optional TAB and target")
        for flag, value in (("column", column), ("id_column", id_column)):
            if value is not None:
                raise InputError(f"expected no {flag} for {os.fspath(path)!r}, a file without columns ({layout}); "
                                 f"got {flag}={value!r}")
    _check_utf8(path, gz)
    if fmt in ("csv", "tsv"):
        return _guard(_table(path, gz, "," if fmt == "csv" else "\t", kind, column, id_column), path)
    if fmt == "sdf":
        if kind != "molecule":
            raise InputError(f"expected a text file for texts; got the SDF file {os.fspath(path)!r}")
        return _guard(_sdf(path, gz, id_column), path)
    if fmt == "smi":
        return _guard(_smi(path, gz), path)
    return _guard(_lines(path, gz, kind), path)


def _guard(records: Iterator[Record], path: Path) -> Iterator[Record]:
    """A non-UTF-8 byte past the first MiB stops the run with a clear error (finished batches are kept)."""
    try:
        yield from records
    except UnicodeDecodeError as exc:
        raise InputError(f"expected a UTF-8 text file; got {os.fspath(path)!r} with a non-UTF-8 byte "
                         f"({exc.reason})") from None


def _table(path: Path, gz: bool, delimiter: str, kind: str, column, id_column) -> Iterator[Record]:
    handle = _open_text(path, gz)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise InputError(f"expected a table with a header row; got an empty file {os.fspath(path)!r}") from None
    try:
        col = _pick(header, column, (DEFAULT_COLUMNS[kind],), "SMILES" if kind == "molecule" else "text",
                    os.fspath(path), True)
        idc = _pick(header, id_column, _ID_COLUMNS, "id", os.fspath(path), id_column is not None)
    except InputError:
        handle.close()
        raise
    return _table_rows(handle, reader, col, idc, len(header), "smiles" if kind == "molecule" else "text")


def _table_rows(handle, reader, col: int, idc: int | None, width: int, rkind: str) -> Iterator[Record]:
    with handle:
        for row, fields in enumerate(reader):
            ident = fields[idc] if idc is not None and idc < len(fields) else None
            if not fields:  # a blank line: an empty input, which the domain reports as such
                yield Record(row, None, "", kind=rkind)
            elif col >= len(fields):
                yield Record(row, ident, "", error=f"expected {width} fields on this line; got {len(fields)}",
                             kind=rkind)
            else:
                yield Record(row, ident, fields[col], kind=rkind)


def _smi(path: Path, gz: bool) -> Iterator[Record]:
    handle = _open_text(path, gz)
    first = handle.readline()
    handle.seek(0)
    skip_header = first.strip().lower().split()[:1] == ["smiles"]

    def rows():
        with handle:
            lines = iter(handle)
            if skip_header:
                next(lines, None)
            for row, line in enumerate(lines):
                parts = line.strip().split(None, 1)
                yield Record(row, parts[1].strip() if len(parts) > 1 else None, parts[0] if parts else "")
    return rows()


def _lines(path: Path, gz: bool, kind: str) -> Iterator[Record]:
    handle = _open_text(path, gz)

    def rows():
        with handle:
            for row, line in enumerate(handle):
                line = line.rstrip("\r\n")
                if kind == "molecule":
                    parts = line.strip().split(None, 1)
                    yield Record(row, parts[1].strip() if len(parts) > 1 else None, parts[0] if parts else "")
                else:
                    text, _, target = line.partition("\t")
                    yield Record(row, None, text, target=target.strip() or None, kind="text")
    return rows()


def _sdf(path: Path, gz: bool, id_column) -> Iterator[Record]:
    handle = _open_text(path, gz)

    def rows():
        with handle:
            block: list[str] = []
            row = 0
            for line in handle:
                if line.startswith("$$$$"):
                    yield _sdf_record(row, "".join(block), id_column)
                    row += 1
                    block = []
                else:
                    block.append(line)
            if "".join(block).strip():
                yield _sdf_record(row, "".join(block), id_column)
    return rows()


def _sdf_record(row: int, block: str, id_column) -> Record:
    title = block.split("\n", 1)[0].strip() or None
    ident = title
    if id_column is not None:
        ident = _sdf_property(block, id_column)
    return Record(row, ident, block, kind="molblock")


def _sdf_property(block: str, name: str) -> str | None:
    lines = block.splitlines()
    for k, line in enumerate(lines):
        if line.startswith(">") and f"<{name}>" in line and k + 1 < len(lines):
            return lines[k + 1].strip()
    return None


def _parquet(path: Path, kind: str, column, id_column) -> Iterator[Record]:
    from sciattr.errors import require

    pq = require("pyarrow.parquet", "scale")
    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises its own ArrowInvalid/OSError family
        raise InputError(f"expected a Parquet file; got {os.fspath(path)!r} ({exc})") from None
    names = list(handle.schema_arrow.names)
    col = _pick(names, column, (DEFAULT_COLUMNS[kind],), "SMILES" if kind == "molecule" else "text",
                os.fspath(path), True)
    idc = _pick(names, id_column, _ID_COLUMNS, "id", os.fspath(path), id_column is not None)
    wanted = [names[col]] + ([names[idc]] if idc is not None else [])
    rkind = "smiles" if kind == "molecule" else "text"

    def rows():
        row = 0
        for batch in handle.iter_batches(batch_size=4096, columns=wanted):
            values = batch.column(0).to_pylist()
            ids = batch.column(1).to_pylist() if idc is not None else [None] * len(values)
            for value, ident in zip(values, ids):
                if value is None:
                    yield Record(row, _text(ident), "", error="expected a value; got a null", kind=rkind)
                else:
                    yield Record(row, _text(ident), str(value), kind=rkind)
                row += 1
    return rows()


def _text(value) -> str | None:
    return None if value is None else str(value)


def records_from_items(items: Iterable, *, kind: str = "molecule", ids: Iterable | None = None) -> Iterator[Record]:
    """Records of an in-memory iterable: strings (SMILES or texts), ``(id, input)`` pairs, or RDKit
    molecules (stored as molecule blocks); ``ids`` gives the ids separately."""
    id_iter = iter(ids) if ids is not None else None
    for row, item in enumerate(items):
        if isinstance(item, Record):
            yield item
            continue
        ident = None
        if id_iter is not None:
            ident = _text(next(id_iter, None))
        elif isinstance(item, tuple) and len(item) == 2:
            ident, item = _text(item[0]), item[1]
        if isinstance(item, str):
            yield Record(row, ident, item, kind="smiles" if kind == "molecule" else "text")
        elif kind == "molecule" and type(item).__name__ == "Mol":
            from rdkit import Chem

            name = item.GetProp("_Name") if item.HasProp("_Name") else None
            yield Record(row, ident if ident is not None else (name or None), Chem.MolToMolBlock(item),
                         kind="molblock")
        else:
            what = "SMILES string or RDKit Mol" if kind == "molecule" else "text"
            yield Record(row, ident, repr(item)[:200], error=f"expected a {what}; got {type(item).__name__}",
                         kind="smiles" if kind == "molecule" else "text")
