"""The streaming runner: read a batch, attribute it, write it, record it -- memory bounded by one batch.

See :func:`explain_stream` and :func:`explain_file`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciattr.errors import InputError, describe
from sciattr.run import output
from sciattr.run.domains import Domain, make_domain
from sciattr.run.progress import Progress
from sciattr.run.readers import Record, file_format, read_records, records_from_items
from sciattr.settings import Settings, resolve_settings

__all__ = ["RunSummary", "explain_file", "explain_stream", "parse_shard"]

#: Input rows per part file (and per attribution call) unless ``part_rows`` says otherwise. Large
#: enough that the adaptive refinement's later levels still fill the engine's passes (256 rows ran
#: about 20 % slower on the NCI set), small enough that a batch is a few MiB and seconds.
DEFAULT_PART_ROWS = 1024


@dataclass
class RunSummary:
    """What one call of the runner did.

    Attributes
    ----------
    out_dir:
        The run folder.
    rows:
        Input rows this call attributed (excluding those found already done).
    ok, errors:
        Of those, rows with ``status="ok"`` and ``status="error"``.
    unconverged:
        Of the ok rows, those whose completeness gap is above the tolerance (``converged`` is
        false; ``relative_gap`` says by how much).
    skipped:
        Rows of this shard found completed by an earlier call (resume).
    interrupted:
        Stopped by SIGINT/SIGTERM after a complete batch; run the same call again to continue.
    seconds:
        Wall time of this call.
    shard:
        ``(i, n)``.
    """

    out_dir: Path
    rows: int = 0
    ok: int = 0
    errors: int = 0
    unconverged: int = 0
    skipped: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    shard: tuple[int, int] = (0, 1)
    files: list[Path] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (f"{self.rows:,} rows attributed ({self.ok:,} ok, {self.errors:,} errors) in {self.seconds:.1f} s "
                f"({self.rows_per_second:.1f} rows/s) into {os.fspath(self.out_dir)}")
        if self.unconverged:
            text += (f"; {self.unconverged:,} ok rows above the completeness tolerance (converged = false; "
                     "give more --max-steps or another baseline)")
        if self.skipped:
            text += f"; {self.skipped:,} rows were already done"
        if self.shard[1] > 1:
            text += f"; shard {self.shard[0]}/{self.shard[1]}"
        return text


def parse_shard(shard) -> tuple[int, int]:
    """``"i/n"``, ``(i, n)`` or ``None`` -> ``(i, n)``; ``None`` reads ``RANK``/``WORLD_SIZE`` (torchrun)."""
    if shard is None:
        world = os.environ.get("WORLD_SIZE")
        rank = os.environ.get("RANK")
        if world is None or rank is None:
            return 0, 1
        shard = (rank, world)
        what = f"RANK={rank!r}, WORLD_SIZE={world!r}"
    else:
        what = repr(shard)
    try:
        if isinstance(shard, str):
            i_text, n_text = shard.split("/")
            i, n = int(i_text), int(n_text)
        else:
            i, n = (int(v) for v in shard)
    except (ValueError, TypeError):
        raise InputError(f"expected a shard 'i/n' with 0 <= i < n; got {what}") from None
    if not (n >= 1 and 0 <= i < n):
        raise InputError(f"expected a shard 'i/n' with 0 <= i < n; got {what}")
    return i, n


def _batches(records: Iterable[Record], size: int) -> Iterator[tuple[int, int, list[Record]]]:
    batch: list[Record] = []
    index = None
    for r in records:
        b = r.row // size
        if index is not None and b != index and batch:
            yield batch[0].row, batch[-1].row + 1, batch
            batch = []
        index = b
        batch.append(r)
    if batch:
        yield batch[0].row, batch[-1].row + 1, batch


class _Stop:
    """SIGINT/SIGTERM: finish the current batch, then stop. A second SIGINT stops at once."""

    def __init__(self, announce):
        self.requested: str | None = None
        self.announce = announce
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        self.announce(f"sciattr: {self.requested} received; stopping after the current batch "
                      "(the finished batches are kept)")

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def _count_rows(path: Path, kind: str, block_size: int = 1 << 20) -> int | None:
    """Rows of a file by a fast scan in 1 MiB blocks (for the ETA; memory stays bounded); ``None``
    when unknown (compressed files)."""
    fmt, gz = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if gz:
        return None
    newlines = records = 0
    first_line = b""
    last_block = b""
    tail = b""  # the last 4 bytes of the previous block: "$$$$" may straddle two blocks
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            if b"\n" not in first_line:
                first_line += block
            newlines += block.count(b"\n")
            if fmt == "sdf":
                joined = tail + block
                records += joined.count(b"\n$$$$") + (joined.startswith(b"$$$$") and not tail)
                tail = joined[-4:]
                last_block = joined
            else:
                last_block = block
    if not last_block:
        return 0
    if fmt == "sdf":
        after = last_block.rsplit(b"$$$$", 1)[-1] if b"$$$$" in last_block else last_block
        return records + (1 if after.strip() else 0)
    lines = newlines + (0 if last_block.endswith(b"\n") else 1)
    if fmt in ("csv", "tsv"):
        return max(lines - 1, 0)
    if fmt == "smi" and first_line.split(b"\n", 1)[0].strip().lower().split()[:1] == [b"smiles"]:
        return max(lines - 1, 0)
    return lines


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 16))
        if stat.st_size > (1 << 17):
            handle.seek(-(1 << 16), os.SEEK_END)
            digest.update(handle.read(1 << 16))
    return {"name": path.name, "size": stat.st_size, "sha256_head_tail": digest.hexdigest()}


def _check_writable(out_dir: Path) -> None:
    """Fail before any work when ``out_dir`` cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".tmp-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"expected a writable output folder; got {os.fspath(out_dir)!r} ({exc.strerror or exc})"
                         ) from None


