"""Text attribution reports for the shipped models, and the command-line entry points.

``sciattr text "..." --model NAME --target T`` calls :func:`run_text_cli`; a file of texts goes
through :func:`run_text_batch_cli`. Model names: ``"lstm-lm"`` (target: the next word; default
the predicted one; score: its probability) and ``"topic-classifier"`` (target: a topic name or
index; default the predicted topic; score: its logit).

Batch files hold one text per line; a tab followed by a target (``text<TAB>next word`` or
``text<TAB>topic``) overrides the common target for that line. Bad lines are reported, in the
HTML page, the JSON file and on the terminal, and the others processed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sciattr.errors import InputError
from sciattr.text.render import terminal_tokens, write_html
from sciattr.text.tokens import TokenAttribution

__all__ = ["DEFAULT_SCORES", "MODEL_NAMES", "attribute_texts", "run_text_batch_cli", "run_text_cli"]

MODEL_NAMES = ("lstm-lm", "topic-classifier")
DEFAULT_SCORES = {"lstm-lm": "prob", "topic-classifier": "logit"}
_PREDICTED = ("", "predicted", "none")


def _target_or_none(target):
    if target is None or (isinstance(target, str) and target.strip().lower() in _PREDICTED):
        return None
    return target


def attribute_texts(texts: Sequence[str], model_name: str, targets: Sequence | None = None, *,
                    score: str | None = None, steps: int = 64, truncate: bool = False,
                    text_model=None) -> TokenAttribution:
    """Integrated gradients of a shipped model for a batch of texts (bad rows in ``errors``).

    ``targets[i]``: the next word (``"lstm-lm"``) or topic (``"topic-classifier"``) of text
    ``i``; ``None`` or ``"predicted"`` for the model's own prediction. ``text_model``: an already
    loaded :class:`sciattr.zoo.text_models.TextModel` (default: loaded by name).
    """
    if model_name not in MODEL_NAMES:
        raise InputError(f"expected a model name in {list(MODEL_NAMES)}; got {model_name!r}")
    if text_model is None:
        from sciattr.zoo.text_models import load_text_model

        text_model = load_text_model(model_name)
    targets = None if targets is None else [_target_or_none(t) for t in targets]
    score = score or DEFAULT_SCORES[model_name]
    options = {"score": score, "steps": steps, "truncate": truncate, "max_length": text_model.max_length}
    if model_name == "lstm-lm":
        from sciattr.text.lstm_lm import lm_attribution

        return lm_attribution(text_model.model, text_model.vocab, texts, targets, **options)
    from sciattr.text.classifier import classifier_attribution

    return classifier_attribution(text_model.model, text_model.vocab, texts, targets, **options)


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
    for err in result.errors:
        print(f"row {err['row']}  error: {err['message']}", file=stream)


def run_text_cli(text: str, model_name: str, target=None, out_path="attributions.html", *,
                 score: str | None = None, steps: int = 64, truncate: bool = False,
                 stream: TextIO | None = None) -> list[Path]:
    """Attribute one text, write an HTML heatmap to ``out_path``, print a coloured table.

    Raises :class:`~sciattr.errors.InputError` when the text cannot be attributed (empty, too
    long without ``truncate``, unknown topic). Returns ``[html_path]``.
    """
    result = attribute_texts([text], model_name, [target], score=score, steps=steps, truncate=truncate)
    print_attributions(result, stream)
    title = f"{model_name}: integrated gradients"
    return [write_html(result, out_path, title=title)]


def read_batch_file(path) -> tuple[list[str], list[str | None]]:
    """Texts and per-line targets (after a tab; ``None`` where absent) of a batch file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a text file with one text per line; got {str(path)!r} (not a file)")
    texts, targets = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, target = line.partition("\t")
        texts.append(text)
        targets.append(target.strip() or None)
    if not texts:
        raise InputError(f"expected at least one line of text in {str(path)!r}; got an empty file")
    return texts, targets


def run_text_batch_cli(input_file, model_name: str, target=None, out_dir=".", *, score: str | None = None,
                       steps: int = 64, truncate: bool = False, stream: TextIO | None = None) -> list[Path]:
    """Attribute every line of ``input_file``; write ``attributions.html`` and ``attributions.json``
    to ``out_dir`` and print a coloured table. Bad lines are reported, the rest processed.

    Returns the paths written.
    """
    texts, line_targets = read_batch_file(input_file)
    targets = [t if t is not None else target for t in line_targets]
    result = attribute_texts(texts, model_name, targets, score=score, steps=steps, truncate=truncate)
    print_attributions(result, stream)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = write_html(result, out_dir / "attributions.html", title=f"{model_name}: integrated gradients")
    json_path = out_dir / "attributions.json"
    payload = {"model": model_name, "method": result.method, "rule": result.rule,
               "steps": int(result.steps.max()), "score": result.target,
               "rows": result.records(), "errors": result.errors}
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    return [html_path, json_path]
