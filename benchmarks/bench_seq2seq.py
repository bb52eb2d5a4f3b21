"""All output tokens of a 10-token seq2seq output: batched over output positions vs one IG call per token.

Two workloads, each a fixed (teacher-forced) 10-token output:

* ``g2p``  -- the pretrained GRU grapheme-to-phoneme model of g2p-en on "internationalization"
  (its first 10 greedy phonemes), attributed to the letter embeddings;
* ``bart`` -- a tiny random BART (d_model 64, 2+2 layers) with a 12-token source and a forced
  10-token output, attributed to the source word embeddings.

Tools (same baseline, Gauss--Legendre rule and steps for all):

* ``replicate``   -- sciattr, every (example, output position) pair is one engine example:
  one forward and one backward pass over all pairs per chunk;
* ``multi``       -- sciattr multi-target: one forward, one backward per output token;
* ``per_token``   -- sciattr called once per output token;
* ``captum``      -- Captum once per output token (``IntegratedGradients`` on the embeddings for
  g2p, ``LayerIntegratedGradients`` on the embedding layer for BART).

After the tools, a ``bound`` line per workload times one forward F and one output token's
backward B over the path rows of one input: one call per token costs ``T (F + B)``, any strategy
that shares the forward at least ``F + T B``, so their ratio bounds its gain.

Each measurement runs in a fresh subprocess; peak memory is the max RSS of that process (CPU)
or the peak allocated CUDA memory. The ratio is Captum's time over each sciattr strategy's.

    python benchmarks/bench_seq2seq.py                  # steps 50, best of 3
    python benchmarks/bench_seq2seq.py --repeats 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

WORKLOADS = ("g2p", "bart")
TOOLS = ("replicate", "multi", "per_token", "captum")
OUTPUT_TOKENS = 10
G2P_WORD = "internationalization"


def build_g2p(device: str):
    """``(score_fn, embeddings, baseline, target_ids, kwargs, embedding_layer, ids)`` for the g2p workload."""
    from sciattr.text.seq2seq import PHONEMES, encode_words, greedy_decode, load_g2p

    model = load_g2p(torch.float32, device)
    phonemes = greedy_decode(model, [G2P_WORD])[0][:OUTPUT_TOKENS]
    ids, lengths = encode_words([G2P_WORD], device)
    target = torch.tensor([[PHONEMES.index(p) for p in phonemes]], device=device)
    with torch.no_grad():
        emb = model.source_embedding(ids)
    baseline = emb.clone()
    baseline[:, : len(G2P_WORD)] = 0.0  # letters -> zero embedding, </s> kept
    return model, emb, baseline, target, {"source_lengths": lengths}, model.source_embedding, ids


def build_bart(device: str):
    """The tiny BART workload (random weights, seeded; PAD embedding is the zero vector)."""
    import transformers

    from sciattr.text.huggingface import TeacherForcedScores

    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                     decoder_ffn_dim=128, max_position_embeddings=64, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = transformers.BartForConditionalGeneration(config).to(device).eval()
    ids = torch.cat([torch.tensor([[0]]), torch.randint(4, 128, (1, 10)), torch.tensor([[2]])], 1).to(device)
    target = torch.randint(4, 128, (1, OUTPUT_TOKENS), device=device)
    embedding = model.get_encoder().get_input_embeddings()
    with torch.no_grad():
        emb = embedding(ids)
        pad = embedding(torch.full_like(ids, config.pad_token_id))
    baseline = torch.where(((ids == 0) | (ids == 2))[..., None], emb, pad)  # BOS/EOS kept
    mask = torch.ones_like(ids)
    return TeacherForcedScores(model), emb, baseline, target, {"attention_mask": mask}, embedding, ids


def passes(workload: str, steps: int, repeats: int, device: str) -> dict:
    """Seconds of one forward (with autograd) and of one output token's backward over the ``steps``
    path rows of one input: the two costs that bound any strategy sharing the forward."""
    scorer, emb, _, target, kwargs, _, _ = (build_g2p if workload == "g2p" else build_bart)(device)
    x = emb.expand(steps, *emb.shape[1:]).clone().requires_grad_(True)
    rows = {k: v.expand(steps, *v.shape[1:]) for k, v in kwargs.items()}
    call = {"embeddings": x, "target_ids": target.expand(steps, -1), **rows}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    forward, backward = [], []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        out = scorer(**call)
        sync()
        forward.append(time.perf_counter() - t0)
        for t in range(OUTPUT_TOKENS):
            t0 = time.perf_counter()
            torch.autograd.grad(out[:, t].sum(), x, retain_graph=t < OUTPUT_TOKENS - 1)
            sync()
            backward.append(time.perf_counter() - t0)
    return {"forward": statistics.median(forward[1:]), "backward": statistics.median(backward[OUTPUT_TOKENS:])}


def run_tool(tool: str, workload: str, steps: int, repeats: int, device: str) -> dict:
    if tool == "passes":
        return {"tool": tool, "workload": workload, **passes(workload, steps, repeats, device)}
    scorer, emb, baseline, target, kwargs, embedding, ids = (build_g2p if workload == "g2p" else build_bart)(device)

    def sciattr_once(strategy):
        from sciattr.text.seq2seq import attribute_outputs

        return attribute_outputs(scorer, emb, target, baselines=baseline, strategy=strategy, steps=steps,
                                 forward_kwargs=kwargs).attributions["embeddings"]

    def captum_once():
        if workload == "g2p":
            from captum.attr import IntegratedGradients

            ig = IntegratedGradients(lambda e: scorer(e, target.expand(e.shape[0], -1),
                                                      kwargs["source_lengths"].expand(e.shape[0])))
            return torch.stack([ig.attribute(emb, baselines=baseline, target=t, n_steps=steps, method="gausslegendre")
                                for t in range(OUTPUT_TOKENS)], -1)
        from captum.attr import LayerIntegratedGradients

        def forward(input_ids):
            rows = input_ids.shape[0]
            return scorer.from_ids(input_ids, target.expand(rows, -1), kwargs["attention_mask"].expand(rows, -1))

        lig = LayerIntegratedGradients(forward, embedding)
        base_ids = torch.where((ids == 0) | (ids == 2), ids, torch.full_like(ids, 1))
        return torch.stack([lig.attribute(ids, baselines=base_ids, target=t, n_steps=steps, method="gausslegendre")
                            for t in range(OUTPUT_TOKENS)], -1)

    fn = {"replicate": lambda: sciattr_once("replicate"), "multi": lambda: sciattr_once("multi_target"),
          "per_token": lambda: sciattr_once("per_token"), "captum": captum_once}[tool]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    result = fn()  # warm-up
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - t0)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    matrix = result.sum(2)[0].detach().double().cpu()  # (L, T)
    return {"tool": tool, "workload": workload, "time": min(times), "peak_mib": peak, "matrix": matrix.tolist()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_tool(args.worker[0], args.worker[1], args.steps, args.repeats, args.device)))
        return
    print(f"device={args.device} threads={torch.get_num_threads()} output tokens={OUTPUT_TOKENS} "
          f"steps={args.steps} (gausslegendre; best of {args.repeats}; each tool in its own process)")
    print(f"{'workload':<9} {'tool':<10} {'time s':>8} {'captum/this':>12} {'peak MiB':>9} {'max |diff| vs captum':>21}")
    for workload in args.workloads:
        res = {}
        for tool in TOOLS:
            cmd = [sys.executable, __file__, "--worker", tool, workload, "--steps", str(args.steps),
                   "--repeats", str(args.repeats), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ))
            res[tool] = json.loads(out.stdout.strip().splitlines()[-1])
        reference = torch.tensor(res["captum"]["matrix"])
        for tool in TOOLS:
            r = res[tool]
            diff = (torch.tensor(r["matrix"]) - reference).abs().max().item()
            print(f"{workload:<9} {tool:<10} {r['time']:>8.3f} {res['captum']['time'] / r['time']:>11.2f}x "
                  f"{r['peak_mib']:>9.0f} {diff:>21.2e}", flush=True)
        cmd = [sys.executable, __file__, "--worker", "passes", workload, "--steps", str(args.steps),
               "--repeats", str(max(args.repeats, 5)), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ))
        p = json.loads(out.stdout.strip().splitlines()[-1])
        f, b, t = p["forward"], p["backward"], OUTPUT_TOKENS
        print(f"{workload:<9} bound: forward {1e3 * f:.1f} ms, one token's backward {1e3 * b:.1f} ms over "
              f"{args.steps} rows; one call per token costs {t} x (F + B), a shared forward F + {t} x B, so "
              f"sharing the forward gains at most {t * (f + b) / (f + t * b):.2f}x", flush=True)


if __name__ == "__main__":
    main()
