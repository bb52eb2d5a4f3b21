"""The streaming runner at library scale: peak memory against input size, throughput against the
in-memory API and against PyG's ``Explainer(CaptumExplainer("IntegratedGradients"))``.

The library is RDKit's NCI set (4,991 molecules, shipped with RDKit) cycled to the wanted size,
one ``.smi`` line per molecule with an id ``nciK-cC`` (molecule K, cycle C): real chemistry,
deterministic, nothing downloaded, nothing committed. Every measurement runs in its own
subprocess with ``--threads`` torch threads (default 1), so each peak resident set (``VmHWM``) is
that of one run alone, imports and model included.

Every side is timed from a started Python with torch imported: importing sciattr's modules, loading
the model, featurizing and attributing (and, for the runner, writing) are all part of the time.

1. **Memory flat in the input size**: ``sciattr.run.explain_file`` (default settings: adaptive
   steps to the 5 % completeness tolerance, Parquet parts of ``--part-rows`` rows) on ``--n`` and
   on ``10 x --n`` molecules; the ratio of the two peaks (goal: at most 1.2).
2. **Streaming against in-memory**: one ``sciattr.chem.explain_molecules`` call on the first
   ``--n-memory`` molecules (all results held), the same call followed by its molecule, atom and
   bond DataFrames (the tables the runner writes), and the runner on the same molecules, in
   ``--rounds`` interleaved rounds (goal: at least 0.9x the in-memory rows/s).
3. **Against PyG**: the shipped GINE network ``gcn-benzene:0`` (member 0 of its seed ensemble) on the first ``--n-pyg`` molecules,
   ``--steps`` Gauss-Legendre nodes on both sides. PyG's explainer attributes the atom features,
   one molecule and one path node per forward; the runner attributes atom *and* bond features,
   writes rows, atoms and bonds to Parquet, and checks completeness per molecule. The runner is
   also timed with its default (adaptive) settings.
4. Optionally (``--shards 2``): two processes ``--shard 0/2`` and ``1/2`` at once into one folder;
   (``--ray-workers 2``): the Ray Data backend with two actors (``ray.init`` included).

    python benchmarks/bench_scale.py                    # 10,000 and 100,000 molecules (about half an hour)
    python benchmarks/bench_scale.py --n 2000           # 2,000 and 20,000 (about ten minutes on 1 thread)
    python benchmarks/bench_scale.py --n 200 --n-pyg 20 # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODEL = "w2n2-benzene:0"  # member 0 (seed 0) of the shipped ensembles: one network
PYG_MODEL = "gcn-benzene:0"


# ---------------------------------------------------------------------------------------- the library
def write_library(path: Path, n: int) -> Path:
    """``n`` NCI molecules (cycled) as a ``.smi`` file with ids."""
    from rdkit import Chem

    from sciattr.datasets import load_nci

    smiles = [Chem.MolToSmiles(m) for m in load_nci().mols]
    with open(path, "w") as handle:
        handle.write("smiles id\n")
        handle.writelines(f"{smiles[k % len(smiles)]} nci{k % len(smiles)}-c{k // len(smiles)}\n" for k in range(n))
    return path


# ---------------------------------------------------------------------------------------- children
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_chem_pyg import _status_mib


def child(args) -> None:
    """One measurement in this process; prints one JSON line."""
    import warnings

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    # every side is timed from here: importing sciattr's domain modules, loading the model and
    # featurizing are part of the job
    t0 = time.perf_counter()
    from sciattr.settings import Settings

    settings = Settings() if args.steps is None else Settings(steps=args.steps, rule="gausslegendre")
    start_rss = _status_mib("VmRSS")
    if args.child == "stream":
        from sciattr.run import explain_file

        summary = explain_file(args.file, model=args.model, out_dir=args.out, settings=settings, progress=False,
                               part_rows=args.part_rows, shard=args.shard)
        seconds = time.perf_counter() - t0
        rows, ok = summary.rows, summary.ok
    elif args.child == "ray":
        from sciattr.run import explain_file

        summary = explain_file(args.file, model=args.model, out_dir=args.out, settings=settings, progress=False,
                               part_rows=args.part_rows, engine="ray", workers=args.workers)
        seconds = time.perf_counter() - t0
        rows, ok = summary.rows, summary.ok
    elif args.child in ("memory", "memory+tables"):
        from sciattr.chem import explain_molecules
        from sciattr.zoo import load_featurizer, load_model

        lines = Path(args.file).read_text().splitlines()[1:]
        smiles = [line.split()[0] for line in lines]
        model = load_model(args.model)
        featurizer = load_featurizer(model)
        result = explain_molecules(model, smiles, featurizer=featurizer, settings=settings)
        if args.child == "memory+tables":  # the same tables the runner writes, as DataFrames
            frames = [result.to_dataframe(level) for level in ("molecule", "atom", "bond")]
            del frames
        seconds = time.perf_counter() - t0
        rows, ok = len(smiles), result.n_examples
    elif args.child == "pyg":
        from torch_geometric.explain import Explainer
        from torch_geometric.explain.algorithm import CaptumExplainer

        from sciattr.chem.featurize import featurize_batch
        from sciattr.zoo import load_featurizer, load_model

        lines = Path(args.file).read_text().splitlines()[1:]
        model = load_model(args.model)
        featurizer = load_featurizer(model)
        explainer = Explainer(model=model, algorithm=CaptumExplainer("IntegratedGradients", n_steps=args.steps,
                                                                     method="gausslegendre"),
                              explanation_type="model", node_mask_type="attributes", edge_mask_type=None,
                              model_config={"mode": "regression", "task_level": "graph", "return_type": "raw"})
        graphs, _, _ = featurize_batch(featurizer, [line.split()[0] for line in lines])
        for graph in graphs:
            batch = torch.zeros(graph.n_atoms, dtype=torch.long)
            explainer(graph.atoms, graph.link_index, edge_attr=graph.links, batch=batch)
        seconds = time.perf_counter() - t0
        rows, ok = len(lines), len(graphs)
    else:
        raise SystemExit(f"unknown child {args.child!r}")
    print(json.dumps({"rows": rows, "ok": ok, "seconds": seconds, "start_mib": start_rss,
                      "peak_mib": _status_mib("VmHWM")}), flush=True)


def run_child(kind: str, file: Path, *, model: str, threads: int, steps=None, out: Path | None = None,
              part_rows: int = 1024, shard: str | None = None, workers: int = 2, wait: bool = True):
    command = [sys.executable, os.path.abspath(__file__), "--child", kind, "--file", str(file), "--model", model,
               "--threads", str(threads), "--part-rows", str(part_rows), "--workers", str(workers)]
    if steps is not None:
        command += ["--steps", str(steps)]
    if out is not None:
        command += ["--out", str(out)]
    if shard is not None:
        command += ["--shard", shard]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    return finish(process) if wait else process


def finish(process) -> dict:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a measurement failed (exit {process.returncode}): {process.args}")
    return json.loads(out.strip().splitlines()[-1])


def _line(label: str, r: dict) -> str:
    return (f"{label:<52} {r['rows']:>8,} rows {r['seconds']:>9.1f} s {r['rows'] / r['seconds']:>8.1f} rows/s   "
            f"peak RSS {r['peak_mib']:>7.0f} MiB")


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="the smaller library (the larger is 10x); default 10,000")
    parser.add_argument("--n-memory", type=int, default=None,
                        help="molecules for streaming vs in-memory (default: min(--n, 5,000))")
    parser.add_argument("--n-pyg", type=int, default=200, help="molecules for the PyG comparison (default 200)")
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pyg-steps", type=int, default=50, help="Gauss-Legendre nodes for the PyG comparison")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model of parts 1-2 (default {DEFAULT_MODEL})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--part-rows", type=int, default=1024, help="rows per batch and part file (default 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of part 2 (default 2)")
    parser.add_argument("--shards", type=int, default=0, help="also run this many shards at once (default: no)")
    parser.add_argument("--n-parallel", type=int, default=None,
                        help="molecules for the shards / Ray comparison (default: --n-memory)")
    parser.add_argument("--ray-workers", type=int, default=0,
                        help="also run the Ray backend with this many actors (default: no)")
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--skip-large", action="store_true", help="only the smaller library")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shard", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    import torch

    n_memory = args.n_memory or min(args.n, 5000)
    print(f"sciattr streaming runner; model {args.model}; NCI molecules cycled; {args.threads} torch thread(s) per "
          f"process; part rows {args.part_rows}; torch {torch.__version__}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        common = {"model": args.model, "threads": args.threads, "part_rows": args.part_rows}

        print("\n1. peak memory against input size (default settings: adaptive steps, 5 % tolerance)", flush=True)
        small = run_child("stream", write_library(tmp / "small.smi", args.n), out=tmp / "small", **common)
        print(_line(f"runner, {args.n:,} molecules", small), flush=True)
        if not args.skip_large:
            large = run_child("stream", write_library(tmp / "large.smi", 10 * args.n), out=tmp / "large", **common)
            print(_line(f"runner, {10 * args.n:,} molecules", large), flush=True)
            print(f"peak RSS {10 * args.n:,} / {args.n:,}: {large['peak_mib'] / small['peak_mib']:.3f} "
                  f"(goal <= 1.2); rows/s {large['rows'] / large['seconds'] / (small['rows'] / small['seconds']):.2f}",
                  flush=True)

        print(f"\n2. streaming against one in-memory call on the same {n_memory:,} molecules ({args.rounds} "
              "interleaved rounds: a shared machine's speed drifts over minutes)", flush=True)
        same = write_library(tmp / "memory.smi", n_memory)
        seen: dict[str, list[dict]] = {"memory": [], "memory+tables": [], "stream": []}
        for k in range(args.rounds):
            seen["memory"].append(run_child("memory", same, model=args.model, threads=args.threads))
            print(_line("in-memory explain_molecules (all results held)", seen["memory"][-1]), flush=True)
            seen["memory+tables"].append(run_child("memory+tables", same, model=args.model, threads=args.threads))
            print(_line("  + to_dataframe of molecules, atoms, bonds", seen["memory+tables"][-1]), flush=True)
            seen["stream"].append(run_child("stream", same, out=tmp / f"memory-stream-{k}", **common))
            print(_line("runner (rows, atoms, bonds in Parquet parts)", seen["stream"][-1]), flush=True)
        mean = {key: statistics.mean(r["seconds"] for r in runs) for key, runs in seen.items()}
        print(f"runner / in-memory rows/s (means of the rounds): {mean['memory'] / mean['stream']:.2f} against the "
              f"bare call, {mean['memory+tables'] / mean['stream']:.2f} against the call + its tables (goal >= 0.9); "
              f"peak RSS runner / in-memory: {seen['stream'][0]['peak_mib'] / seen['memory'][0]['peak_mib']:.2f}",
              flush=True)

        if args.ray_workers or args.shards > 1:
            n_par = args.n_parallel or n_memory
            print(f"\n4. parallel: one process, {args.shards} shards at once, Ray Data with {args.ray_workers} actors, "
                  f"on the same {n_par:,} molecules", flush=True)
            par = same if n_par == n_memory else write_library(tmp / "parallel.smi", n_par)
            # all three by the wall clock around the processes: start-up counts for each
            t0 = time.perf_counter()
            one = run_child("stream", par, out=tmp / "parallel-one", **common)
            one["seconds"] = time.perf_counter() - t0
            print(_line("one process (wall, with start-up)", one), flush=True)
            if args.shards > 1:
                t0 = time.perf_counter()
                processes = [run_child("stream", par, out=tmp / "shards", shard=f"{i}/{args.shards}", wait=False,
                                       **common) for i in range(args.shards)]
                parts = [finish(p) for p in processes]
                wall = time.perf_counter() - t0
                rows = sum(p["rows"] for p in parts)
                print(f"{f'{args.shards} shards at once (wall, with start-up)':<52} {rows:>8,} rows {wall:>9.1f} s "
                      f"{rows / wall:>8.1f} rows/s   speed-up over one process {one['seconds'] / wall:.2f}x",
                      flush=True)
            if args.ray_workers:
                t0 = time.perf_counter()
                ray = run_child("ray", par, out=tmp / "ray", workers=args.ray_workers, **common)
                ray["seconds"] = time.perf_counter() - t0
                print(_line(f"Ray Data, {args.ray_workers} actors (wall, with ray.init; driver RSS)", ray) +
                      f"   speed-up over one process {one['seconds'] / ray['seconds']:.2f}x", flush=True)

        print(f"\n3. against PyG Explainer + CaptumExplainer('IntegratedGradients'), model {PYG_MODEL}, "
              f"{args.n_pyg:,} molecules", flush=True)
        few = write_library(tmp / "pyg.smi", args.n_pyg)
        pyg = run_child("pyg", few, model=PYG_MODEL, threads=args.threads, steps=args.pyg_steps)
        print(_line(f"PyG + Captum, {args.pyg_steps} Gauss-Legendre nodes (atom features)", pyg), flush=True)
        fixed = run_child("stream", few, model=PYG_MODEL, threads=args.threads, steps=args.pyg_steps,
                          part_rows=args.part_rows, out=tmp / "pyg-fixed")
        print(_line(f"runner, {args.pyg_steps} Gauss-Legendre nodes (atoms + bonds)", fixed), flush=True)
        adaptive = run_child("stream", few, model=PYG_MODEL, threads=args.threads, part_rows=args.part_rows,
                             out=tmp / "pyg-adaptive")
        print(_line("runner, default settings (adaptive, 5 % tolerance)", adaptive), flush=True)
        print(f"runner / PyG rows/s: {pyg['seconds'] / fixed['seconds']:.1f}x at {args.pyg_steps} nodes, "
              f"{pyg['seconds'] / adaptive['seconds']:.1f}x with the runner's default settings", flush=True)


if __name__ == "__main__":
    main()
