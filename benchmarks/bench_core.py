"""sciattr's IG engine against Captum's IntegratedGradients on the same models and inputs.

Times are measured in one process with the three tools interleaved (sciattr, Captum, floor,
sciattr, ...), so that machine noise hits them alike; the table shows the median and the best of
the repeats. Peak memory (max RSS on the CPU, peak allocated memory on CUDA) is measured once per
tool in a fresh subprocess so that it is the tool's own. The floor is one forward + backward pass
of the same expanded (inputs x steps) batch: no IG implementation can do less work.

    python benchmarks/bench_core.py                 # 256 inputs x 50 steps, MLP and LSTM
    python benchmarks/bench_core.py --n 64 --steps 20 --repeats 1   # quick
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

MODELS = ("mlp", "lstm")
TOOLS = ("sciattr", "captum", "floor")


class LSTMClassifier(torch.nn.Module):
    def __init__(self, n_in=32, hidden=64, n_classes=5):
        super().__init__()
        self.lstm = torch.nn.LSTM(n_in, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def build(model_name: str, n: int, device: str):
    torch.manual_seed(0)
    if model_name == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 10))
        x = torch.randn(n, 128)
    else:
        model = LSTMClassifier()
        x = torch.randn(n, 20, 32)
    model = model.to(device).eval()
    return model, x.to(device), torch.arange(n, device=device) % 5


def tools(model, x, target, steps: int) -> dict:
    """The three measured callables on the same model and inputs."""

    def sciattr_once():
        from sciattr import integrated_gradients

        return integrated_gradients(model, x, target=target, steps=steps, rule="gausslegendre")

    def captum_once():
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model).attribute(x, target=target, n_steps=steps, method="gausslegendre")

    def floor_once():
        xs = x.repeat_interleave(steps, 0).requires_grad_(True)
        out = model(xs).gather(1, target.repeat_interleave(steps)[:, None])
        (g,) = torch.autograd.grad(out.sum(), xs)
        return g

    return {"sciattr": sciattr_once, "captum": captum_once, "floor": floor_once}


def interleaved_times(model_name: str, n: int, steps: int, repeats: int, device: str) -> dict:
    """Median and best wall time of each tool, the tools run in turn ``repeats`` times."""
    model, x, target = build(model_name, n, device)
    fns = tools(model, x, target, steps)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(ts), min(ts)) for name, ts in times.items()}


def _peak_rss_mib() -> float:
    """High-water resident set of this process (VmHWM; unlike ru_maxrss it is not inherited from the
    parent across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_tool(tool: str, model_name: str, n: int, steps: int, repeats: int, device: str) -> dict:
    model, x, target = build(model_name, n, device)
    fn = tools(model, x, target, steps)[tool]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()  # warm-up (lazy imports, allocator)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_before = _peak_rss_mib()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mib()
    return {"tool": tool, "model": model_name, "time": min(times), "peak_mib": peak,
            "rss_before_mib": rss_before}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_tool(args.worker[0], args.worker[1], args.n, args.steps, args.repeats, args.device)))
        return
    print(f"device={args.device} threads={torch.get_num_threads()} n={args.n} steps={args.steps} "
          f"(gausslegendre; time: median [best] of {args.repeats} interleaved runs; memory: own process each)")
    print(f"{'model':<6} {'sciattr s':>16} {'captum s':>16} {'floor s':>16} {'captum/sciattr':>15} "
          f"{'sciattr/floor':>14} {'sciattr MiB':>12} {'captum MiB':>11} {'floor MiB':>10}")
    for model_name in MODELS:
        times = interleaved_times(model_name, args.n, args.steps, args.repeats, args.device)
        peak = {}
        for tool in TOOLS:
            cmd = [sys.executable, __file__, "--worker", tool, model_name, "--n", str(args.n), "--steps",
                   str(args.steps), "--repeats", "1", "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ))
            peak[tool] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
        (s_med, s_min), (c_med, c_min), (f_med, f_min) = times["sciattr"], times["captum"], times["floor"]
        print(f"{model_name:<6} {s_med:>8.3f} [{s_min:.3f}] {c_med:>8.3f} [{c_min:.3f}] {f_med:>8.3f} [{f_min:.3f}] "
              f"{c_med / s_med:>14.2f}x {s_med / f_med:>13.2f}x "
              f"{peak['sciattr']:>12.0f} {peak['captum']:>11.0f} {peak['floor']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