def _parse_pictures(pictures) -> tuple[str, int]:
    if pictures in (None, "none", False):
        return "none", 0
    if pictures in ("all", True):
        return "all", 0
    if isinstance(pictures, str) and pictures.startswith("top:"):
        try:
            n = int(pictures[4:])
        except ValueError:
            n = -1
        if n >= 1:
            return "top", n
    raise InputError(f"expected pictures='none', 'all' or 'top:N' with N >= 1; got {pictures!r}")


class _Pictures:
    """Drawings of the rows: none, all, or the N rows with the highest prediction (kept in a heap
    whose state is saved with each batch so a resumed run continues it)."""

    def __init__(self, out_dir: Path, mode: str, n: int, shard: tuple[int, int]):
        self.folder, self.mode, self.n = out_dir / "pictures", mode, n
        self.state = self.folder / f"top-shard-{shard[0]}-of-{shard[1]}.json"
        self.heap: list[tuple[float, int]] = []
        if mode == "top" and self.state.is_file():
            self.heap = [tuple(e) for e in json.loads(self.state.read_text())]
            heapq.heapify(self.heap)

    def add(self, domain: Domain, rows: list[dict], extra) -> None:
        if self.mode == "none" or extra is None or not hasattr(domain, "picture"):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        by_row = {r["row"]: r for r in rows}
        for row, i in extra[2]:
            record = by_row[row]
            name = f"row{row}.svg"
            if self.mode == "all":
                output.atomic_write_bytes(self.folder / name, domain.picture(extra, i).encode())
                record["picture"] = f"pictures/{name}"
                continue
            key = (float(record["prediction"]), -row)
            if key in self.heap:  # a batch redone after an interrupt: its drawing is already there
                continue
            if len(self.heap) < self.n or key > self.heap[0]:
                output.atomic_write_bytes(self.folder / name, domain.picture(extra, i).encode())
                if len(self.heap) >= self.n:
                    _, old = heapq.heappushpop(self.heap, key)
                    (self.folder / f"row{-old}.svg").unlink(missing_ok=True)
                else:
                    heapq.heappush(self.heap, key)
        if self.mode == "top":
            output.atomic_write_bytes(self.state, json.dumps(sorted(self.heap, reverse=True)).encode())


