"""sciattr against PyTorch Geometric's ``Explainer(CaptumExplainer("IntegratedGradients"))`` on molecules.

Both explain the same shipped GCN (``gcn-benzene:0``, member 0 of the shipped seed ensemble: one
GINEConv network; its logit) for the same NCI molecules, with the same integrated-gradients
settings: zeros baseline on the atom features, bond features held fixed, ``--steps`` Gauss–Legendre
nodes (Captum's default rule, given explicitly to both). sciattr evaluates all molecules x path
nodes in a few disjoint-union forwards (plus forward-only passes for the end points F(x), F(x') of
the completeness check); PyG forces Captum to one molecule and one path node per forward
(``internal_batch_size=1``).

The two are timed in one process, in ``--rounds`` rounds: each round explains all molecules
with sciattr, then the next ``1/rounds`` of them with PyG, so both sample the same stretches of
machine time. The speed-up is PyG's total over sciattr's mean. Peak memory is the high-water
resident set during a call minus the resident set before it (model, molecules and imports
excluded). A floor is timed in the same rounds: one forward and one backward of the model over
the same molecule replicas, prebuilt as plain PyG batches -- the model's own arithmetic, which
bounds how fast any integrated-gradients implementation can be on this machine. When the PyG side would take longer than ``--pyg-budget`` seconds, its time for all
``--n`` molecules is extrapolated per molecule; the printout says so.

    python benchmarks/bench_chem_pyg.py                      # 1,000 molecules, 50 steps
    python benchmarks/bench_chem_pyg.py --n 100 --steps 20   # quick
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import warnings

import torch

MODEL = "gcn-benzene:0"  # member 0 (seed 0) of the shipped ensemble: one GINE network


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


def floor_chunks(graphs, steps: int, per_chunk: int = 216) -> list:
    """The molecule replicas sciattr evaluates (each molecule at every node), as plain PyG batches
    of about the engine's default chunk size, built before timing."""
    from torch_geometric.data import Batch, Data

    alphas = torch.linspace(0.01, 0.99, steps)
    replicas = [Data(x=g.atoms * a, edge_index=g.link_index, edge_attr=g.links) for g in graphs for a in alphas]
    return [Batch.from_data_list(replicas[k:k + per_chunk]) for k in range(0, len(replicas), per_chunk)]


def floor_pass(model, chunks) -> None:
    """One forward and one input-gradient backward of the model over every replica: the work
    integrated gradients cannot avoid, with no attribution bookkeeping at all."""
    for chunk in chunks:
        x = chunk.x.detach().requires_grad_(True)
        out = model(x, chunk.edge_index, chunk.edge_attr, chunk.batch, chunk.num_graphs)
        torch.autograd.grad(out[:, 0], x, grad_outputs=torch.ones_like(out[:, 0]))


def interleaved(args) -> dict:
    """Time both tools in rounds. Each round runs sciattr on all molecules, then PyG on the next
    ``1/rounds`` of them, so both sample the same stretches of machine time (a shared machine's
    speed drifts by tens of percent over minutes)."""
    n, steps, rounds = args.n, args.steps, args.rounds
    model, featurizer, graphs = molecules(n, args.size)
    explainer = pyg_explainer(model, steps)
    explain_sciattr(model, featurizer, graphs[:4], steps, args.batch_size)  # warm-up
    explain_pyg(explainer, graphs[0])
    chunks = floor_chunks(graphs, steps)
    floor = []
    slices = [graphs[k * n // rounds:(k + 1) * n // rounds] for k in range(rounds)]
    ours, ours_peak, theirs, theirs_peak, done = [], 0.0, 0.0, 0.0, 0
    for part in slices:
        gc.collect()
        with PeakRSS() as memory:
            t0 = time.perf_counter()
            explain_sciattr(model, featurizer, graphs, steps, args.batch_size)
            ours.append(time.perf_counter() - t0)
        ours_peak = max(ours_peak, memory.delta)
        t0 = time.perf_counter()
        floor_pass(model, chunks)
        floor.append(time.perf_counter() - t0)
        if theirs > args.pyg_budget:
            continue
        gc.collect()
        with PeakRSS() as memory:
            t0 = time.perf_counter()
            for graph in part:
                explain_pyg(explainer, graph)
            theirs += time.perf_counter() - t0
            done += len(part)
        theirs_peak = max(theirs_peak, memory.delta)
    return {"floor": floor, "sciattr": ours, "sciattr_peak": ours_peak, "pyg": theirs, "pyg_done": done, "pyg_peak": theirs_peak}


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
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds of (sciattr on all molecules, PyG on 1/rounds of them); default 10")
    parser.add_argument("--pyg-budget", type=float, default=240.0,
                        help="seconds after which the PyG side stops and is extrapolated (default 240)")
    parser.add_argument("--check", type=int, default=5, help="molecules compared value by value (default 5)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sciattr replicas (molecule x node) per forward; default: the engine's memory budget")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HIDDEN", "LAYERS"), default=None,
                        help="use an untrained GINENetwork of this size instead of the shipped model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_text = MODEL if args.size is None else f"untrained GINENetwork hidden={args.size[0]} layers={args.size[1]}"
    print(f"model {model_text}; {args.n} NCI molecules; IG with {args.steps} Gauss-Legendre nodes, zeros "
          f"baseline on atom features, bond features fixed; torch threads {args.threads}; sciattr batch_size "
          f"{args.batch_size or 'default (memory budget)'}; {args.rounds} interleaved rounds", flush=True)
    r = interleaved(args)
    ours = statistics.mean(r["sciattr"])
    pyg_total = r["pyg"] / r["pyg_done"] * args.n
    runs = ", ".join(f"{t:.2f}" for t in r["sciattr"])
    print(f"sciattr (batched, ragged):          {ours:8.2f} s for {args.n} molecules, mean of {len(r['sciattr'])} "
          f"runs ({runs}); peak RSS +{r['sciattr_peak']:.1f} MiB")
    print(f"floor (model forward + backward):   {statistics.mean(r['floor']):8.2f} s over the same {args.n * args.steps:,} "
          f"replicas in plain PyG batches, mean of {len(r['floor'])} runs; sciattr / floor = "
          f"{ours / statistics.mean(r['floor']):.2f}")
    what = (f"for {args.n} molecules" if r["pyg_done"] == args.n else
            f"for the first {r['pyg_done']} molecules (time budget reached), EXTRAPOLATED to {args.n}: {pyg_total:.1f} s")
    print(f"PyG Explainer + CaptumExplainer:    {r['pyg']:8.2f} s {what} ({1e3 * r['pyg'] / r['pyg_done']:.1f} "
          f"ms/molecule); peak RSS +{r['pyg_peak']:.1f} MiB")
    print(f"speed-up (PyG / sciattr):           {pyg_total / ours:8.1f}x  (PyG total over sciattr's mean; "
          f"{pyg_total / max(r['sciattr']):.1f}x against sciattr's slowest run, {pyg_total / min(r['sciattr']):.1f}x "
          f"against its fastest)")
    diff, scale = agreement(args)
    print(f"same attributions: max |sciattr - PyG| over {args.check} molecules = {diff:.2e} "
          f"(largest |attribution| {scale:.3g}; float32)")


if __name__ == "__main__":
    main()
