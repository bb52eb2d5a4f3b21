"""Command line: ``sciattr demo``, ``sciattr molecule``, ``sciattr text``.

Everything runs offline (``HF_HUB_OFFLINE=1`` is set unless the caller set it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sciattr.errors import SciAttrError

DEFAULT_SMILES = "CC(=O)Oc1ccccc1C(=O)O"  # aspirin
DEFAULT_CHEM_MODEL = "w2n2-benzene"


def _engine_demo(out: Path) -> list[Path]:
    """Integrated gradients on the papers' appendix networks and a saturating model."""
    import torch

    from sciattr import gradient, integrated_gradients

    def f(x):  # Sundararajan et al., appendix: ReLU(ReLU(x1) - 1 - ReLU(x2))
        return torch.relu(torch.relu(x[:, 0]) - 1 - torch.relu(x[:, 1]))

    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    ig = integrated_gradients(f, x, steps=600, rule="riemann_middle")
    grad = gradient(f, x)
    lines = ["sciattr engine demo", "", "f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2)) at (3, 1), baseline (0, 0)",
             f"  IG        = {ig.attributions['input'][0].tolist()}  (analytic: [1.5, -0.5])",
             f"  gradient  = {grad.attributions['input'][0].tolist()}",
             f"  F(x) - F(x') = {ig.delta.item():.6f}; completeness gap = {ig.completeness_gap.item():.2e}", ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "engine_demo.txt"
    path.write_text("\n".join(lines) + ig.summary() + "\n")
    print("\n".join(lines))
    return [path]


def _cmd_demo(args) -> int:
    from sciattr.chem.report import run_molecule_cli

    paths = run_molecule_cli(DEFAULT_SMILES, DEFAULT_CHEM_MODEL, args.target, Path(args.out) / "molecule.html")
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_engine_demo(args) -> int:
    for p in _engine_demo(Path(args.out)):
        print(f"wrote {p}")
    return 0


def _one_source(value, file, what: str) -> None:
    if value is None and file is None:
        raise SciAttrError(f"expected {what} or --file; got neither")
    if value is not None and file is not None:
        raise SciAttrError(f"expected {what} or --file, not both; got {value!r} and --file {file}")


def _cmd_molecule(args) -> int:
    from sciattr.chem import report

    _one_source(args.smiles, args.file, "a SMILES string")
    if args.file:
        paths = report.run_batch_cli(Path(args.file), args.model, args.target, Path(args.out_dir))
    else:
        paths = report.run_molecule_cli(args.smiles, args.model, args.target, Path(args.out))
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_text(args) -> int:
    model = args.model
    _one_source(args.text, args.file, "a text")
    if model == "g2p":
        from sciattr.text import seq2seq

        if args.file:
            paths = seq2seq.run_g2p_batch_cli(Path(args.file), args.target, Path(args.out_dir))
        else:
            paths = seq2seq.run_g2p_cli(args.text, Path(args.out), target=args.target)
    elif Path(model).is_dir():
        from sciattr.text import hf_report

        if args.file:
            paths = hf_report.run_hf_batch_cli(Path(args.file), Path(model), args.target, Path(args.out_dir),
                                               truncation=args.truncate)
        else:
            paths = hf_report.run_hf_cli(args.text, Path(model), args.target, Path(args.out), truncation=args.truncate)
    else:
        from sciattr.text import report

        if args.file:
            paths = report.run_text_batch_cli(Path(args.file), model, args.target, Path(args.out_dir),
                                              truncate=args.truncate)
        else:
            paths = report.run_text_cli(args.text, model, args.target, Path(args.out), truncate=args.truncate)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _target(value: str | None):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciattr", description="Integrated gradients for molecules and text.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help=f"explain {DEFAULT_SMILES} with the shipped {DEFAULT_CHEM_MODEL} model")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.add_argument("--target", type=_target, default=None)
    demo.set_defaults(func=_cmd_demo)

    eng = sub.add_parser("engine-demo", help="the papers' toy networks on the bare engine")
    eng.add_argument("--out", default="reports")
    eng.set_defaults(func=_cmd_engine_demo)

    mol = sub.add_parser("molecule", help="atom and bond attributions for a SMILES (or a CSV/SDF file)")
    mol.add_argument("smiles", nargs="?", help="a SMILES string")
    mol.add_argument("--file", help="batch: a CSV (column 'smiles') or SDF file")
    mol.add_argument("--model", default=DEFAULT_CHEM_MODEL, help="a shipped model name or a weights path")
    mol.add_argument("--target", type=_target, default=None, help="output index (task) to explain")
    mol.add_argument("--out", default="reports/molecule.html", help="HTML report path (single molecule)")
    mol.add_argument("--out-dir", default="reports/molecules", help="output folder (batch)")
    mol.set_defaults(func=_cmd_molecule)

    txt = sub.add_parser("text", help="token attributions for a sentence (or a file of sentences)")
    txt.add_argument("text", nargs="?", help="the input text")
    txt.add_argument("--file", help="batch: a text file with one input per line")
    txt.add_argument("--model", default="topic-classifier",
                     help="'lstm-lm', 'topic-classifier', 'g2p', or a local Hugging Face model folder")
    txt.add_argument("--target", type=_target, default=None,
                     help="class index/name, next word, or output (g2p: phonemes, e.g. 'K AE1 T')")
    txt.add_argument("--truncate", action="store_true",
                     help="keep the first tokens of a text longer than the model's maximum (noted in the report) "
                          "instead of an error")
    txt.add_argument("--out", default="reports/text.html")
    txt.add_argument("--out-dir", default="reports/text")
    txt.set_defaults(func=_cmd_text)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SciAttrError as exc:
        print(f"sciattr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