def explain_stream(items: Iterable, *, model, kind: str = "molecule", out_dir: str | os.PathLike,
                   settings: Settings | None = None, target=None, featurizer=None, ids: Iterable | None = None,
                   format: str = "parquet", pictures: str = "none", progress: bool = True,
                   shard=None, engine: str = "local", workers: int = 2, num_gpus_per_worker: float = 0,
                   overwrite: bool = False, resume: bool | None = None, part_rows: int = DEFAULT_PART_ROWS,
                   log_interval: float = 10.0, truncate: bool = False, model_name: str | None = None,
                   _input_info: dict | None = None, _total: int | None = None, **options) -> RunSummary:
    """Attribute a stream of molecules or texts in bounded batches, writing Parquet (or CSV) as it goes.

    Parameters
    ----------
    items:
        SMILES strings, RDKit molecules or texts; ``(id, input)`` pairs; or
        :class:`~sciattr.run.readers.Record` objects (what :func:`explain_file` passes).
    model:
        Molecules: a shipped model name (see ``sciattr models``), a card path, or a module
        (with ``featurizer=``). Texts: ``"topic-classifier"``, ``"lstm-lm"``, ``"g2p"`` or a
        local Hugging Face folder.
    kind:
        ``"molecule"`` or ``"text"``.
    out_dir:
        The run folder (see :mod:`sciattr.run.output` for its layout and schemas).
    settings, **options:
        How attributions are computed (:class:`sciattr.Settings`; keywords build or update it).
    target:
        Output to explain (a task index or name, a class, a next word, an output text).
    ids:
        Ids of the items (default: from ``(id, input)`` pairs or SDF titles, else none).
    format:
        ``"parquet"`` (default) or ``"csv"`` (small runs).
    pictures:
        ``"none"`` (default), ``"all"``, or ``"top:N"`` (the N rows with the highest prediction;
        per shard) -- molecules only, SVG under ``pictures/``.
    progress:
        A bar on a terminal, log lines on stderr otherwise (every ``log_interval`` seconds).
    shard:
        ``"i/n"``: attribute only the batches ``b`` with ``b % n == i``. ``None``: ``RANK`` and
        ``WORLD_SIZE`` from the environment (torchrun), else the whole input. All shards write
        into the same ``out_dir``; their union is the whole input, each row once.
    engine:
        ``"local"`` (this process) or ``"ray"`` (a Ray Data actor pool of ``workers`` actors,
        each loading the model once; ``num_gpus_per_worker`` GPUs each).
    overwrite:
        Discard a run of other settings, model or input in ``out_dir`` instead of refusing.
    resume:
        ``None`` (default): continue a matching run found in ``out_dir``, else start one.
        ``True``: require a run to continue. ``False``: require a fresh folder.
    part_rows:
        Input rows per batch and part file: memory is bounded by one batch.

    Returns
    -------
    RunSummary
        Counts, timing and whether the run was interrupted. Read the output with
        :func:`sciattr.run.merge`.

    Raises
    ------
    InputError
        Bad options, an unwritable ``out_dir``, a folder holding a different run -- all before any
        attribution.
    """
    started = time.monotonic()
    settings = resolve_settings(settings, options)
    if kind not in ("molecule", "text"):
        raise InputError(f"expected kind='molecule' or 'text'; got {kind!r}")
    if format not in ("parquet", "csv"):
        raise InputError(f"expected format='parquet' or 'csv'; got {format!r}")
    if engine not in ("local", "ray"):
        raise InputError(f"expected engine='local' or 'ray'; got {engine!r}")
    if isinstance(part_rows, bool) or not isinstance(part_rows, int) or part_rows < 1:
        raise InputError(f"expected part_rows to be a positive integer; got {describe(part_rows)}")
    mode, top_n = _parse_pictures(pictures)
    if mode != "none" and kind != "molecule":
        raise InputError(f"expected pictures='none' for texts (pictures are drawn for molecules); got {pictures!r}")
    shard_i, shard_n = parse_shard(shard)
    out_dir = Path(out_dir)
    if format == "parquet" or engine == "ray":
        from sciattr.errors import require

        require("pyarrow", "scale")
    _check_writable(out_dir)
    exists = (out_dir / "manifest.json").is_file()
    if resume is True and not exists:
        raise InputError(f"expected a run to resume in {os.fspath(out_dir)!r}; found no manifest.json there")
    if resume is False and exists and not overwrite:
        raise InputError(f"expected a fresh output folder; {os.fspath(out_dir)!r} already holds a run "
                         "(continue it, or pass overwrite=True / --overwrite)")

    domain = make_domain(kind, model, target=target, settings=settings, featurizer=featurizer,
                         model_name=model_name, **({"truncate": truncate} if kind == "text" else {}))
    identity = domain.identity()
    if isinstance(items, (str, bytes)):
        raise InputError(f"expected an iterable of inputs; got {describe(items)} (wrap one input in a list)")
    total = _total if _total is not None else (len(items) if isinstance(items, Sized) else None)
    records = items if _input_info is not None else records_from_items(items, kind=kind, ids=ids)
    manifest = {
        "schema_version": output.SCHEMA_VERSION, "kind": kind, "model": identity, "settings": settings.describe(),
        "target": target, "batch_size": part_rows, "format": format,
        "input": _input_info or {"source": "stream"}, "tables": list(output.TABLES[kind]),
        "pictures": pictures if isinstance(pictures, str) else str(pictures),
    }
    resumed = output.check_or_create_manifest(out_dir, manifest, overwrite)
    output.remove_temporaries(out_dir)
    done = output.completed_ranges(out_dir) if resumed else {}

    mine_total = None
    if total is not None:
        batches_total = -(-total // part_rows)
        mine = [b for b in range(batches_total) if b % shard_n == shard_i]
        mine_total = sum(min(part_rows, total - b * part_rows) for b in mine)
        mine_total -= sum(e["end"] - e["start"] for s, e in done.items() if (s // part_rows) % shard_n == shard_i)
    label = "sciattr" if shard_n == 1 else f"sciattr shard {shard_i}/{shard_n}"
    bar = Progress(mine_total, enabled=progress, interval=log_interval, label=label)
    summary = RunSummary(out_dir=out_dir, shard=(shard_i, shard_n))

    def announce(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    pending = ((s, e, recs) for s, e, recs in _batches(records, part_rows)
               if (s // part_rows) % shard_n == shard_i and not _skip(s, e, done, summary))
    with _Stop(announce) as stop:
        try:
            if engine == "ray":
                from sciattr.run.ray_engine import run_ray

                run_ray(pending, domain, out_dir, kind, format, (shard_i, shard_n), bar, summary, stop,
                        workers=workers, num_gpus_per_worker=num_gpus_per_worker)
            else:
                pics = _Pictures(out_dir, mode, top_n, (shard_i, shard_n))
                for start, end, recs in pending:
                    rows, details, extra = domain.attribute(recs)
                    pics.add(domain, rows, extra)
                    entry = write_batch(out_dir, kind, format, rows, details, start, end)
                    output.record_range(out_dir, (shard_i, shard_n), entry)
                    _count(summary, bar, entry)
                    if stop.requested:
                        summary.interrupted = True
                        break
        finally:
            bar.close()
    summary.seconds = time.monotonic() - started
    if summary.interrupted:
        announce(f"sciattr: stopped after {summary.rows:,} rows; {os.fspath(out_dir)} holds every finished "
                 "batch. Run the same command again to continue from the first unfinished batch.")
    return summary


def _skip(start: int, end: int, done: dict, summary: RunSummary) -> bool:
    entry = done.get(start)
    if entry is not None and entry["end"] == end:
        summary.skipped += end - start
        return True
    return False


def _count(summary: RunSummary, bar: Progress, entry: dict) -> None:
    summary.rows += entry["end"] - entry["start"]
    summary.ok += entry["ok"]
    summary.errors += entry["errors"]
    summary.unconverged += entry.get("unconverged", 0)
    bar.update(entry["end"] - entry["start"], entry["errors"])


def write_batch(out_dir: Path, kind: str, fmt: str, rows: list[dict], details: output.Details, start: int,
                end: int) -> dict:
    """Write the parts of one batch (details first, rows last) and return its range entry."""
    files = []
    for table in output.TABLES[kind][1:]:
        part = details.get(table, {})
        path = output.write_part(out_dir / table, kind, table, part, start, end, fmt)
        files.append(path.relative_to(out_dir).as_posix())
    rows_path = output.write_part(out_dir / "rows", kind, "rows", rows, start, end, fmt)
    files.append(rows_path.relative_to(out_dir).as_posix())
    n_err = sum(r["status"] != "ok" for r in rows)
    unconverged = sum(r["status"] == "ok" and r.get("converged") is False for r in rows)
    return {"start": start, "end": end, "files": files, "ok": len(rows) - n_err, "errors": n_err,
            "unconverged": unconverged}


def explain_file(path: str | os.PathLike, *, model, kind: str = "molecule", out_dir: str | os.PathLike,
                 column: str | None = None, id_column: str | None = None, **options) -> RunSummary:
    """:func:`explain_stream` over a file read lazily (CSV, TSV, ``.smi``, SDF, ``.sdf.gz``, Parquet,
    text lines; see :mod:`sciattr.run.readers`).

    ``column``: the SMILES/text column (default ``smiles``/``text``; otherwise an error listing the
    columns). ``id_column``: the id column (default ``id``/``name``, the SDF title). The file and
    its columns are checked, and the output folder tested for writing, before any work.
    """
    path = Path(path)
    records = read_records(path, kind=kind, column=column, id_column=id_column)
    info = {**_fingerprint(path), "column": column, "id_column": id_column}
    total = _count_rows(path, kind)
    if total == 0:
        raise InputError(f"expected at least one input row in {os.fspath(path)!r}; got none")
    return explain_stream(records, model=model, kind=kind, out_dir=out_dir, _input_info=info, _total=total, **options)


def run_info(out_dir) -> dict[str, Any]:
    """The manifest of a run folder and its progress: rows done, ok, errors."""
    manifest = output.read_manifest(out_dir)
    done = output.completed_ranges(out_dir)
    return {"manifest": manifest, "rows": sum(e["end"] - e["start"] for e in done.values()),
            "ok": sum(e["ok"] for e in done.values()), "errors": sum(e["errors"] for e in done.values())}
