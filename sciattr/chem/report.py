"""Self-contained HTML reports of molecular attributions, and the ``sciattr molecule`` command.

:func:`molecule_report` writes one HTML file (no external files or scripts): the drawing as
inline SVG, the prediction, the baseline score, the accounting of the attribution over atoms,
bonds and non-bonded pairs, the completeness gap, and per-atom and per-bond tables.

:func:`run_molecule_cli` and :func:`run_batch_cli` explain one SMILES or a CSV/SDF/SMILES file with
a model that carries its card (``sciattr.zoo.load_model``: chemistry never loads the zoo itself).
Rows that cannot be processed are written to the output table with their error, never dropped.
"""

from __future__ import annotations

import csv
import html
import io
import os
from pathlib import Path

import numpy as np

from sciattr.chem._vocabulary import renamed_keywords
from sciattr.chem.accounting import account
from sciattr.chem.draw import draw_attribution, draw_attribution_grid, save_picture
from sciattr.errors import InputError, describe

__all__ = ["BATCH_COLUMNS", "molecule_report", "read_molecule_file", "run_batch_cli", "run_molecule_cli",
           "terminal_table"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px;margin-bottom:4px} h2{font-size:16px;margin-top:28px}
.smiles{font-family:monospace;word-break:break-all;color:#444}
table{border-collapse:collapse;font-size:13px;margin-top:6px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.pos{color:#b71c1c} .neg{color:#1a4f9c} .note{color:#666;font-size:12px}
.figure{display:inline-block;border:1px solid #eee;margin-top:8px}
"""

#: Columns of the batch output table.
BATCH_COLUMNS = ("row", "input", "status", "smiles", "prediction", "baseline_score", "atoms", "links", "gap",
                 "relative_gap", "top_atoms", "picture", "notes", "baseline_warning", "error")


def _signed(value: float) -> str:
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="{cls}">{value:+.4g}</td>'


def _scalar(result, value, target) -> float:
    return float(result._task_column(value, target))


def _accounting(result, index: int, target) -> dict:
    """Where the attribution of one molecule went (atom features, bonds, other pairs) and the scores."""
    parts = account(result, index, target=target)
    return {"prediction": _scalar(result, result.forward_x[index], target),
            "baseline": _scalar(result, result.forward_baseline[index], target), "difference": parts.delta,
            "atoms": parts.atoms, "bonds": parts.bonded, "other_pairs": parts.nonbonded,
            "total": parts.atoms + parts.bonded + parts.nonbonded, "gap": parts.gap,
            "by_element": parts.by_element, "by_bond_type": parts.by_bond_type}


def _top_feature(result, index: int, target) -> list[str]:
    """Name of the atom feature with the largest |attribution| for every atom of a molecule."""
    rows = result.attributions["atoms"][result.segments["atoms"] == index]
    rows = result._task_column(rows, target)
    names = result.atom_feature_names
    best = rows.abs().argmax(1).tolist()
    return [names[b] if b < len(names) else f"feature {b}" for b in best]


def _atom_table(result, index: int, target) -> str:
    top = _top_feature(result, index, target)
    rows = [("<tr><th>atom (input index)</th><th class='l'>element</th><th>atom score (features + ½ links)</th>"
            "<th>atom features only</th><th class='l'>strongest feature</th></tr>")]
    for k, item in enumerate(result.to_atoms(index, target)):
        rows.append(f"<tr><td>{item['index']}</td><td class='l'>{html.escape(item['symbol'])}</td>"
                    f"{_signed(item['atom_score'])}{_signed(item['feature_attribution'])}"
                    f"<td class='l'>{html.escape(top[k])}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _bond_table(result, index: int, target) -> str:
    rows = ["<tr><th>bond</th><th>atoms</th><th class='l'>type</th><th>attribution</th></tr>"]
    for item in result.to_bonds(index, target):
        rows.append(f"<tr><td>{item['bond']}</td><td>{item['begin']}–{item['end']}</td>"
                    f"<td class='l'>{html.escape(item['bond_type'])}</td>{_signed(item['attribution'])}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _accounting_table(acc: dict, link_name: str) -> str:
    relative = abs(acc["gap"]) / abs(acc["difference"]) if acc["difference"] else float("inf")
    entries = [("prediction F(x)", acc["prediction"]), ("baseline score F(x')", acc["baseline"]),
               ("F(x) − F(x')", acc["difference"]), ("atom features", acc["atoms"]),
               (f"{link_name} that are bonds", acc["bonds"]), (f"{link_name} that are not bonds", acc["other_pairs"]),
               ("sum of attributions", acc["total"]), ("completeness gap", acc["gap"])]
    entries += [(f"  atoms of element {k}", v) for k, v in sorted(acc["by_element"].items())]
    entries += [(f"  {k} bonds", v) for k, v in sorted(acc["by_bond_type"].items())]
    rows = "".join(f"<tr><td class='l'>{html.escape(name)}</td><td>{value:+.6g}</td>"
                   f"<td>{_share(value, acc['difference'])}</td></tr>" for name, value in entries)
    return (f"<table><tr><th class='l'>part</th><th>value</th><th>share of F(x) − F(x')</th></tr>{rows}"
            f"<tr><td class='l'>relative gap |gap| / |F(x) − F(x')|</td><td>{relative:.2%}</td><td></td></tr>"
            "</table>")


def _share(value: float, whole: float) -> str:
    return f"{value / whole:.1%}" if whole else ""


@renamed_keywords
def molecule_report(result, path: str | os.PathLike, *, index: int = 0, target=None,
                    model_name: str | None = None) -> Path:
    """Write a self-contained HTML report of molecule ``index`` of a ``MoleculeAttribution``.

    Parameters
    ----------
    result:
        A :class:`~sciattr.chem.adapter.MoleculeAttribution`.
    path:
        Output ``.html`` file (folders are created).
    target:
        Target column (index or task name) of a multi-target result.
    model_name:
        Shown in the title; default ``result.meta["model"]``.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < result.n_examples:
        raise InputError(f"expected a molecule index in [0, {result.n_examples - 1}]; got {describe(index)}")
    path = Path(path)
    name = model_name or result.meta.get("model") or "model"
    acc = _accounting(result, index, target)
    svg = draw_attribution(result, index, target=target, title=name, image_format="svg")
    svg = svg[svg.index("<svg"):]  # drop the XML declaration to inline it
    notes = result.notes[index] if index < len(result.notes) else ()
    steps = int(result.steps[index]) if result.steps.numel() > index else None
    body = [
        f"<h1>Integrated gradients of {html.escape(str(name))}</h1>",
        f"<div class='smiles'>{html.escape(result.smiles[index])}</div>",
        (f"<p>target {html.escape(str(result.target))}; {html.escape(result.method)} with {steps} "
        f"{html.escape(result.rule)} nodes from the {html.escape(str(result.meta.get('baseline', 'zeros')))} "
        f"baseline. Atom colours are complete atom scores (the atom's features plus half of each pair or "
        f"bond it takes part in); atoms are labelled with their index in the input. Red: evidence for a "
        f"higher score; blue: against.</p>"),
        f"<div class='figure'>{svg}</div>",
        "<h2>Accounting</h2>", _accounting_table(acc, result.link_name),
        ("<p class='note'>Completeness: the attributions add up to F(x) − F(x'); the gap is the numerical "
        "integration error.</p>"),
    ]
    if notes:
        body.append("<p class='note'>" + html.escape("; ".join(notes)) + "</p>")
    warning = result.baseline_warnings[index] if index < len(result.baseline_warnings) else ""
    if warning:
        body.append("<p class='note'><b>Baseline:</b> " + html.escape(warning) + "</p>")
    body += ["<h2>Atoms</h2>", _atom_table(result, index, target), "<h2>Bonds</h2>",
             _bond_table(result, index, target)]
    document = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sciattr: "
                f"{html.escape(result.smiles[index])}</title><style>{_STYLE}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- command line
def _load(model):
    """``(model, featurizer, name)`` of a model that carries its card (``sciattr.zoo.load_model``)."""
    import torch

    card = getattr(model, "card", None)
    if not isinstance(model, torch.nn.Module) or not isinstance(card, dict) or "featurizer" not in card:
        raise InputError(f"expected a model with its card (e.g. sciattr.zoo.load_model(name)); got "
                         f"{describe(model)}")
    from sciattr.chem.featurize import featurizer_from_spec

    return model, featurizer_from_spec(card["featurizer"]), str(card.get("name", "model"))


#: Options of the command line beyond the API defaults: none -- the command line and the API
#: compute attributions with the same :class:`sciattr.Settings` defaults (adaptive steps until
#: every molecule's completeness gap is within the tolerance).
CLI_OPTIONS: dict = {}


def _target_of(result, target):
    return target if result.multi_target else None


@renamed_keywords
def run_molecule_cli(smiles: str, model, target, out: str | os.PathLike, *, settings=None,
                     **options) -> list[Path]:
    """Explain one SMILES with a model that carries its card (``sciattr.zoo.load_model(name)``); write
    ``out`` (HTML) and a PNG beside it.

    ``settings``/``options`` as in :func:`~sciattr.chem.explain_molecules`. Returns the paths
    written. A SMILES that cannot be featurized raises :class:`~sciattr.errors.InputError` with
    RDKit's reason.
    """
    from sciattr.chem.adapter import explain_molecules

    if not isinstance(smiles, str):
        raise InputError(f"expected a SMILES string; got {describe(smiles)}")
    network, featurizer, name = _load(model)
    result = explain_molecules(network, [smiles], featurizer=featurizer, target=target, settings=settings,
                               **{**CLI_OPTIONS, **options})
    result.meta["model"] = name
    out = Path(out)
    chosen = _target_of(result, target)
    report = molecule_report(result, out, target=chosen, model_name=name)
    draw_attribution(result, 0, out.with_suffix(".png"), target=chosen, title=name)
    print(terminal_table(result, 0, target=chosen, title=f"{name}: {smiles}"))
    return [report, out.with_suffix(".png")]


@renamed_keywords
def terminal_table(result, index: int = 0, *, target=None, title: str | None = None) -> str:
    """Plain text for a terminal: F(x) and F(x') of molecule ``index``, its completeness, its atoms
    (numbered as in the input molecule) with their complete atom scores (and the atom-feature
    part), largest magnitude first with a bar for scale, the accounting and the notes."""
    parts = account(result, index, target=target)
    fx = _scalar(result, result.forward_x[index], target)
    fb = _scalar(result, result.forward_baseline[index], target)
    rel = abs(parts.gap) / abs(parts.delta) if parts.delta else float("nan")
    atoms = result.to_atoms(index, target)
    scale = max((abs(a["atom_score"]) for a in atoms), default=0.0) or 1.0
    lines = [title or result.smiles[index],
             (f"F(x) = {fx:.6g}   F(x') = {fb:.6g} (baseline)   sum of attributions = "
              f"{parts.delta + parts.gap:.6g}   completeness gap = {parts.gap:.2e} ({rel:.2%})"),
             f"{'atom':>5} {'element':<7} {'atom score':>12} {'features':>10}"]
    for a in sorted(atoms, key=lambda a: -abs(a["atom_score"])):
        bar = ("+" if a["atom_score"] >= 0 else "-") * round(20 * abs(a["atom_score"]) / scale)
        lines.append(f"{a['index']:>5} {a['symbol']:<7} {a['atom_score']:>12.4g} {a['feature_attribution']:>10.4g}"
                     f"  {bar}")
    lines.append("atom score = the atom's features + half of each pair/bond it takes part in; atoms are "
                 "numbered as in the input")
    lines.append(parts.summary())
    notes = result.notes[index] if index < len(result.notes) else ()
    lines += [f"note: {n}" for n in notes]
    warning = result.baseline_warnings[index] if index < len(result.baseline_warnings) else ""
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def read_molecule_file(path: str | os.PathLike) -> tuple[list, list[str]]:
    """Molecules of a CSV (column ``smiles``, any case), SDF or SMILES file. A CSV without a
    column named ``smiles`` is refused, also when it has a single column (a column of formulas
    such as ``CO``, ``NO`` would parse as SMILES).

    Returns ``(items, labels)``: SMILES strings or RDKit molecules (an
    :class:`~sciattr.chem.featurize.UnreadableRecord` with RDKit's reason for unreadable SDF
    records) and a text label of each row for the output table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected an existing CSV, SDF or SMILES file; got {os.fspath(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".sdf":
        from sciattr.chem.featurize import Chem, load_sdf

        items = load_sdf(path)
        labels = [m.GetProp("_Name") if isinstance(m, Chem.Mol) and m.HasProp("_Name") and m.GetProp("_Name")
                  else (Chem.MolToSmiles(m) if isinstance(m, Chem.Mol) else str(m)) for m in items]
        return items, labels
    if suffix in (".smi", ".txt"):
        items = [line.split()[0] for line in _utf8(path).splitlines() if line.strip()]
        return items, list(items)
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(_utf8(path), newline="")))
        if not rows:
            raise InputError(f"expected a CSV with a header row; got an empty file {os.fspath(path)!r}")
        header = [h.strip().lower() for h in rows[0]]
        if "smiles" not in header:  # never guess: a column of formulas such as CO, NO also parses as SMILES
            raise InputError(f"expected a CSV with a column named 'smiles'; got columns {rows[0]} in "
                             f"{os.fspath(path)!r} (name the SMILES column 'smiles', or list the SMILES in "
                             f"a .smi file)")
        column = header.index("smiles")
        items = [row[column] if len(row) > column else "" for row in rows[1:]]
        return items, list(items)
    raise InputError(f"expected a .csv, .sdf or .smi file; got {os.fspath(path)!r}")


def _utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"expected a UTF-8 text file; got {os.fspath(path)!r} with a byte {exc.object[exc.start]:#04x} "
                         f"at offset {exc.start} that is not UTF-8 (convert the file to UTF-8)") from None


def _top_atoms(result, index: int, target, k: int = 3) -> str:
    atoms = result.to_atoms(index, target)
    order = np.argsort([-a["atom_score"] for a in atoms], kind="stable")[:k]
    return " ".join(f"{atoms[a]['symbol']}{atoms[a]['index']}:{atoms[a]['atom_score']:+.3g}" for a in order)


@renamed_keywords
def run_batch_cli(input_path: str | os.PathLike, model, target,
                  out_dir: str | os.PathLike, *, settings=None, **options) -> list[Path]:
    """Explain every molecule of a CSV/SDF/SMILES file in one batched call.

    Writes to ``out_dir``: ``molecules.csv`` (one row per input row, :data:`BATCH_COLUMNS`; bad
    rows have ``status=error`` and the reason), ``atoms.csv`` (one row per atom), one SVG per
    molecule under ``pictures/`` and ``grid.svg`` (the first 24 molecules). Returns the paths.
    """
    from sciattr.chem.adapter import explain_molecules

    items, labels = read_molecule_file(input_path)
    if not items:
        raise InputError(f"expected at least one molecule in {os.fspath(input_path)!r}; got none")
    network, featurizer, name = _load(model)
    out = Path(out_dir)
    (out / "pictures").mkdir(parents=True, exist_ok=True)
    table = {row: {"row": row, "input": labels[row], "status": "error", "error": ""} for row in range(len(items))}
    written: list[Path] = []
    try:
        result = explain_molecules(network, items, featurizer=featurizer, target=target, settings=settings,
                                   **{**CLI_OPTIONS, **options})
    except InputError as exc:  # no row could be featurized: every row gets the reason
        result = None
        for entry in table.values():
            entry["error"] = str(exc)
    if result is not None:
        result.meta["model"] = name
        chosen = _target_of(result, target)
        for error in result.errors:
            table[error["row"]]["error"] = error["message"]
        for i, row in enumerate(result.rows):
            acc = _accounting(result, i, chosen)
            picture = save_picture(draw_attribution(result, i, target=chosen, title=name),
                                   out / "pictures" / f"row{row}.svg")
            written.append(picture)
            table[row].update({
                "status": "ok", "smiles": result.smiles[i], "prediction": acc["prediction"],
                "baseline_score": acc["baseline"], "atoms": acc["atoms"], "links": acc["bonds"] + acc["other_pairs"],
                "gap": acc["gap"], "relative_gap": abs(acc["gap"]) / abs(acc["difference"]) if acc["difference"]
                else float("inf"), "top_atoms": _top_atoms(result, i, chosen),
                "picture": str(picture.relative_to(out)), "notes": "; ".join(result.notes[i]),
                "baseline_warning": result.baseline_warnings[i] if i < len(result.baseline_warnings) else ""})
        written.append(_write_atoms(result, chosen, labels, out / "atoms.csv"))
        grid = draw_attribution_grid(result, list(range(min(24, result.n_examples))), target=chosen,
                                     shared_scale=False)
        written.append(save_picture(grid, out / "grid.svg"))
    molecules = out / "molecules.csv"
    with molecules.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(BATCH_COLUMNS))
        writer.writeheader()
        for row in range(len(items)):
            writer.writerow({c: table[row].get(c, "") for c in BATCH_COLUMNS})
    return [molecules] + written


def _write_atoms(result, target, labels: list[str], path: Path) -> Path:
    """One row per atom; atom indices are those of the input molecule, and the notes column says
    when atoms (a fragment, explicit hydrogens) were left out."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "input", "atom", "element", "atom_score", "feature_attribution", "notes"])
        for i, row in enumerate(result.rows):
            notes = "; ".join(n for n in result.notes[i] if "left out" in n) if i < len(result.notes) else ""
            for a in result.to_atoms(i, target):
                writer.writerow([row, labels[row], a["index"], a["symbol"], f"{a['atom_score']:.6g}",
                                 f"{a['feature_attribution']:.6g}", notes])
    return path
