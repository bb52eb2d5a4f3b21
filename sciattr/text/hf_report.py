"""HTML reports for local Hugging Face models: ``sciattr text "..." --model PATH``.

The model folder is read offline; its kind (sequence classifier, causal LM, encoder--decoder)
comes from its config. A tokenizer whose vocabulary is made of SMILES tokens (bracket atoms,
``>>``) gets SMILES pre-splitting, and the report adds the atom attributions of each side of the
reaction (drawn with RDKit when it is installed).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from sciattr.text.huggingface import hf_integrated_gradients, load_local_model, model_kind

__all__ = ["CLI_TOLERANCE", "run_hf_cli", "write_token_report"]

#: Relative completeness gap the command line refines the step count to reach.
CLI_TOLERANCE = 0.01

_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        ".tok{padding:0.1em 0.25em;border-radius:0.25em;line-height:2em;white-space:pre}"
        ".meta{color:#555}.note{color:#8a5a00}.error{color:#b00}table{border-collapse:collapse}"
        "td,th{padding:0.1em 0.6em;text-align:right}")


def run_hf_cli(text: str, model_path, target=None, out_path="reports/text.html", steps: int = 64) -> list[Path]:
    """Attribute ``text`` with the model in ``model_path``; write an HTML report to ``out_path``.

    ``target``: the class index or label (classifier), the next token (causal LM) or the output
    text (encoder--decoder); ``None`` takes the model's prediction. Steps start at ``steps`` and
    double (up to 1024) until every completeness gap is below 1%. Returns the written paths.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sciattr.text.smiles_tokens import is_smiles_vocabulary, split_smiles

    model, tokenizer = load_local_model(model_path)
    kind = model_kind(model)
    smiles = kind == "classifier" and is_smiles_vocabulary(tokenizer)
    options = {"split": split_smiles} if smiles else {}
    res = hf_integrated_gradients(model, tokenizer, text, target=target, steps=steps, tolerance=CLI_TOLERANCE,
                                  max_steps=1024, **options)
    out_path = Path(out_path)
    title = f"{Path(model_path).name}: {text}"
    if kind == "seq2seq":
        from sciattr.text.seq2seq import write_seq2seq_report

        paths = write_seq2seq_report(res, out_path, title)
    else:
        paths = write_token_report(res, out_path, title, smiles=smiles)
    print(res.summary())
    return paths


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
