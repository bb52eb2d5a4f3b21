"""Self-contained HTML reports of molecular attributions, and the ``sciattr molecule`` command.

:func:`molecule_report` writes one HTML file (no external files or scripts): the drawing as
inline SVG, the prediction, the baseline score, the accounting of the attribution over atoms,
bonds and non-bonded pairs, the completeness gap, and per-atom and per-bond tables.

:func:`run_molecule_cli` and :func:`run_batch_cli` are what ``sciattr molecule`` calls: a shipped
model (see :mod:`sciattr.zoo`) or a saved card/weights path, one SMILES or a CSV/SDF/SMILES file.
Rows that cannot be processed are written to the output table with their error, never dropped.
"""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path

import numpy as np

from sciattr.chem.accounting import account
from sciattr.chem.draw import draw_attribution, draw_attribution_grid, save_picture
from sciattr.chem.substructures import atom_scores
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
                 "relative_gap", "top_atoms", "picture", "notes", "error")


def _signed(value: float) -> str:
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="{cls}">{value:+.4g}</td>'


def _scalar(value, task: int | None) -> float:
    array = np.asarray(value.detach().cpu().double().numpy() if hasattr(value, "detach") else value).reshape(-1)
    return float(array[0] if array.size == 1 else array[task])


def _accounting(result, index: int, task: int | None) -> dict:
    """Where the attribution of one molecule went (atom features, bonds, other pairs) and the scores."""
    parts = account(result, index, task=task)
    return {"prediction": _scalar(result.forward_x[index], task),
            "baseline": _scalar(result.forward_baseline[index], task), "difference": parts.delta,
            "atoms": parts.atoms, "bonds": parts.bonded, "other_pairs": parts.nonbonded,
            "total": parts.atoms + parts.bonded + parts.nonbonded, "gap": parts.gap,
            "by_element": parts.by_element, "by_bond_type": parts.by_bond_type}


def _top_feature(result, index: int, task: int | None) -> list[str]:
    """Name of the atom feature with the largest |attribution| for every atom of a molecule."""
    rows = result.attributions["atoms"][result.segments["atoms"] == index]
    if result.multi_target:
        rows = rows[..., task]
    names = result.atom_feature_names
    best = rows.abs().argmax(1).tolist()
    return [names[b] if b < len(names) else f"feature {b}" for b in best]


