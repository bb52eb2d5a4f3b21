"""Text attribution reports for the shipped models, and the command-line entry points.

``sciattr text "..." --model NAME --target T`` calls :func:`run_text_cli`; a file of texts goes
through :func:`run_text_batch_cli`. Model names: ``"lstm-lm"`` (target: the next word; default
the predicted one; score: its probability) and ``"topic-classifier"`` (target: a topic name or
index; default the predicted topic; score: its logit).

Batch files hold one text per line; a tab followed by a target (``text<TAB>next word`` or
``text<TAB>topic``) overrides the common target for that line. Bad lines are reported, in the
HTML page, the JSON and CSV files and on the terminal, and the others processed.

Every batch (these models, ``g2p`` and local Hugging Face folders) writes ``attributions.csv``
(:data:`BATCH_COLUMNS`, one line per input line, bad lines with ``status=error`` and the reason)
and ``attributions.json`` (the same rows with full-precision token attributions, and the errors)
with :func:`write_batch_table`; the models with one report per input (``g2p``, Hugging Face
folders) go through :func:`write_batch_reports`, which adds ``reports/row<N>.html`` and
``index.html``.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch

from sciattr.errors import InputError
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import as_list
from sciattr.text.corpus import read_text_file
from sciattr.text.render import terminal_tokens, write_html
from sciattr.text.tokens import TokenAttribution

__all__ = ["BATCH_COLUMNS", "DEFAULT_SCORES", "MODEL_NAMES", "attribute_texts", "read_batch", "run_text_batch_cli",
           "run_text_cli", "write_batch_reports", "write_batch_table"]

MODEL_NAMES = ("lstm-lm", "topic-classifier")
DEFAULT_SCORES = {"lstm-lm": "prob", "topic-classifier": "logit"}
_PREDICTED = ("", "predicted", "none")

#: Columns of ``attributions.csv``. ``prediction`` and ``baseline_score`` are F(x) and F(x'), the
#: score of ``target``; ``gap`` is sum(attributions) - (F(x) - F(x')) and ``relative_gap`` its size
#: relative to |F(x) - F(x')|. For several output tokens (``g2p``, encoder--decoders) the scores
#: are log-probabilities summed over the output tokens (the log-probability of the whole output),
#: ``tokens`` holds each input token's attribution to that sum and ``relative_gap`` is the largest
#: over the output tokens. ``tokens``: ``token:+attribution`` pairs (3 significant digits).
BATCH_COLUMNS = ("row", "input", "status", "target", "prediction", "baseline_score", "gap", "relative_gap", "steps",
                 "tokens", "report", "notes", "error")


def _target_or_none(target):
    if target is None or (isinstance(target, str) and target.strip().lower() in _PREDICTED):
        return None
    return target


def attribute_texts(texts, model_name: str, target=None, *, score: str | None = None, truncate: bool = False,
                    text_model=None, settings: Settings | None = None, **options) -> TokenAttribution:
    """Integrated gradients of a shipped model for a batch of texts (bad rows in ``errors``).

    ``target``: the next word (``"lstm-lm"``) or topic (``"topic-classifier"``), one for every
    text or one per text; ``None`` or ``"predicted"`` for the model's own prediction.
    ``text_model``: the loaded model, ``sciattr.zoo.load_text_model(model_name)``.
    ``settings``/``**options``: a :class:`~sciattr.settings.Settings` and/or its fields.
    """
    if model_name not in MODEL_NAMES:
        raise InputError(f"expected a model name in {list(MODEL_NAMES)}; got {model_name!r}")
    if text_model is None:
        raise InputError(f"expected text_model=, the loaded model (sciattr.zoo.load_text_model({model_name!r})); "
                         "got None")
    if target is not None and not isinstance(target, (str, int)):
        target = [_target_or_none(t) for t in as_list(target, "targets", scalar=None)]
    else:
        target = _target_or_none(target)
    score = score or DEFAULT_SCORES[model_name]
    settings = resolve_settings(settings, options)
    kwargs = {"score": score, "truncate": truncate, "max_length": text_model.max_length, "settings": settings}
    if model_name == "lstm-lm":
        from sciattr.text.lstm_lm import lm_attribution

        return lm_attribution(text_model.model, text_model.vocab, texts, target, **kwargs)
    from sciattr.text.classifier import classifier_attribution

    return classifier_attribution(text_model.model, text_model.vocab, texts, target, **kwargs)


def print_attributions(result: TokenAttribution, stream: TextIO | None = None) -> None:
    """Coloured tokens (plain when ``stream`` is not a terminal), scores and notes of every row."""
    stream = sys.stdout if stream is None else stream
    for i in range(result.n_examples):
        label = result.target_labels[i] if i < len(result.target_labels) else result.target
        print(f"row {result.rows[i]}  target {label}  F(x)={float(result.forward_x[i]):.4g}  "
              f"F(baseline)={float(result.forward_baseline[i]):.4g}  "
              f"sum={result.total(i):.4g}  relative gap={float(result.relative_gap[i]):.1e}", file=stream)
        print("  " + terminal_tokens(result.to_tokens(i), stream=stream), file=stream)
        for note in result.notes[i]:
            print(f"  note: {note}", file=stream)
    errors_to = sys.stderr if stream is sys.stdout else stream
    for err in result.errors:
        print(f"row {err['row']}  error: {err['message']}", file=errors_to)


def run_text_cli(text: str, model_name: str, target=None, out_path="attributions.html", *,
                 score: str | None = None, truncate: bool = False, stream: TextIO | None = None,
                 text_model=None, settings: Settings | None = None, **options) -> list[Path]:
    """Attribute one text, write an HTML heatmap to ``out_path``, print a coloured table.

    ``text_model``: the loaded model (``sciattr.zoo.load_text_model(model_name)``).
    Raises :class:`~sciattr.errors.InputError` when the text cannot be attributed (empty, too
    long without ``truncate``, unknown topic). Returns ``[html_path]``.
    """
    result = attribute_texts([text], model_name, [target], score=score, truncate=truncate, text_model=text_model,
                             settings=settings, **options)
    print_attributions(result, stream)
    title = f"{model_name}: integrated gradients"
    return [write_html(result, out_path, title=title)]


def read_batch_file(path) -> tuple[list[str], list[str | None]]:
    """Texts and per-line targets (after a tab; ``None`` where absent) of a batch file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a text file with one text per line; got {str(path)!r} (not a file)")
    texts, targets = [], []
    for line in read_text_file(path, "a text file with one text per line").splitlines():
        text, _, target = line.partition("\t")
        texts.append(text)
        targets.append(target.strip() or None)
    if not texts:
        raise InputError(f"expected at least one line of text in {str(path)!r}; got an empty file")
    return texts, targets


