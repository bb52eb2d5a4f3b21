"""sciattr against PyTorch Geometric's ``Explainer(CaptumExplainer("IntegratedGradients"))`` on molecules.

Both explain the same shipped GCN (``gcn-benzene``, a GINEConv network; its logit) for the same
NCI molecules, with the same integrated-gradients settings: zeros baseline on the atom features,
bond features held fixed, ``--steps`` Gauss–Legendre nodes (Captum's default rule, given
explicitly to both). sciattr evaluates all molecules x path nodes in a few disjoint-union
forwards (plus the two end points F(x), F(x') for the completeness check); PyG forces Captum to
one molecule and one path node per forward (``internal_batch_size=1``).

Each side runs in its own process, so its peak memory (max RSS after setup minus before) is its
own. When the PyG side would take longer than ``--pyg-budget`` seconds, it is timed on the
molecules it finished and its time for all ``--n`` molecules is extrapolated per molecule; the
printout says so.

    python benchmarks/bench_chem_pyg.py                      # 1,000 molecules, 50 steps
    python benchmarks/bench_chem_pyg.py --n 100 --steps 20   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import torch

MODEL = "gcn-benzene"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def molecules(n: int):
    """The model, its featurizer and the featurized graphs of the first ``n`` NCI molecules."""
    from sciattr.chem.featurize import featurize_batch
    from sciattr.datasets import load_nci
    from sciattr.zoo import load_featurizer, load_model

    model = load_model(MODEL)
    featurizer = load_featurizer(model)
    graphs, _, errors = featurize_batch(featurizer, load_nci().mols[:n])
    if errors:
        raise SystemExit(f"featurization failed: {errors[:2]}")
    return model, featurizer, graphs


def explain_sciattr(model, featurizer, graphs, steps: int) -> list[torch.Tensor]:
    from sciattr.chem.adapter import explain_graphs

    result = explain_graphs(model, graphs, target=None, steps=steps, rule="gausslegendre",
                            featurizer=featurizer, attribute_links=False)
    atoms = result.attributions["atoms"]
    return [atoms[result.segments["atoms"] == i] for i in range(len(graphs))]


def pyg_explainer(model, steps: int):
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer

    return Explainer(model=model, algorithm=CaptumExplainer("IntegratedGradients", n_steps=steps,
                                                            method="gausslegendre"),
                     explanation_type="model", node_mask_type="attributes", edge_mask_type=None,
                     model_config=dict(mode="regression", task_level="graph", return_type="raw"))


def explain_pyg(explainer, graph) -> torch.Tensor:
    batch = torch.zeros(graph.n_atoms, dtype=torch.long)
    explanation = explainer(graph.atoms, graph.link_index, edge_attr=graph.links, batch=batch)
    return explanation.node_mask.detach()


def worker(side: str, n: int, steps: int, budget: float) -> dict:
    model, featurizer, graphs = molecules(n)
    if side == "sciattr":
        explain_sciattr(model, featurizer, graphs[:4], steps)  # warm-up
        before = _rss_mib()
        t0 = time.perf_counter()
        explain_sciattr(model, featurizer, graphs, steps)
        seconds = time.perf_counter() - t0
        return {"side": side, "seconds": seconds, "done": len(graphs), "peak_delta_mib": _rss_mib() - before}
    explainer = pyg_explainer(model, steps)
    explain_pyg(explainer, graphs[0])  # warm-up
    before = _rss_mib()
    t0 = time.perf_counter()
    done = 0
    for graph in graphs:
        explain_pyg(explainer, graph)
        done += 1
        if time.perf_counter() - t0 > budget:
            break
    seconds = time.perf_counter() - t0
    return {"side": side, "seconds": seconds, "done": done, "peak_delta_mib": _rss_mib() - before}


def agreement(steps: int, count: int) -> tuple[float, float]:
    """Largest |sciattr - PyG| atom-feature attribution over ``count`` molecules, and the largest |value|."""
    model, featurizer, graphs = molecules(count)
    ours = explain_sciattr(model, featurizer, graphs, steps)
    explainer = pyg_explainer(model, steps)
    theirs = [explain_pyg(explainer, g) for g in graphs]
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
    scale = max(float(a.abs().max()) for a in ours)
    return diff, scale


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="molecules to explain (default 1000)")
    parser.add_argument("--steps", type=int, default=50, help="Gauss-Legendre nodes (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (default 1)")
    parser.add_argument("--pyg-budget", type=float, default=240.0,
                        help="seconds after which the PyG side stops and is extrapolated (default 240)")
    parser.add_argument("--check", type=int, default=5, help="molecules compared value by value (default 5)")
    parser.add_argument("--worker", choices=("sciattr", "pyg"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.steps, args.pyg_budget)))
        return
    print(f"model {MODEL}; {args.n} NCI molecules; IG with {args.steps} Gauss-Legendre nodes, zeros baseline "
          f"on atom features, bond features fixed; torch threads {args.threads}; each side in its own process")
    results = {}
    for side in ("sciattr", "pyg"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--n", str(args.n), "--steps",
               str(args.steps), "--threads", str(args.threads), "--pyg-budget", str(args.pyg_budget)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, theirs = results["sciattr"], results["pyg"]
    pyg_total = theirs["seconds"] / theirs["done"] * args.n
    print(f"sciattr (batched, ragged):          {ours['seconds']:8.2f} s for {ours['done']} molecules "
          f"({1e3 * ours['seconds'] / ours['done']:.2f} ms/molecule), peak RSS +{ours['peak_delta_mib']:.0f} MiB")
    if theirs["done"] < args.n:
        print(f"PyG Explainer + CaptumExplainer:    {theirs['seconds']:8.2f} s for the first {theirs['done']} "
              f"molecules (time budget reached) -> EXTRAPOLATED to {args.n}: {pyg_total:.1f} s "
              f"({1e3 * theirs['seconds'] / theirs['done']:.1f} ms/molecule), peak RSS "
              f"+{theirs['peak_delta_mib']:.0f} MiB")
    else:
        print(f"PyG Explainer + CaptumExplainer:    {theirs['seconds']:8.2f} s for {theirs['done']} molecules "
              f"({1e3 * theirs['seconds'] / theirs['done']:.1f} ms/molecule), peak RSS "
              f"+{theirs['peak_delta_mib']:.0f} MiB")
    print(f"speed-up (PyG / sciattr):           {pyg_total / ours['seconds']:8.1f}x"
          + ("  (PyG time extrapolated)" if theirs["done"] < args.n else ""))
    diff, scale = agreement(args.steps, args.check)
    print(f"same attributions: max |sciattr - PyG| over {args.check} molecules = {diff:.2e} "
          f"(largest |attribution| {scale:.3g}; float32)")


if __name__ == "__main__":
    main()
