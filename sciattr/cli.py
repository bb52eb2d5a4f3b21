"""Command line: ``sciattr demo``, ``molecule``, ``text``, ``summarize``, ``merge``, ``models``.

``sciattr molecule --file`` and ``sciattr text --file`` go through the streaming runner
(:mod:`sciattr.run`): Parquet (or CSV) output written as it goes, a progress bar, resume,
sharding and a Ray backend. A single SMILES or text gets an HTML report (never overwriting an
existing file unless ``--force``). Every attributing command takes ``--steps``, ``--rule``,
``--tolerance``, ``--max-steps`` and ``--baselines``, which build one :class:`sciattr.Settings`.

Errors are one line on stderr and exit code 2. Everything runs offline (``HF_HUB_OFFLINE=1`` is
set unless the caller set it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sciattr.errors import InputError, SciAttrError

DEFAULT_SMILES = "CC(=O)Oc1ccccc1C(=O)O"  # aspirin
DEFAULT_CHEM_MODEL = "w2n2-benzene"
TEXT_MODELS = ("topic-classifier", "lstm-lm", "g2p")


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


# ---------------------------------------------------------------------------------------- helpers
def _settings(args):
    """The :class:`Settings` of the ``--steps/--rule/--tolerance/--max-steps/--baselines`` flags."""
    from sciattr.settings import Settings

    options = {}
    if args.steps is not None:
        options["steps"] = None if args.steps == "auto" else _positive_int(args.steps, "--steps")
    if args.rule is not None:
        options["rule"] = args.rule
    if args.tolerance is not None:
        options["tolerance"] = args.tolerance
    if args.max_steps is not None:
        options["max_steps"] = args.max_steps
    if args.baselines is not None:
        options["baselines"] = _number_or_name(args.baselines)
    if getattr(args, "reference", None) is not None:
        if args.baselines is not None:
            raise InputError(f"expected --baselines or --reference, not both; got --baselines {args.baselines!r} "
                             f"and --reference {args.reference!r}")
        options["baselines"] = _reference_baselines(args.reference, args.reference_k)
    return Settings(**options)


def _reference_baselines(path: str, k: int):
    """Expected gradients over the molecules of a file (any format ``--file`` reads, its
    ``smiles`` column, read as the runner reads it): :class:`~sciattr.chem.ReferenceBaselines`
    with ``k`` baselines per molecule. Rows that cannot be read are named on stderr and left out
    (molecules the featurizer refuses are named by ReferenceBaselines); none readable is an error."""
    from sciattr.chem import ReferenceBaselines
    from sciattr.run.domains import molecule_items
    from sciattr.run.readers import read_records

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"expected --reference-k to be a positive integer; got {k!r}")
    records = list(read_records(path, kind="molecule"))
    items, _, failed = molecule_items(records)
    molecules, bad = [], []
    for position, (record, item) in enumerate(zip(records, items)):
        reason = record.error or failed.get(position)
        if reason is None and item == "":
            reason = "an empty molecule"
        if reason is None:
            molecules.append(item)
        else:
            bad.append((record.row, reason))
    for row, reason in bad[:5]:
        print(f"reference row {row}: {reason}; left out", file=sys.stderr)
    if len(bad) > 5:
        print(f"... {len(bad) - 5} more reference rows left out", file=sys.stderr)
    if not molecules:
        raise InputError(f"expected at least one reference molecule in {path!r}; got none of {len(bad)} rows")
    return ReferenceBaselines(molecules, k=k)


def _positive_int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"expected {flag} to be a positive integer or 'auto'; got {text!r}") from None


def _number_or_name(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _one_source(value, file, what: str) -> None:
    if value is None and file is None:
        raise SciAttrError(f"expected {what} or --file; got neither")
    if value is not None and file is not None:
        raise SciAttrError(f"expected {what} or --file, not both; got {value!r} and --file {file}")


def _check_report_path(out: Path, force: bool) -> None:
    """Refuse, before any work, a report path that exists (without ``--force``) or cannot be written."""
    if out.is_dir():
        raise InputError(f"expected a report file path; got the folder {os.fspath(out)!r}")
    if out.exists() and not force:
        raise InputError(f"expected a new report path; {os.fspath(out)!r} exists (pass --force to overwrite it)")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".sciattr-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"expected a writable report path; cannot write {os.fspath(out)!r} "
                         f"({exc.strerror or exc})") from None


def _run_file(args, kind: str, model, **extra) -> int:
    from sciattr.run import explain_file

    summary = explain_file(
        args.file, model=model, kind=kind, out_dir=args.out_dir, column=args.column, id_column=args.id_column,
        settings=_settings(args), target=args.target, format=args.format, pictures=args.pictures,
        progress=not args.quiet, shard=args.shard, engine=args.engine, workers=args.workers,
        num_gpus_per_worker=args.num_gpus_per_worker, overwrite=args.overwrite,
        resume=True if args.resume else None, **({} if args.part_rows is None else {"part_rows": args.part_rows}),
        **extra)
    if not args.quiet:
        print(summary)
    if summary.interrupted:
        return 130
    if summary.rows and not summary.ok and not summary.skipped:
        reasons = "; ".join(f"row {r}: {e}" for r, e in _failed_rows(args.out_dir, 5))
        raise InputError(f"no row could be attributed: {reasons}{'; ...' if summary.errors > 5 else ''} "
                         f"({summary.rows:,} rows; they are in {os.fspath(args.out_dir)})")
    if summary.errors:
        for row, error in _failed_rows(args.out_dir, 5):
            print(f"row {row}  error: {error}", file=sys.stderr)
        print(f"{summary.errors:,} of {summary.rows:,} rows failed; their reasons are in the 'error' column of "
              f"{os.fspath(Path(args.out_dir) / 'rows')}", file=sys.stderr)
    return 0


def _failed_rows(out_dir, limit: int) -> list[tuple[int, str]]:
    """The first ``limit`` error rows of a run folder: ``(row, reason)``."""
    from sciattr.run import read_table

    table = read_table(out_dir, "rows", ["row", "status", "error"]).to_pydict()
    bad = sorted((r, e) for r, s, e in zip(table["row"], table["status"], table["error"]) if s != "ok")
    return bad[:limit]


# ---------------------------------------------------------------------------------------- commands
def _cmd_demo(args) -> int:
    out = Path(args.out) / "molecule.html"
    _check_report_path(out, args.force)
    for p in _single_molecule(DEFAULT_SMILES, DEFAULT_CHEM_MODEL, args.target, out, _settings(args)):
        print(f"wrote {p}")
    return 0


def _cmd_engine_demo(args) -> int:
    for p in _engine_demo(Path(args.out)):
        print(f"wrote {p}")
    return 0


def _cmd_molecule(args) -> int:
    _one_source(args.smiles, args.file, "a SMILES string")
    if args.file:
        return _run_file(args, "molecule", args.model)
    out = Path(args.out)
    _check_report_path(out, args.force)
    for p in _single_molecule(args.smiles, args.model, args.target, out, _settings(args)):
        print(f"wrote {p}")
    return 0


def _single_molecule(smiles: str, model_name: str, target, out: Path, settings) -> list[Path]:
    """One SMILES: the HTML report, a PNG beside it, and the terminal table (with the probability
    of a classifier's logit)."""
    import math

    from sciattr.chem import explain_molecules
    from sciattr.chem.draw import draw_attribution
    from sciattr.chem.featurize import featurize_batch
    from sciattr.chem.report import molecule_report, terminal_table
    from sciattr.run.domains import _column_values, result_column
    from sciattr.zoo import load_featurizer, load_model

    network = load_model(model_name)
    featurizer = load_featurizer(network)
    name = network.card.get("name", str(model_name))
    _, _, errors = featurize_batch(featurizer, [smiles])
    if errors:  # the molecule's own reason (RDKit's message where it gave one), before any attribution
        raise InputError(errors[0]["message"])
    result = explain_molecules(network, [smiles], featurizer=featurizer, target=target, settings=settings)
    if result.errors:
        raise InputError(result.errors[0]["message"])
    result.meta["model"] = name
    chosen = result_column(result, target)
    report = molecule_report(result, out, target=chosen, model_name=name)
    draw_attribution(result, 0, out.with_suffix(".png"), target=chosen, title=name)
    print(terminal_table(result, 0, target=chosen, title=f"{name}: {smiles}"))
    kind = str(network.card.get("task", {}).get("kind", ""))
    if "classification" in kind and "logit" in kind:
        logit = _column_values(result.forward_x, chosen)[0]
        print(f"probability = sigmoid(F(x)) = {1 / (1 + math.exp(-logit)):.4f}")
    return [report, out.with_suffix(".png")]


def _cmd_text(args) -> int:
    model = args.model
    _one_source(args.text, args.file, "a text")
    if model not in TEXT_MODELS and not Path(model).is_dir():
        raise InputError(f"expected a text model among {list(TEXT_MODELS)} or a local Hugging Face model folder; "
                         f"got {model!r}")
    if args.file:
        return _run_file(args, "text", model, truncate=args.truncate)
    out = Path(args.out)
    _check_report_path(out, args.force)
    settings = _settings(args)
    if model == "g2p":
        from sciattr.text import seq2seq

        paths = seq2seq.run_g2p_cli(args.text, out, target=args.target, truncate=args.truncate, settings=settings)
    elif Path(model).is_dir():
        from sciattr.text import hf_report

        paths = hf_report.run_hf_cli(args.text, Path(model), args.target, out, truncation=args.truncate,
                                     settings=settings)
    else:
        from sciattr.text import report
        from sciattr.zoo.text_models import load_text_model

        paths = report.run_text_cli(args.text, model, args.target, out, truncate=args.truncate,
                                    text_model=load_text_model(model), settings=settings)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_summarize(args) -> int:
    from sciattr.run.summarize import write_summary

    units = tuple(u for u in args.units.split(",") if u) if args.units else ()
    summary, paths = write_summary(args.run_dir, units=units, min_count=args.min_count, top=args.top,
                                   active_threshold=args.active_threshold)
    print(summary)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _cmd_merge(args) -> int:
    from sciattr.run import merge

    table = merge(args.run_dir, args.table, as_pandas=False)
    if args.out is None:
        print(table.to_pandas().to_string(max_rows=40))
        return 0
    out = Path(args.out)
    _check_report_path(out, args.force)
    if out.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif out.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
    else:
        raise InputError(f"expected --out ending in .parquet or .csv; got {os.fspath(out)!r}")
    print(f"wrote {out} ({table.num_rows:,} rows)")
    return 0


def _cmd_models(args) -> int:
    from sciattr.zoo import available_models, ensemble_seeds, model_card

    print(f"{'name':<26} {'task':<34} {'architecture':<22} metrics")
    for name in available_models():
        card = model_card(name)
        task = card.get("task", {})
        test = card.get("test", {})
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in test.items() if isinstance(v, float))
        seeds = ensemble_seeds(card)
        architecture = card.get("architecture", "") + (f" x{len(seeds)}" if seeds else "")
        print(f"{name:<26} {task.get('name', '') + ' (' + _short_kind(task.get('kind', '')) + ')':<34} "
              f"{architecture:<22} {metrics}")
    import json

    text_dir = Path(__file__).resolve().parent / "zoo" / "text"
    for name, stem in (("topic-classifier", "topic_classifier"), ("lstm-lm", "lstm_lm")):
        path = text_dir / f"{stem}_card.json"
        if not path.is_file():
            continue
        card = json.loads(path.read_text())
        keys = ("test_accuracy_articles", "test_accuracy_snippets", "test_perplexity", "valid_perplexity")
        metrics = ", ".join(f"{k} {card[k]:.3g}" for k in keys if isinstance(card.get(k), (int, float)))
        task = "topic (5 classes)" if name == "topic-classifier" else "next word"
        print(f"{name:<26} {task:<34} {card.get('model', ''):<22} {metrics}")
    print(f"{'g2p':<26} {'grapheme -> phoneme':<34} {'GRU encoder-decoder':<22} from the g2p-en package's weights")
    return 0