def read_batch(path, target=None) -> tuple[list[str], list]:
    """Texts of a batch file and the target of each line: its own (after a tab), else ``target``;
    ``None`` (also for ``"predicted"``) takes the model's prediction."""
    texts, line_targets = read_batch_file(path)
    return texts, [_target_or_none(t if t is not None else target) for t in line_targets]


def run_text_batch_cli(input_file, model_name: str, target=None, out_dir=".", *, score: str | None = None,
                       truncate: bool = False, stream: TextIO | None = None, text_model=None,
                       settings: Settings | None = None, **options) -> list[Path]:
    """Attribute every line of ``input_file``; write ``attributions.html``, ``attributions.json`` and
    ``attributions.csv`` to ``out_dir`` and print a coloured table. Bad lines are reported, the rest
    processed. ``text_model``: the loaded model (``sciattr.zoo.load_text_model(model_name)``).

    Returns the paths written.
    """
    texts, targets = read_batch(input_file, target)
    result = attribute_texts(texts, model_name, targets, score=score, truncate=truncate, text_model=text_model,
                             settings=settings, **options)
    print_attributions(result, stream)
    out_dir = Path(out_dir)
    html_path = write_html(result, out_dir / "attributions.html", title=f"{model_name}: integrated gradients")
    return [html_path] + write_batch_table([result], texts, out_dir, model_name)


# ---------------------------------------------------------------------------------------- batch tables
def _one_example(result: TokenAttribution, example: int) -> TokenAttribution:
    """Example ``example`` of a batch result as a result of its own (no bad rows, no path record).

    Its views (tokens, matrices, reports) then cost one example's work instead of the batch's.
    """
    n = result.n_examples

    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == n:
            return value[example:example + 1]
        if isinstance(value, list) and len(value) == n:
            return value[example:example + 1]
        return value

    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.init}
    fields = {name: value if name == "meta" else pick(value) for name, value in fields.items()}
    for name in ("attributions", "inputs", "baselines"):
        fields[name] = {key: pick(value) for key, value in fields[name].items()}
    fields.update(errors=[], path=None)
    return type(result)(**fields)


def _summary(one: TokenAttribution) -> dict:
    """The JSON record of a one-example result: its ``records()`` entry, with the scores summed over
    the output tokens for several targets, the completeness gap and the steps (and the matrix)."""
    record = one.records()[0]
    outputs = range(one.forward_x.shape[1]) if one.multi_target else [0]
    attributions = [sum(values) for values in zip(*(one.example_scores(0, "sum", t) for t in outputs))]
    fx, fb = float(one.forward_x.sum()), float(one.forward_baseline.sum())
    record.update(attributions=attributions, forward_x=fx, forward_baseline=fb, gap=sum(attributions) - (fx - fb),
                  relative_gap=float(one.relative_gap.max()), steps=int(one.steps.max()))
    matrix, output_tokens = getattr(one, "matrix", None), getattr(one, "output_tokens", None)
    if one.multi_target and output_tokens is not None and matrix is not None:
        record.update(output_tokens=output_tokens[0], matrix=matrix(0).tolist())
    return record