def _atom_table(result, index: int, task: int | None) -> str:
    mol = result.molecules[index]
    own = result.atom_values(index, task).detach().double().cpu().numpy()
    totals = atom_scores(result, index, task)
    top = _top_feature(result, index, task)
    rows = [("<tr><th>atom</th><th class='l'>element</th><th>attribution (atom features)</th>"
            "<th>atom score (+ ½ links)</th><th class='l'>strongest feature</th></tr>")]
    for atom in mol.GetAtoms():
        k = atom.GetIdx()
        rows.append(f"<tr><td>{k}</td><td class='l'>{html.escape(atom.GetSymbol())}</td>{_signed(own[k])}"
                    f"{_signed(totals[k])}<td class='l'>{html.escape(top[k])}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _bond_table(result, index: int, task: int | None) -> str:
    rows = ["<tr><th>bond</th><th>atoms</th><th class='l'>type</th><th>attribution</th></tr>"]
    for item in result.to_bonds(index, task):
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


def molecule_report(result, path: str | os.PathLike, *, index: int = 0, task: int | None = None,
                    model_name: str | None = None) -> Path:
    """Write a self-contained HTML report of molecule ``index`` of a ``MoleculeAttribution``.

    Parameters
    ----------
    result:
        A :class:`~sciattr.chem.adapter.MoleculeAttribution`.
    path:
        Output ``.html`` file (folders are created).
    task:
        Target column of a multi-target result.
    model_name:
        Shown in the title; default ``result.meta["model"]``.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < result.n_examples:
        raise InputError(f"expected a molecule index in [0, {result.n_examples - 1}]; got {describe(index)}")
    path = Path(path)
    name = model_name or result.meta.get("model") or "model"
    acc = _accounting(result, index, task)
    svg = draw_attribution(result, index, task=task, title=name, image_format="svg")
    svg = svg[svg.index("<svg"):]  # drop the XML declaration to inline it
    notes = result.notes[index] if index < len(result.notes) else ()
    steps = int(result.steps[index]) if result.steps.numel() > index else None
    body = [
        f"<h1>Integrated gradients of {html.escape(str(name))}</h1>",
        f"<div class='smiles'>{html.escape(result.smiles[index])}</div>",
        (f"<p>target {html.escape(str(result.target))}; {html.escape(result.method)} with {steps} "
        f"{html.escape(result.rule)} nodes from the {html.escape(str(result.meta.get('baseline', 'zeros')))} "
        f"baseline. Red: evidence for a higher score; blue: against.</p>"),
        f"<div class='figure'>{svg}</div>",
        "<h2>Accounting</h2>", _accounting_table(acc, result.link_name),
        ("<p class='note'>Completeness: the attributions add up to F(x) − F(x'); the gap is the numerical "
        "integration error.</p>"),
    ]
    if notes:
        body.append("<p class='note'>" + html.escape("; ".join(notes)) + "</p>")
    body += ["<h2>Atoms</h2>", _atom_table(result, index, task), "<h2>Bonds</h2>", _bond_table(result, index, task)]
    document = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sciattr: "
                f"{html.escape(result.smiles[index])}</title><style>{_STYLE}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- command line
def _load(model: str | os.PathLike):
    from sciattr.zoo import load_featurizer, load_model

    loaded = load_model(model)
    return loaded, load_featurizer(loaded), loaded.card.get("name", str(model))


#: Settings of the command line: the shipped models are ReLU networks, on which the trapezoid rule
#: converges steadily; steps double (from 64, up to 1024) until every molecule completes within 1%.
CLI_OPTIONS = {"steps": 64, "rule": "riemann_trapezoid", "tolerance": 0.01, "max_steps": 1024}


def run_molecule_cli(smiles: str, model: str | os.PathLike, target, out: str | os.PathLike) -> list[Path]:
    """Explain one SMILES with a shipped (or saved) model; write ``out`` (HTML) and a PNG beside it.

    Returns the paths written. A SMILES that cannot be featurized raises
    :class:`~sciattr.errors.InputError` with RDKit's reason.
    """
    from sciattr.chem.adapter import explain_molecules

    if not isinstance(smiles, str):
        raise InputError(f"expected a SMILES string; got {describe(smiles)}")
    network, featurizer, name = _load(model)
    result = explain_molecules(network, [smiles], featurizer=featurizer, target=target, **CLI_OPTIONS)
    result.meta["model"] = name
    out = Path(out)
    task = target if result.multi_target else None
    report = molecule_report(result, out, task=task, model_name=name)
    draw_attribution(result, 0, out.with_suffix(".png"), task=task, title=name)
    print(terminal_table(result, 0, task=task, title=f"{name}: {smiles}"))
    return [report, out.with_suffix(".png")]


def terminal_table(result, index: int = 0, *, task: int | None = None, title: str | None = None) -> str:
    """Plain text for a terminal: the prediction and completeness of molecule ``index``, its atoms
    (numbered as in the input molecule) with their attributions, largest magnitude first with a
    bar for scale, and the accounting."""
    parts = account(result, index, task=task)
    fx, fb = _scalar(result.forward_x[index], task), _scalar(result.forward_baseline[index], task)
    rel = abs(parts.gap) / abs(parts.delta) if parts.delta else float("nan")
    atoms = result.to_atoms(index, task)
    scale = max((abs(a["attribution"]) for a in atoms), default=0.0) or 1.0
    lines = [title or result.smiles[index],
             (f"F(x) = {fx:.6g}   F(baseline) = {fb:.6g}   sum of attributions = {parts.delta + parts.gap:.6g}   "
             f"completeness gap = {parts.gap:.2e} ({rel:.2%})"),
             f"{'atom':>5} {'element':<7} {'attribution':>12}"]
    for a in sorted(atoms, key=lambda a: -abs(a["attribution"])):
        bar = ("+" if a["attribution"] >= 0 else "-") * round(20 * abs(a["attribution"]) / scale)
        lines.append(f"{a['index']:>5} {a['symbol']:<7} {a['attribution']:>12.4g}  {bar}")
    lines.append(parts.summary())
    return "\n".join(lines)


def read_molecule_file(path: str | os.PathLike) -> tuple[list, list[str]]:
    """Molecules of a CSV (column ``smiles``, any case; else the first column), SDF or SMILES file.

    Returns ``(items, labels)``: SMILES strings or RDKit molecules (``None`` for unreadable SDF
    records) and a text label of each row for the output table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected an existing CSV, SDF or SMILES file; got {os.fspath(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".sdf":
        from sciattr.chem.featurize import Chem, load_sdf

        items = load_sdf(path)
        labels = [m.GetProp("_Name") if m is not None and m.HasProp("_Name") and m.GetProp("_Name")
                  else (Chem.MolToSmiles(m) if m is not None else "<unreadable record>") for m in items]
        return items, labels
    if suffix in (".smi", ".txt"):
        items = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        return items, list(items)
    if suffix == ".csv":
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            raise InputError(f"expected a CSV with a header row; got an empty file {os.fspath(path)!r}")
        header = [h.strip().lower() for h in rows[0]]
        column = header.index("smiles") if "smiles" in header else 0
        items = [row[column] if len(row) > column else "" for row in rows[1:]]
        return items, list(items)
    raise InputError(f"expected a .csv, .sdf or .smi file; got {os.fspath(path)!r}")


def _top_atoms(result, index: int, task: int | None, k: int = 3) -> str:
    mol = result.molecules[index]
    scores = atom_scores(result, index, task)
    order = np.argsort(-scores)[:k]
    return " ".join(f"{mol.GetAtomWithIdx(int(a)).GetSymbol()}{int(a)}:{scores[a]:+.3g}" for a in order)


def run_batch_cli(input_path: str | os.PathLike, model: str | os.PathLike, target,
                  out_dir: str | os.PathLike) -> list[Path]:
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
        result = explain_molecules(network, items, featurizer=featurizer, target=target, **CLI_OPTIONS)
    except InputError as exc:  # no row could be featurized: every row gets the reason
        result = None
        for entry in table.values():
            entry["error"] = str(exc)
    if result is not None:
        result.meta["model"] = name
        task = target if result.multi_target else None
        for error in result.errors:
            table[error["row"]]["error"] = error["message"]
        for i, row in enumerate(result.rows):
            acc = _accounting(result, i, task)
            picture = save_picture(draw_attribution(result, i, task=task, title=name), out / "pictures" / f"row{row}.svg")
            written.append(picture)
            table[row].update({
                "status": "ok", "smiles": result.smiles[i], "prediction": acc["prediction"],
                "baseline_score": acc["baseline"], "atoms": acc["atoms"], "links": acc["bonds"] + acc["other_pairs"],
                "gap": acc["gap"], "relative_gap": abs(acc["gap"]) / abs(acc["difference"]) if acc["difference"]
                else float("inf"), "top_atoms": _top_atoms(result, i, task),
                "picture": str(picture.relative_to(out)), "notes": "; ".join(result.notes[i])})
        written.append(_write_atoms(result, task, labels, out / "atoms.csv"))
        grid = draw_attribution_grid(result, list(range(min(24, result.n_examples))), task=task, shared_scale=False)
        written.append(save_picture(grid, out / "grid.svg"))
    molecules = out / "molecules.csv"
    with molecules.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(BATCH_COLUMNS))
        writer.writeheader()
        for row in range(len(items)):
            writer.writerow({c: table[row].get(c, "") for c in BATCH_COLUMNS})
    return [molecules] + written


def _write_atoms(result, task: int | None, labels: list[str], path: Path) -> Path:
    """One row per atom; atom indices are those of the input molecule (largest fragment kept)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "input", "atom", "element", "attribution", "atom_score"])
        for i, row in enumerate(result.rows):
            own = result.atom_values(i, task).detach().double().cpu().numpy()
            totals = atom_scores(result, i, task)
            for atom in result.molecules[i].GetAtoms():
                k = atom.GetIdx()
                writer.writerow([row, labels[row], k, atom.GetSymbol(), f"{own[k]:.6g}", f"{totals[k]:.6g}"])
    return path
