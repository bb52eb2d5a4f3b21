"""Library-level summaries of a run folder, computed part by part (never the whole output in memory).

For a molecule run: the share of the attribution carried by each element (complete atom scores)
and by each bond type, the substructures (SMARTS functional groups and BRICS fragments) with
the largest mean attribution per occurrence and their counts, and the convergence summary (how
many rows met the completeness tolerance). For a text run: the convergence summary and the
tokens with the largest mean attribution.

``shares`` are signed sums over the library divided by the library's total (they add up to 1);
``abs_shares`` use magnitudes.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sciattr.errors import InputError, require
from sciattr.run import output

__all__ = ["LibrarySummary", "summarize", "write_summary_html"]


@dataclass
class LibrarySummary:
    """Summaries of a run (see the module docstring). Every table is a list of dicts."""

    kind: str
    rows: int = 0
    ok: int = 0
    errors: int = 0
    convergence: dict = field(default_factory=dict)
    elements: list = field(default_factory=list)
    bond_types: list = field(default_factory=list)
    substructures: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    unmatched_rows: int = 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        lines = [f"{self.rows:,} rows: {self.ok:,} ok, {self.errors:,} errors"]
        c = self.convergence
        if c:
            lines.append(f"convergence: {c['converged']:,} of {c['ok']:,} rows met the tolerance; relative gap median "
                         f"{c['median_relative_gap']:.2e}, 95th percentile {c['p95_relative_gap']:.2e}, max "
                         f"{c['max_relative_gap']:.2e}; {c['mean_evaluations']:.1f} model evaluations per row")
        for title, table, key in (("elements", self.elements, "element"), ("bond types", self.bond_types, "bond_type")):
            if table:
                lines.append(f"{title}: " + ", ".join(f"{t[key]} {100 * t['share']:.1f}%" for t in table[:12]))
        if self.substructures:
            lines.append(f"{'substructure':<40} {'kind':<17} {'count':>7} {'molecules':>9} {'mean':>10}")
            for s in self.substructures[:15]:
                lines.append(f"{s['key'][:40]:<40} {s['unit']:<17} {s['count']:>7,} {s['molecules']:>9,} "
                             f"{s['mean']:>10.4g}")
        if self.tokens:
            lines.append("tokens: " + ", ".join(f"{t['token']} {t['mean']:+.3g} (n={t['count']})"
                                                for t in self.tokens[:15]))
        return "\n".join(lines)


def _parts(out_dir: Path, tables: tuple[str, ...]):
    """Per completed range, the part files of ``tables`` as pyarrow tables (one range at a time)."""
    ds = require("pyarrow.dataset", "scale")
    manifest = output.read_manifest(out_dir)
    fmt = manifest.get("format", "parquet")
    for start, entry in sorted(output.completed_ranges(out_dir).items()):
        parts = {}
        for name in entry["files"]:
            table = name.split("/", 1)[0]
            if table in tables:
                schema = output.arrow_schema(manifest["kind"], table)
                file_format = ds.CsvFileFormat(convert_options=output._csv_convert(schema)) if fmt == "csv" \
                    else "parquet"
                parts[table] = ds.dataset([os.fspath(out_dir / name)], schema=schema, format=file_format).to_table()
        yield parts


def summarize(out_dir: str | os.PathLike, *, units: tuple[str, ...] = ("functional_groups", "brics"),
              min_count: int = 3, top: int = 20, active_threshold: float | None = None) -> LibrarySummary:
    """Summaries of a run folder (any number of shards).

    Parameters
    ----------
    units:
        Substructure kinds: ``"functional_groups"`` (the SMARTS table of
        :data:`sciattr.chem.substructures.FUNCTIONAL_GROUPS`), ``"brics"``, ``"ring_systems"``.
    min_count:
        Substructures seen fewer times are left out of the ranking.
    top:
        Length of the substructure and token rankings.
    active_threshold:
        Only rows whose prediction is at least this enter the substructure ranking (the common
        denominator of the actives); ``None``: every ok row.
    """
    out_dir = Path(out_dir)
    manifest = output.read_manifest(out_dir)
    kind = manifest["kind"]
    summary = LibrarySummary(kind=kind)
    rel, evals = [], []
    converged = 0
    element: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # count, sum, sum |.|
    bond: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    subs: dict = defaultdict(lambda: [0, 0.0, 0.0, 0])  # occurrences, sum, sum of squares, molecules
    tokens: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])  # count, sum
    finders = _unit_finders(units) if kind == "molecule" else {}
    tables = output.TABLES[kind]
    for parts in _parts(out_dir, tables):
        rows = parts["rows"].to_pydict()
        n = len(rows["row"])
        summary.rows += n
        ok = [k for k in range(n) if rows["status"][k] == "ok"]
        summary.ok += len(ok)
        summary.errors += n - len(ok)
        for k in ok:
            if rows["relative_gap"][k] is not None:
                rel.append(rows["relative_gap"][k])
            if rows["evaluations"][k] is not None:
                evals.append(rows["evaluations"][k])
            converged += bool(rows["converged"][k])
        if kind == "molecule":
            atoms = parts["atoms"].to_pydict()
            for e, s in zip(atoms["element"], atoms["score"]):
                entry = element[e]
                entry[0] += 1
                entry[1] += s
                entry[2] += abs(s)
            bonds = parts.get("bonds")
            if bonds is not None:
                b = bonds.to_pydict()
                for t, s in zip(b["bond_type"], b["attribution"]):
                    entry = bond[t]
                    entry[0] += 1
                    entry[1] += s
                    entry[2] += abs(s)
            if finders:
                summary.unmatched_rows += _substructures(rows, ok, atoms, finders, subs, active_threshold)
        else:
            t = parts["tokens"].to_pydict()
            for token, value in zip(t["token"], t["attribution"]):
                entry = tokens[token]
                entry[0] += 1
                entry[1] += value
    rel_array = np.asarray(rel, dtype=float)
    finite = rel_array[np.isfinite(rel_array)]
    summary.convergence = {
        "ok": summary.ok, "converged": converged,
        "tolerance": manifest.get("settings", {}).get("tolerance") or 0.05,
        "median_relative_gap": float(np.median(finite)) if finite.size else float("nan"),
        "p95_relative_gap": float(np.percentile(finite, 95)) if finite.size else float("nan"),
        "max_relative_gap": float(rel_array.max()) if rel_array.size else float("nan"),
        "mean_evaluations": float(np.mean(evals)) if evals else float("nan"),
    }
    summary.elements = _shares(element, "element")
    summary.bond_types = _shares(bond, "bond_type")
    ranked = []
    for (unit, key), (count, total, squares, molecules) in subs.items():
        if count >= min_count:
            mean = total / count
            ranked.append({"unit": unit, "key": key, "count": count, "molecules": molecules, "total": total,
                           "mean": mean, "std": float(np.sqrt(max(squares / count - mean * mean, 0.0)))})
    summary.substructures = sorted(ranked, key=lambda s: -s["mean"])[:top]
    token_rank: list[dict[str, Any]] = [{"token": t, "count": c, "mean": s / c} for t, (c, s) in tokens.items()
                                        if c >= min_count]
    summary.tokens = sorted(token_rank, key=lambda t: -abs(t["mean"]))[:top]
    return summary


def _shares(table: dict, key: str) -> list[dict]:
    total = sum(v[1] for v in table.values())
    total_abs = sum(v[2] for v in table.values())
    out = [{key: name, "count": c, "total": s, "mean": s / c if c else 0.0,
            "share": s / total if total else float("nan"), "abs_share": a / total_abs if total_abs else float("nan")}
           for name, (c, s, a) in table.items()]
    return sorted(out, key=lambda t: -abs(t["total"]))


def _unit_finders(units) -> dict:
    from sciattr.chem import substructures

    known = {"functional_groups": substructures.functional_group_units, "brics": substructures.brics_units,
             "ring_systems": substructures.ring_system_units}
    bad = [u for u in units if u not in known]
    if bad:
        raise InputError(f"expected units among {sorted(known)}; got {bad}")
    return {u: known[u] for u in units}


def _substructures(rows, ok, atoms, finders, subs, active_threshold) -> int:
    """Add the substructure occurrences of the ok rows of one part; returns rows that could not be matched."""
    from rdkit import Chem, rdBase

    scores_by_row: dict[int, dict[int, float]] = defaultdict(dict)
    elements_by_row: dict[int, dict[int, str]] = defaultdict(dict)
    for r, a, e, s in zip(atoms["row"], atoms["atom"], atoms["element"], atoms["score"]):
        scores_by_row[r][a] = s
        elements_by_row[r][a] = e
    unmatched = 0
    blocker = rdBase.BlockLogs()
    try:
        for k in ok:
            prediction = rows["prediction"][k]
            if active_threshold is not None and (prediction is None or prediction < active_threshold):
                continue
            row = rows["row"][k]
            mol = Chem.MolFromSmiles(rows["input"][k] or "")
            scores, elements = scores_by_row.get(row, {}), elements_by_row.get(row, {})
            if mol is None or any(a >= mol.GetNumAtoms() or mol.GetAtomWithIdx(a).GetSymbol() != e
                                  for a, e in elements.items()):
                unmatched += 1  # the input is not a SMILES in the atoms' numbering (e.g. an SDF record)
                continue
            for unit, finder in finders.items():
                seen = set()
                for key, members in finder(mol):
                    present = [scores[a] for a in members if a in scores]
                    if not present:
                        continue
                    entry = subs[(unit, key)]
                    value = float(sum(present))
                    entry[0] += 1
                    entry[1] += value
                    entry[2] += value * value
                    if key not in seen:
                        entry[3] += 1
                        seen.add(key)
    finally:
        del blocker
    return unmatched


def _unit_svg(unit: str, key: str) -> str:
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    from sciattr.chem.substructures import FUNCTIONAL_GROUPS

    mol = Chem.MolFromSmarts(FUNCTIONAL_GROUPS[key]) if unit == "functional_groups" else \
        Chem.MolFromSmiles(key, sanitize=False)
    if mol is None:
        return ""
    try:
        mol.UpdatePropertyCache(False)  # valences as drawn, unchecked
        drawer = rdMolDraw2D.MolDraw2DSVG(180, 140)
        drawer.DrawMolecule(mol)
        drawer.FinishDrawing()
    except (RuntimeError, ValueError):  # RDKit cannot lay out every SMARTS
        return ""
    svg = drawer.GetDrawingText()
    return svg[svg.index("<svg"):] if "<svg" in svg else ""


def write_summary_html(summary: LibrarySummary, path: str | os.PathLike, title: str = "sciattr run") -> Path:
    """An HTML page of a :class:`LibrarySummary` with the top substructures drawn."""
    path = Path(path)

    def table(rows: list[dict], columns: list[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    blocks = [f"<h1>{html.escape(title)}</h1>",
              f"<p>{summary.rows:,} rows: {summary.ok:,} ok, {summary.errors:,} errors.</p>",
              "<h2>Convergence</h2>", table([summary.convergence], list(summary.convergence))]
    if summary.elements:
        blocks += ["<h2>Elements (complete atom scores)</h2>",
                   table(summary.elements, ["element", "count", "total", "mean", "share", "abs_share"])]
    if summary.bond_types:
        blocks += ["<h2>Bond types</h2>",
                   table(summary.bond_types, ["bond_type", "count", "total", "mean", "share", "abs_share"])]
    if summary.substructures:
        cards = []
        for s in summary.substructures:
            cards.append(f"<div class='card'>{_unit_svg(s['unit'], s['key'])}<div><b>{html.escape(s['key'])}</b><br>"
                         f"{html.escape(s['unit'])}<br>mean {s['mean']:+.4g} &plusmn; {s['std']:.3g}<br>"
                         f"{s['count']:,} occurrences in {s['molecules']:,} molecules</div></div>")
        blocks += ["<h2>Top substructures (mean attribution per occurrence)</h2>", "".join(cards)]
    if summary.tokens:
        blocks += ["<h2>Tokens</h2>", table(summary.tokens, ["token", "count", "mean"])]
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}.card{display:inline-block;"
             "vertical-align:top;width:190px;margin:6px;border:1px solid #eee;padding:4px;font-size:12px}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(blocks)}</body></html>\n", encoding="utf-8")
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def write_summary(out_dir: str | os.PathLike, **options) -> tuple[LibrarySummary, list[Path]]:
    """:func:`summarize`, then ``summary.json`` and ``summary.html`` in the run folder."""
    out_dir = Path(out_dir)
    summary = summarize(out_dir, **options)
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(summary.to_dict(), indent=1, default=str), encoding="utf-8")
    html_path = write_summary_html(summary, out_dir / "summary.html", title=f"sciattr run {out_dir.name}")
    return summary, [json_path, html_path]
