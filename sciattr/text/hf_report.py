"""HTML reports for local Hugging Face models: ``sciattr text "..." --model PATH`` (or ``--file``).

The model folder is read offline; its kind (sequence classifier, causal LM, encoder--decoder)
comes from its config. A tokenizer whose vocabulary is made of SMILES tokens (bracket atoms,
``>>``) gets SMILES pre-splitting, and the report adds the atom attributions of each side of the
reaction (drawn with RDKit when it is installed).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from sciattr.errors import InputError, SciAttrError, TargetError
from sciattr.settings import Settings, resolve_settings
from sciattr.text.huggingface import (
    _class_unit,
    _output_row,
    _token_unit,
    encode_texts,
    hf_integrated_gradients,
    load_local_model,
    max_positions,
    model_kind,
)

__all__ = ["run_hf_batch_cli", "run_hf_cli", "write_token_report"]

_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        ".tok{padding:0.1em 0.25em;border-radius:0.25em;line-height:2em;white-space:pre}"
        ".meta{color:#555}.note{color:#8a5a00}.error{color:#b00}table{border-collapse:collapse}"
        "td,th{padding:0.1em 0.6em;text-align:right}")


def run_hf_cli(text: str, model_path, target=None, out_path="reports/text.html", *, truncation: bool = False,
               settings: Settings | None = None, **options) -> list[Path]:
    """Attribute ``text`` with the model in ``model_path``; write an HTML report to ``out_path``.

    ``target``: the class index or label (classifier), the next token (causal LM) or the output
    text (encoder--decoder); ``None`` takes the model's prediction. ``truncation``: keep the first
    tokens of a text longer than the model's maximum (with a note) instead of an error.
    ``settings``/``**options``: a :class:`~sciattr.settings.Settings` and/or its fields. Returns
    the written paths.
    """
    cli = _CliModel(model_path, resolve_settings(settings, options), truncation)
    res = cli.attribute(text, cli.normalize_target(target))
    paths = cli.write_report(res, out_path, f"{Path(model_path).name}: {text}")
    print(res.summary())
    return paths


def run_hf_batch_cli(input_file, model_path, target=None, out_dir="reports/text", *, truncation: bool = False,
                     settings: Settings | None = None, **options) -> list[Path]:
    """Attribute every line of ``input_file`` (one text per line) with the model in ``model_path``.

    A line ``text<TAB>target`` attributes that target (class label, next token or output text),
    else ``target``, else the model's prediction. The usable lines go through at most two batched
    calls (lines with a target, lines with the prediction). Writes
    :func:`~sciattr.text.report.write_batch_reports`' files to ``out_dir``: ``attributions.csv``,
    ``attributions.json``, ``index.html`` and ``reports/row<N>.html`` (the report of
    :func:`run_hf_cli`) per usable line. Bad lines (empty, longer than the model's maximum, an
    unknown target) are reported in the table and on stderr, the rest processed; if none is
    usable, :class:`~sciattr.errors.InputError` lists them all. ``truncation`` as in
    :func:`run_hf_cli`. Returns the written paths.
    """
    from sciattr.text.report import read_batch, write_batch_reports

    texts, targets = read_batch(input_file, target)
    cli = _CliModel(model_path, resolve_settings(settings, options), truncation)
    targets = [cli.normalize_target(t) for t in targets]
    errors, groups = cli.usable_rows(texts, targets)
    results = []
    for rows in groups:
        res = cli.attribute([texts[r] for r in rows], None if targets[rows[0]] is None else [targets[r] for r in rows])
        res.rows = [rows[k] for k in res.rows]  # the call's rows are the group's; the table wants the file's
        res.errors = [{**e, "row": rows[e["row"]]} for e in res.errors]
        results.append(res)
    name = Path(model_path).name
    return write_batch_reports(results, texts, out_dir, str(model_path), lambda one, row, path: cli.write_report(
        one, path, f"{name}: {texts[row]}"), errors=errors)


class _CliModel:
    """A local model folder as the command line uses it: loaded offline, SMILES pre-splitting for
    SMILES classifiers, the report of its kind."""

    def __init__(self, model_path, settings: Settings, truncation: bool = False):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sciattr.text.smiles_tokens import is_smiles_vocabulary, split_smiles

        self.model, self.tokenizer = load_local_model(model_path)
        self.kind = model_kind(self.model)
        self.smiles = self.kind == "classifier" and is_smiles_vocabulary(self.tokenizer)
        self.split = split_smiles if self.smiles else None
        self.truncation = truncation
        self.options = {"settings": settings, "truncation": truncation}
        self.options.update({"split": self.split} if self.smiles else {})

    def attribute(self, texts, target):
        return hf_integrated_gradients(self.model, self.tokenizer, texts, target=target, **self.options)

    def write_report(self, res, out_path, title: str) -> list[Path]:
        if self.kind == "seq2seq":
            from sciattr.text.seq2seq import write_seq2seq_report

            return write_seq2seq_report(res, Path(out_path), title)
        return write_token_report(res, Path(out_path), title, smiles=self.smiles)

    def usable_rows(self, texts, targets) -> tuple[list[dict], list[list[int]]]:
        """Bad rows (text or target) and the good rows grouped by "has a target" / "predicted".

        Every text is tokenized as the attribution will tokenize it, so the groups hold only rows
        that encode; :class:`InputError` when no row is left.
        """
        batch = encode_texts(self.tokenizer, texts, max_length=max_positions(self.model), split=self.split,
                             truncation=self.truncation)
        errors = list(batch.errors)
        groups: dict = {}
        for row in batch.rows:
            try:
                self._check_target(targets[row])
            except SciAttrError as exc:
                errors.append({"row": row, "input": texts[row], "message": str(exc)})
                continue
            groups.setdefault(targets[row] is None, []).append(row)
        if not groups:
            raise InputError("no row could be attributed: " + "; ".join(
                f"row {e['row']}: {e['message']}" for e in sorted(errors, key=lambda e: e["row"])))
        return errors, list(groups.values())

    def normalize_target(self, target):
        """The command line reads ``--target 42`` as a number; for an encoder--decoder it is the
        output text "42"."""
        if self.kind == "seq2seq" and isinstance(target, int) and not isinstance(target, bool):
            return str(target)
        return target

    def _check_target(self, target) -> None:
        if target is None:
            return
        if self.kind == "seq2seq":
            if not isinstance(target, str):
                raise TargetError(f"expected the output text to attribute; got {target!r}")
            _output_row(self.tokenizer, target)
            return
        unit = _class_unit(self.model, target) if self.kind == "classifier" else _token_unit(self.tokenizer, target)
        units = self.model.config.num_labels if self.kind == "classifier" else self.model.config.vocab_size
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < units:
            raise TargetError(f"expected a target in [0, {units - 1}] or a name; got {target!r}")


def write_token_report(res, out_path, title: str, *, smiles: bool = False) -> list[Path]:
    """One block per text: tokens and words coloured by attribution, F(x), F(x'), the gap, notes;
    for SMILES models a table (and pictures) of atom attributions; the bad rows at the end."""
    from sciattr.text.render import token_html

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = [out_path]
    blocks = []
    for i in range(res.n_examples):
        fx, fb = float(res.forward_x[i]), float(res.forward_baseline[i])
        label = res.target_labels[i] if i < len(res.target_labels) else res.target
        blocks.append(
            f"<h2>row {res.rows[i]}</h2><p class='meta'>target {html.escape(str(label))} &middot; F(x) = {fx:.4g}"
            f" &middot; F(baseline) = {fb:.4g} &middot; sum = {res.total(i):.4g} &middot; relative gap "
            f"{float(res.relative_gap[i]):.2e}</p>"
            + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in res.notes[i])
            + f"<p>tokens: {token_html(res.to_tokens(i))}</p><p>words: {token_html(res.to_words(i))}</p>"
        )
        if smiles:
            block, pictures = _atom_block(res, i, out_path)
            blocks.append(block)
            written += pictures
    blocks += [f"<p class='error'>row {e['row']}: {html.escape(e['message'])}</p>" for e in res.errors]
    out_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(res.method)} "
        f"({html.escape(res.rule)}, {int(res.steps.max())} steps), score {html.escape(res.target)}; "
        "red: positive, blue: negative</p>" + "".join(blocks) + "</body></html>\n", encoding="utf-8")
    return written


def _atom_block(res, example: int, out_path: Path) -> tuple[str, list[Path]]:
    from sciattr.errors import SciAttrError
    from sciattr.text.smiles_tokens import draw_reaction_side, reaction_atom_values

    try:
        sides = reaction_atom_values(res, example)
    except SciAttrError as exc:
        return f"<p class='note'>atoms not mapped: {html.escape(str(exc))}</p>", []
    parts, pictures = [], []
    for name, atoms in sides.items():
        cells = "".join(f"<td>{k}</td>" for k in range(len(atoms.values)))
        values = "".join(f"<td>{v:+.3f}</td>" for v in atoms.values)
        parts.append(f"<h3>{name}: {html.escape(atoms.smiles)}</h3><table><tr><th>atom</th>{cells}</tr>"
                     f"<tr><th>attribution</th>{values}</tr></table>")
        picture = _try_draw(draw_reaction_side, res, example, name, out_path)
        if picture is not None:
            pictures.append(picture)
            parts.append(f"<img src='{html.escape(picture.name)}' alt='{name} atoms'>")
    return "".join(parts), pictures


def _try_draw(draw, res, example, side, out_path: Path) -> Path | None:
    from sciattr.errors import MissingDependencyError

    try:
        return draw(res, example, side, out_path.with_name(f"{out_path.stem}_{example}_{side}.svg"))
    except MissingDependencyError:
        return None
