"""What it costs to reach attributions that add up: four step schemes side by side on the same work.

Schemes (all through sciattr's engine, so that they differ only in where the nodes go):

* ``captum-default``  -- Captum's default: 50 Gauss-Legendre nodes, no refinement;
* ``doubling-1%``     -- the previous command line: trapezoid on 64 nodes, every example above
  1 % of |F(x) - F(x')| recomputed from scratch on 128, 256, ... up to 1,024 nodes;
* ``nested-1%``       -- the adaptive nested trapezoid at a 1 % tolerance (reuses every node);
* ``default-5%``      -- sciattr's default (adaptive nested trapezoid, the papers' 5 %).

Gaps are reported under one well-posed measure for all schemes: ``|gap| / max(|F(x) - F(x')|,
sum |attributions|)``. Workloads: the readable NCI molecules with the shipped W2N2 and GCN
models, sentences with the shipped LSTM language model, and the dense MLP (ReLU) and LSTM models
of ``bench_core.py``.

    python benchmarks/bench_convergence.py                    # all 4,991 molecules, 500 sentences
    python benchmarks/bench_convergence.py --molecules 500 --sentences 100   # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sciattr.errors import ConvergenceWarning

SCHEMES = ("captum-default", "doubling-1%", "nested-1%", "default-5%")


def well_posed_gap(res) -> torch.Tensor:
    gap = res.completeness_gap.abs().double().reshape(res.n_examples, -1).max(1).values
    delta = res.delta.abs().double().reshape(res.n_examples, -1).max(1).values
    total = res.attribution_scale().double().reshape(res.n_examples, -1).max(1).values
    scale = torch.maximum(delta, total)
    return torch.where(scale > 0, gap / scale.clamp_min(1e-300), torch.where(gap > 0, torch.inf, 0.0))


def run_scheme(scheme: str, explain, n: int) -> dict:
    """``explain(settings_kwargs, subset) -> result``; returns evaluations, wall, gaps, unexplained."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if scheme == "captum-default":
            res = explain({"steps": 50, "rule": "gausslegendre"}, None)
            evaluations = int(res.evaluations.sum())
            gaps = well_posed_gap(res)
            named = 0
        elif scheme == "doubling-1%":
            todo = torch.arange(n)
            gaps = torch.full((n,), torch.inf, dtype=torch.float64)
            evaluations = 0
            nodes = 64
            while todo.numel() and nodes <= 1024:
                res = explain({"steps": nodes - 1, "rule": "trapezoid"}, todo.tolist())
                evaluations += nodes * todo.numel()
                g = res.completeness_gap.abs().double().reshape(res.n_examples, -1).max(1).values
                d = res.delta.abs().double().reshape(res.n_examples, -1).max(1).values
                gaps[todo] = well_posed_gap(res)
                todo = todo[~(g <= 0.01 * d)]
                nodes *= 2
            named = 0
        else:
            tol = {"nested-1%": 0.01, "default-5%": None}[scheme]
            res = explain({} if tol is None else {"tolerance": tol}, None)
            evaluations = int(res.evaluations.sum())
            gaps = well_posed_gap(res)
            named = len(res.meta.get("unconverged", {}))
    wall = time.perf_counter() - start
    tol = 0.05 if scheme in ("captum-default", "default-5%") else 0.01
    above = int((gaps > tol).sum())
    return {
        "scheme": scheme, "n": n, "evaluations": evaluations, "wall": wall,
        "median": float(gaps.median()), "p95": float(torch.quantile(gaps[torch.isfinite(gaps)], 0.95)),
        "max": float(gaps.max()), "above_1": int((gaps > 0.01).sum()), "above_5": int((gaps > 0.05).sum()),
        "above_tol_unnamed": max(above - named, 0) if scheme in ("nested-1%", "default-5%") else above,
        "warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
    }


def molecule_workload(name: str, limit: int | None):
    from sciattr.chem import explain_graphs
    from sciattr.chem.featurize import featurize_batch
    from sciattr.datasets import load_nci
    from sciattr.zoo import load_featurizer, load_model

    model = load_model(name)
    nci = load_nci(limit)
    graphs, _, _errors = featurize_batch(load_featurizer(model), nci.mols)

    def explain(kw, subset):
        chosen = graphs if subset is None else [graphs[i] for i in subset]
        return explain_graphs(model, chosen, target=0, **kw)

    return f"{name} ({len(graphs)} NCI molecules)", explain, len(graphs)


def lm_workload(count: int):
    from sciattr.text.corpus import load_bbc_articles, sentences
    from sciattr.text.lstm_lm import lm_attribution
    from sciattr.zoo.text_models import load_lstm_lm

    lm = load_lstm_lm()
    picked = []
    for article in load_bbc_articles():
        for words in sentences(article.text):
            if 4 <= len(words) <= 20:
                picked.append(" ".join(words[:-1]))
            if len(picked) >= count:
                break
        if len(picked) >= count:
            break

    def explain(kw, subset):
        chosen = picked if subset is None else [picked[i] for i in subset]
        return lm_attribution(lm.model, lm.vocab, chosen, **kw)

    return f"LSTM LM ({len(picked)} BBC sentences)", explain, len(picked)


def dense_workload(kind: str, n: int):
    from bench_core import build

    from sciattr import attribute

    model, x, target = build(kind, n, "cpu")

    def explain(kw, subset):
        idx = slice(None) if subset is None else torch.tensor(subset)
        return attribute(model, x[idx], target=target[idx], **kw)

    label = {"mlp": "MLP 128-256-256-10 (ReLU)", "lstm": "LSTM classifier (20 x 32)"}[kind]
    return f"{label}, {n} inputs", explain, n


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", type=int, default=None, help="first N NCI molecules (default: all)")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--dense", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="w2n2,gcn,lm,mlp,lstm")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    builders = {
        "w2n2": lambda: molecule_workload("w2n2-benzene:0", args.molecules),
        "gcn": lambda: molecule_workload("gcn-benzene:0", args.molecules),
        "lm": lambda: lm_workload(args.sentences),
        "mlp": lambda: dense_workload("mlp", args.dense),
        "lstm": lambda: dense_workload("lstm", args.dense),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s); relative gap = |gap| / max(|delta|, sum|A|)")
    header = ("| workload | scheme | evaluations | wall s | gap median / p95 / max | > 1 % | > 5 % | "
              "above tolerance, unnamed |")
    print(header)
    print("|" + "---|" * 8)
    for key in args.only.split(","):
        label, explain, n = builders[key]()
        rows = {s: run_scheme(s, explain, n) for s in SCHEMES}
        for s in SCHEMES:
            r = rows[s]
            print(f"| {label} | {s} | {r['evaluations']:,} | {r['wall']:.1f} | {r['median']:.1e} / {r['p95']:.1e} / "
                  f"{r['max']:.2g} | {r['above_1']} | {r['above_5']} | {r['above_tol_unnamed']} |", flush=True)
        d, nested, default, captum = rows["doubling-1%"], rows["nested-1%"], rows["default-5%"], rows["captum-default"]
        met = 1 - default["above_5"] / max(n, 1)
        print(f"|   ratios | nested-1% / doubling-1% evaluations {nested['evaluations'] / d['evaluations']:.2f}, "
              f"wall {nested['wall'] / d['wall']:.2f}; default-5% / captum-default wall "
              f"{default['wall'] / captum['wall']:.2f}, evaluations {default['evaluations'] / captum['evaluations']:.2f}; "
              f"default meets 5 % on {met:.1%} | | | | | | |", flush=True)


if __name__ == "__main__":
    main()
