"""The Ray Data backend: batches of input rows flow through an actor pool that loads the model once
per actor; each actor writes its batch's part files (atomically, under the same names as the
single-process runner) and the driver records the completed ranges as results come back.

The input is handed to Ray in windows of ``4 x workers`` batches (the driver never holds the
whole input; each window starts its actors, which load the model once). A worker that dies is
restarted by Ray and its batch retried: the part names are fixed by the
row range and a range is recorded only once its files are written, so no row is lost or duplicated.
Needs the ``scale`` extra (``ray[data]``). Connects to a running cluster when ``RAY_ADDRESS`` is
set (or Ray is already initialised), else starts a local instance.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from sciattr.errors import require
from sciattr.run import output

__all__ = ["run_ray"]


class _Attributor:
    """One actor: the domain (model loaded once) and the writer."""

    def __init__(self, domain_state: dict, out_dir: str, kind: str, fmt: str, threads: int):
        import torch

        from sciattr.run.domains import make_domain

        torch.set_num_threads(threads)
        state = dict(domain_state)
        self.domain = make_domain(state.pop("kind"), state.pop("model"), **state)
        self.domain.load()
        self.out_dir, self.kind, self.fmt = Path(out_dir), kind, fmt

    def __call__(self, batch: dict) -> dict:
        from sciattr.run.readers import Record
        from sciattr.run.runner import write_batch

        _fault_point()

        out: dict[str, list[int | str]] = {"start": [], "end": [], "entry": []}
        for start, end, payload in zip(batch["start"], batch["end"], batch["records"]):
            records = [Record(**r) for r in json.loads(payload)]
            rows, details, _ = self.domain.attribute(records)
            entry = write_batch(self.out_dir, self.kind, self.fmt, rows, details, int(start), int(end))
            out["start"].append(int(start))
            out["end"].append(int(end))
            out["entry"].append(json.dumps(entry))
        return out


#: Fault injection for tests: when this environment variable names an existing file, the first actor
#: to take a batch deletes the file and exits at once, as a worker killed mid-batch would.
FAULT_FILE_VARIABLE = "SCIATTR_RAY_FAULT_ONCE"


def _fault_point() -> None:
    path = os.environ.get(FAULT_FILE_VARIABLE)
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        os._exit(1)


def _domain_state(domain) -> dict:
    state = {"kind": domain.kind, "model": domain.model_spec, "target": domain.target, "settings": domain.settings,
             "model_name": domain._name}
    if domain.kind == "molecule":
        state["featurizer"] = domain.featurizer
    else:
        state["truncate"] = domain.truncate
    return state


def run_ray(pending, domain, out_dir: Path, kind: str, fmt: str, shard, bar, summary, stop, *, workers: int = 2,
            num_gpus_per_worker: float = 0) -> None:
    """Attribute the ``pending`` batches on a Ray Data actor pool (see the module docstring)."""
    ray = require("ray", "scale")
    require("ray.data", "scale")
    from sciattr.run.runner import _count

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    state = _domain_state(domain)
    # the input goes to Ray in windows of batches, so the driver never holds the whole input
    window = max(4 * workers, 8)
    batches = iter(pending)
    while True:
        items = [{"start": s, "end": e, "records": json.dumps([r.__dict__ for r in recs])}
                 for s, e, recs in itertools.islice(batches, window)]
        if not items:
            return
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        results = ds.map_batches(
            _Attributor, batch_size=1, concurrency=min(workers, len(items)), num_cpus=1,
            num_gpus=num_gpus_per_worker or None,
            fn_constructor_kwargs={"domain_state": state, "out_dir": os.fspath(out_dir), "kind": kind, "fmt": fmt,
                                   "threads": threads},
            max_restarts=2, max_task_retries=2,
        )
        for row in results.iter_rows():
            entry = json.loads(row["entry"])
            output.record_range(out_dir, shard, entry)
            _count(summary, bar, entry)
            if stop.requested:
                summary.interrupted = True
                return