def _short_kind(kind: str) -> str:
    return "classifier" if "classification" in kind else "regression" if "regression" in kind else kind[:12]


def _target(value: str | None):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------- parser
class _OldSpelling(argparse.Action):
    """An old spelling of a flag: an error naming the new one (no silent alias)."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        raise InputError(f"unknown option {option_string!r}: use {self.new!r}")


def _settings_flags(parser) -> None:
    group = parser.add_argument_group("attribution settings (sciattr.Settings)")
    group.add_argument("--steps", default=None, help="path nodes, or 'auto' (default: adaptive)")
    group.add_argument("--rule", default=None, help="quadrature rule (default trapezoid)")
    group.add_argument("--tolerance", type=float, default=None, help="completeness tolerance (default 0.05)")
    group.add_argument("--max-steps", type=int, default=None, help="most steps adaptive refinement may reach")
    group.add_argument("--baselines", default=None, help="baseline name or number (default: the domain's)")
    for old, new in (("--baseline", "--baselines"), ("--n-steps", "--steps"), ("--task", "--target")):
        group.add_argument(old, dest=f"_old{old.replace('-', '_')}", default=None, help=argparse.SUPPRESS,
                           action=_OldSpelling, new=new)


def _file_flags(parser, default_out: str, picture_help: bool) -> None:
    group = parser.add_argument_group("files (the streaming runner)")
    group.add_argument("--out-dir", default=default_out, help="run folder for --file (default: %(default)s)")
    group.add_argument("--column", default=None, help="input column (default: 'smiles' / 'text')")
    group.add_argument("--id-column", default=None, help="id column (default: 'id' or 'name'; SDF: the title)")
    group.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    if picture_help:
        group.add_argument("--pictures", default="none", help="none | top:N | all (default none)")
    else:
        group.set_defaults(pictures="none")
    group.add_argument("--quiet", action="store_true", help="no progress output")
    group.add_argument("--shard", default=None, help="i/n: this process's share (default: RANK/WORLD_SIZE)")
    group.add_argument("--engine", default="local", choices=("local", "ray"))
    group.add_argument("--workers", type=int, default=2, help="Ray actors (default 2)")
    group.add_argument("--num-gpus-per-worker", type=float, default=0)
    group.add_argument("--part-rows", type=int, default=None,
                       help="input rows per batch and part file (default 1024)")
    group.add_argument("--overwrite", action="store_true", help="discard a different run in --out-dir")
    group.add_argument("--resume", action="store_true", help="require a run to continue in --out-dir "
                       "(a matching run is continued anyway)")


class _Parser(argparse.ArgumentParser):
    """Subcommand parsers: flags spelled out in full (``--baseline`` is not ``--baselines``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from sciattr import __version__

    parser = argparse.ArgumentParser(prog="sciattr", description="Integrated gradients for molecules and text.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"sciattr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help=f"explain {DEFAULT_SMILES} with the shipped {DEFAULT_CHEM_MODEL} model")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.add_argument("--target", type=_target, default=None)
    demo.add_argument("--force", action="store_true", help="overwrite an existing report")
    _settings_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    eng = sub.add_parser("engine-demo", help="the papers' toy networks on the bare engine")
    eng.add_argument("--out", default="reports")
    eng.set_defaults(func=_cmd_engine_demo)

    mol = sub.add_parser("molecule", help="atom and bond attributions for a SMILES (or a file of molecules)")
    mol.add_argument("smiles", nargs="?", help="a SMILES string")
    mol.add_argument("--file", help="CSV, TSV, .smi, SDF (.sdf.gz), Parquet or text file of molecules")
    mol.add_argument("--model", default=DEFAULT_CHEM_MODEL, help="a shipped model name (sciattr models) or a card path")
    mol.add_argument("--target", type=_target, default=None, help="output index (task) to explain")
    mol.add_argument("--out", default="reports/molecule.html", help="HTML report path (single molecule)")
    mol.add_argument("--force", action="store_true", help="overwrite an existing report")
    _settings_flags(mol)
    group = mol.add_argument_group("expected gradients")
    group.add_argument("--reference", default=None,
                       help="file of reference molecules (as --file): attributions averaged over baselines drawn "
                            "from their atoms and pairs (ReferenceBaselines), instead of --baselines")
    group.add_argument("--reference-k", type=int, default=16, help="baselines per molecule (default %(default)s)")
    _file_flags(mol, "reports/molecules", True)
    mol.set_defaults(func=_cmd_molecule)

    txt = sub.add_parser("text", help="token attributions for a text (or a file of texts)")
    txt.add_argument("text", nargs="?", help="the input text")
    txt.add_argument("--file", help="text file (one input per line, optional TAB target), CSV/TSV or Parquet")
    txt.add_argument("--model", default="topic-classifier",
                     help="'topic-classifier', 'lstm-lm', 'g2p', or a local Hugging Face model folder")
    txt.add_argument("--target", type=_target, default=None,
                     help="class index/name, next word, or output (g2p: phonemes, e.g. 'K AE1 T')")
    txt.add_argument("--truncate", action="store_true",
                     help="keep the first tokens of a text longer than the model's maximum (noted) instead of an error")
    txt.add_argument("--out", default="reports/text.html")
    txt.add_argument("--force", action="store_true", help="overwrite an existing report")
    _settings_flags(txt)
    _file_flags(txt, "reports/text", False)
    txt.set_defaults(func=_cmd_text)

    summ = sub.add_parser("summarize", help="library-level summaries of a run folder (also summary.html)")
    summ.add_argument("run_dir")
    summ.add_argument("--units", default="functional_groups,brics",
                      help="comma-separated: functional_groups, brics, ring_systems (default: %(default)s)")
    summ.add_argument("--min-count", type=int, default=3)
    summ.add_argument("--top", type=int, default=20)
    summ.add_argument("--active-threshold", type=float, default=None,
                      help="rank substructures over rows predicted at least this")
    summ.set_defaults(func=_cmd_summarize)

    mrg = sub.add_parser("merge", help="a run folder (any number of shards) as one table")
    mrg.add_argument("run_dir")
    mrg.add_argument("--table", default="rows", help="rows, atoms, bonds or tokens")
    mrg.add_argument("--out", default=None, help=".parquet or .csv file (default: print)")
    mrg.add_argument("--force", action="store_true")
    mrg.set_defaults(func=_cmd_merge)

    models = sub.add_parser("models", help="the shipped models with their task, architecture and test metrics")
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SciAttrError as exc:
        print(f"sciattr: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sciattr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, as shell tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
