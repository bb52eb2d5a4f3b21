"""sciattr against PyTorch Geometric's ``Explainer(CaptumExplainer("IntegratedGradients"))`` on molecules.

Both explain the same shipped GCN (``gcn-benzene``, a GINEConv network; its logit) for the same
NCI molecules, with the same integrated-gradients settings: zeros baseline on the atom features,
bond features held fixed, ``--steps`` Gauss–Legendre nodes (Captum's default rule, given
explicitly to both). sciattr evaluates all molecules x path nodes in a few disjoint-union
forwards (plus forward-only passes for the end points F(x), F(x') of the completeness check); PyG forces Captum to
one molecule and one path node per forward (``internal_batch_size=1``).

Each side runs in its own process; its peak memory is the largest resident set size sampled
during the explanation minus the resident size just before it (model, molecules and imports
excluded). When the PyG side would take longer than ``--pyg-budget`` seconds, it is timed on the
molecules it finished and its time for all ``--n`` molecules is extrapolated per molecule; the
printout says so.

    python benchmarks/bench_chem_pyg.py                      # 1,000 molecules, 50 steps
    python benchmarks/bench_chem_pyg.py --n 100 --steps 20   # quick
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

MODEL = "gcn-benzene"


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


class PeakRSS:
    """Peak resident memory while inside, minus the resident memory at entry.

    Linux resets the high-water mark (VmHWM) when ``5`` is written to ``/proc/self/clear_refs``,
    so no sampling thread competes with the timed work for the CPU.
    """

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        self.start = _status_mib("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = _status_mib("VmHWM")
        self.delta = self.peak - self.start


def molecules(n: int, size: tuple[int, int] | None = None):
    """The model, its featurizer and the featurized graphs of the first ``n`` NCI molecules.

    ``size = (hidden, layers)`` replaces the shipped model by an untrained, seeded GINENetwork of
    that size (same featurizer), to see how the comparison depends on the model's cost.
    """
    from sciattr.chem.featurize import featurize_batch
    from sciattr.chem.gnn import GINENetwork
    from sciattr.datasets import load_nci
    from sciattr.zoo import load_featurizer, load_model

    model = load_model(MODEL)
    featurizer = load_featurizer(model)
    if size is not None:
        torch.manual_seed(0)
        config = {**model.card["config"], "hidden": size[0], "layers": size[1]}
        model = GINENetwork(**config).eval()
    graphs, _, errors = featurize_batch(featurizer, load_nci().mols[:n])
    if errors:
        raise SystemExit(f"featurization failed: {errors[:2]}")
    return model, featurizer, graphs


def explain_sciattr(model, featurizer, graphs, steps: int, batch_size: int | None = None) -> list[torch.Tensor]:
    from sciattr.chem.adapter import explain_graphs

    result = explain_graphs(model, graphs, target=None, steps=steps, rule="gausslegendre",
                            featurizer=featurizer, attribute_links=False, batch_size=batch_size)
    atoms = result.attributions["atoms"]
    # the engine keeps the atoms of each molecule contiguous and in order: split by atom counts
    counts = torch.bincount(result.segments["atoms"], minlength=len(graphs)).tolist()
    return list(torch.split(atoms, counts))


def pyg_explainer(model, steps: int):
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer

    return Explainer(model=model, algorithm=CaptumExplainer("IntegratedGradients", n_steps=steps,
                                                            method="gausslegendre"),
                     explanation_type="model", node_mask_type="attributes", edge_mask_type=None,
                     model_config={"mode": "regression", "task_level": "graph", "return_type": "raw"})


def explain_pyg(explainer, graph) -> torch.Tensor:
    batch = torch.zeros(graph.n_atoms, dtype=torch.long)
    explanation = explainer(graph.atoms, graph.link_index, edge_attr=graph.links, batch=batch)
    return explanation.node_mask.detach()


def worker(side: str, args) -> dict:
    n, steps, budget = args.n, args.steps, args.pyg_budget
    model, featurizer, graphs = molecules(n, args.size)
    if side == "sciattr":
        explain_sciattr(model, featurizer, graphs[:4], steps, args.batch_size)  # warm-up
        times, peaks = [], []
        for _ in range(args.repeats):  # the median of a few runs: one run takes seconds, PyG's minutes
            gc.collect()
            with PeakRSS() as memory:
                t0 = time.perf_counter()
                explain_sciattr(model, featurizer, graphs, steps, args.batch_size)
                times.append(time.perf_counter() - t0)
            peaks.append(memory.delta)
        return {"side": side, "seconds": statistics.median(times), "runs": times, "done": len(graphs),
                "peak_delta_mib": max(peaks)}
    explainer = pyg_explainer(model, steps)
    explain_pyg(explainer, graphs[0])  # warm-up
    gc.collect()
    done = 0
    with PeakRSS() as memory:
        t0 = time.perf_counter()
        for graph in graphs:
            explain_pyg(explainer, graph)
            done += 1
            if time.perf_counter() - t0 > budget:
                break
        seconds = time.perf_counter() - t0
    return {"side": side, "seconds": seconds, "done": done, "peak_delta_mib": memory.delta}


def agreement(args) -> tuple[float, float]:
    """Largest |sciattr - PyG| atom-feature attribution over ``args.check`` molecules, and the largest |value|."""
    steps = args.steps
    model, featurizer, graphs = molecules(args.check, args.size)
    ours = explain_sciattr(model, featurizer, graphs, steps, args.batch_size)
    explainer = pyg_explainer(model, steps)
    theirs = [explain_pyg(explainer, g) for g in graphs]
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
    scale = max(float(a.abs().max()) for a in ours)
    return diff, scale


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="molecules to explain (default 1000)")
    parser.add_argument("--steps", type=int, default=50, help="Gauss-Legendre nodes (default 50)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help=f"torch threads for both sides (default: torch's, here {torch.get_num_threads()})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="sciattr runs, of which the median is reported (default 3; PyG runs once over all molecules)")
    parser.add_argument("--pyg-budget", type=float, default=240.0,
                        help="seconds after which the PyG side stops and is extrapolated (default 240)")
    parser.add_argument("--check", type=int, default=5, help="molecules compared value by value (default 5)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sciattr replicas (molecule x node) per forward; default: the engine's memory budget")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HIDDEN", "LAYERS"), default=None,
                        help="use an untrained GINENetwork of this size instead of the shipped model")
    parser.add_argument("--worker", choices=("sciattr", "pyg"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    model_text = MODEL if args.size is None else f"untrained GINENetwork hidden={args.size[0]} layers={args.size[1]}"
    print(f"model {model_text}; {args.n} NCI molecules; IG with {args.steps} Gauss-Legendre nodes, zeros "
          f"baseline on atom features, bond features fixed; torch threads {args.threads}; sciattr batch_size "
          f"{args.batch_size or 'default (memory budget)'}; each side in its own process")
    results = {}
    for side in ("sciattr", "pyg"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--n", str(args.n), "--steps",
               str(args.steps), "--threads", str(args.threads), "--pyg-budget", str(args.pyg_budget),
               "--repeats", str(args.repeats)]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.size:
            cmd += ["--size", *map(str, args.size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, theirs = results["sciattr"], results["pyg"]
    pyg_total = theirs["seconds"] / theirs["done"] * args.n
    runs = ", ".join(f"{t:.2f}" for t in ours["runs"])
    print(f"sciattr (batched, ragged):          {ours['seconds']:8.2f} s for {ours['done']} molecules "
          f"({1e3 * ours['seconds'] / ours['done']:.2f} ms/molecule; median of {runs}), peak RSS "
          f"+{ours['peak_delta_mib']:.1f} MiB")
    if theirs["done"] < args.n:
        print(f"PyG Explainer + CaptumExplainer:    {theirs['seconds']:8.2f} s for the first {theirs['done']} "
              f"molecules (time budget reached) -> EXTRAPOLATED to {args.n}: {pyg_total:.1f} s "
              f"({1e3 * theirs['seconds'] / theirs['done']:.1f} ms/molecule), peak RSS "
              f"+{theirs['peak_delta_mib']:.1f} MiB")
    else:
        print(f"PyG Explainer + CaptumExplainer:    {theirs['seconds']:8.2f} s for {theirs['done']} molecules "
              f"({1e3 * theirs['seconds'] / theirs['done']:.1f} ms/molecule), peak RSS "
              f"+{theirs['peak_delta_mib']:.1f} MiB")
    print(f"speed-up (PyG / sciattr):           {pyg_total / ours['seconds']:8.1f}x"
          + ("  (PyG time extrapolated)" if theirs["done"] < args.n else ""))
    diff, scale = agreement(args)
    print(f"same attributions: max |sciattr - PyG| over {args.check} molecules = {diff:.2e} "
          f"(largest |attribution| {scale:.3g}; float32)")


if __name__ == "__main__":
    main()