def _table_line(record: dict, text: str) -> dict:
    tokens = " ".join(f"{tok}:{value:+.3g}" for tok, value in zip(record["tokens"], record["attributions"]))
    return {"row": record["row"], "input": text, "status": "ok", "target": record["target"],
            "prediction": record["forward_x"], "baseline_score": record["forward_baseline"], "gap": record["gap"],
            "relative_gap": record["relative_gap"], "steps": record["steps"], "tokens": tokens, "report": record["report"],
            "notes": "; ".join(record["notes"]), "error": ""}


def write_batch_table(results: Sequence[TokenAttribution], inputs: Sequence[str], out_dir, model_name: str, *,
                      errors: Sequence[dict] = (), reports: dict | None = None) -> list[Path]:
    """Write ``attributions.json`` and ``attributions.csv`` (:data:`BATCH_COLUMNS`) to ``out_dir``.

    ``results``: the attributions of the usable lines (their ``rows`` index ``inputs``; several
    results when the lines went through several calls); ``errors``: bad lines besides those in
    ``results[k].errors``; ``reports``: line -> path of its report (relative to ``out_dir``).
    Every line of ``inputs`` gets one CSV line, ``status=error`` with the reason for bad lines.
    Returns ``[json_path, csv_path]``.
    """
    return list(_write_batch(results, inputs, out_dir, model_name, errors, reports or {})[:2])


def _write_batch(results, inputs, out_dir, model_name, errors, reports) -> tuple[Path, Path, list[dict]]:
    errors = sorted([e for res in results for e in res.errors] + list(errors), key=lambda e: e["row"])
    missing = "no attribution was computed for this line"
    table = [{"row": row, "input": text, "status": "error", "error": missing} for row, text in enumerate(inputs)]
    records = []
    for res in results:
        for i in range(res.n_examples):
            record = _summary(_one_example(res, i))
            record["report"] = reports.get(record["row"], "")
            records.append(record)
            table[record["row"]] = _table_line(record, inputs[record["row"]])
    for error in errors:
        table[error["row"]].update(status="error", error=error["message"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_name, "method": results[0].method, "rule": results[0].rule,
               "steps": max(int(res.steps.max()) for res in results), "score": results[0].target,
               "rows": sorted(records, key=lambda r: r["row"]), "errors": errors}
    json_path = out_dir / "attributions.json"
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    csv_path = out_dir / "attributions.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(BATCH_COLUMNS))
        writer.writeheader()
        writer.writerows(table)
    return json_path, csv_path, table


def write_batch_reports(results: Sequence[TokenAttribution], inputs: Sequence[str], out_dir, model_name: str,
                        write_report: Callable[[Any, int, Path], list[Path]], *,
                        errors: Sequence[dict] = (), stream: TextIO | None = None) -> list[Path]:
    """A batch with one report per usable line: ``reports/row<N>.html`` written by
    ``write_report(one_example_result, line, path)``, then :func:`write_batch_table` and
    ``index.html`` (every line: a link to its report, or its error). Prints one line per usable
    line to ``stream`` (default stdout) and every bad line to stderr.

    Returns ``[index.html, attributions.json, attributions.csv, reports...]``.
    """
    out_dir = Path(out_dir)
    reports, written = {}, []
    examples = sorted(((row, res, i) for res in results for i, row in enumerate(res.rows)), key=lambda e: e[0])
    for row, result, i in examples:
        paths = write_report(_one_example(result, i), row, out_dir / "reports" / f"row{row}.html")
        reports[row] = paths[0].relative_to(out_dir).as_posix()
        written += paths
    json_path, csv_path, table = _write_batch(results, inputs, out_dir, model_name, errors, reports)
    index = _write_index(table, out_dir / "index.html", f"{model_name}: integrated gradients")
    stream = sys.stdout if stream is None else stream
    for line in table:
        if line["status"] == "ok":
            print(f"row {line['row']}  target {line['target']}  F(x)={line['prediction']:.4g}  "
                  f"relative gap={line['relative_gap']:.1e}  {line['report']}", file=stream)
        else:
            print(f"row {line['row']}  error: {line['error']}", file=sys.stderr)
    return [index, json_path, csv_path] + written


def _write_index(table: list[dict], path: Path, title: str) -> Path:
    """One table line per input line: its target, score and gap with a link to its report, or its error."""
    cells = []
    for line in table:
        if line["status"] == "ok":
            link = html.escape(line["report"])
            outcome = (f"<td>{html.escape(str(line['target']))}</td><td>{line['prediction']:.4g}</td>"
                       f"<td>{line['relative_gap']:.2e}</td><td><a href='{link}'>{link}</a></td>")
        else:
            outcome = f"<td class='error' colspan='4'>{html.escape(line['error'])}</td>"
        cells.append(f"<tr><td>{line['row']}</td><td class='l'>{html.escape(line['input'])}</td>{outcome}</tr>")
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:0.2em 0.6em;text-align:right}.l{text-align:left}.error{color:#b00;"
        f"text-align:left}}</style></head><body><h1>{html.escape(title)}</h1><table><tr><th>row</th>"
        "<th class='l'>input</th><th>target</th><th>score</th><th>relative gap</th><th>report</th></tr>"
        + "".join(cells) + "</table></body></html>\n", encoding="utf-8")
    return path
