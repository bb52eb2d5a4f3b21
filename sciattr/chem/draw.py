"""Pictures of molecular attributions: signed atom and bond colours, pair heat maps, grids.

Colours: red for positive attributions, blue for negative, white at zero, on a scale symmetric
around zero (``+-max |value|`` unless a ``scale`` is given), so that equal magnitudes get equal
intensity whatever their sign. Every molecule picture carries a colour bar with the scale and,
when given, the model's prediction and the completeness gap (how far the attributions' sum is
from ``F(x) - F(x')``).

The drawing functions take plain arrays -- one value per atom and per bond of an RDKit ``Mol``
-- so they serve any model; :func:`draw_attribution`, :func:`attribution_heatmap` and
:func:`draw_attribution_grid` are thin helpers for a
:class:`~sciattr.chem.adapter.MoleculeAttribution`.

Molecule pictures come from RDKit's ``rdMolDraw2D`` (SVG text or PNG bytes); the pair heat map
(Sundararajan et al. 2017, Fig. 7 of "Gradients of Counterfactuals") from matplotlib.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sciattr.chem._vocabulary import renamed_keywords
from sciattr.errors import InputError, describe, require

__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "attribution_heatmap",
    "draw_attribution",
    "draw_attribution_grid",
    "draw_grid",
    "draw_molecule",
    "pair_heatmap",
    "pair_matrix",
    "save_picture",
    "signed_colour",
    "symmetric_scale",
]

#: Colour of the largest positive value (red) and of the largest negative value (blue).
POSITIVE = (0.84, 0.15, 0.16)
NEGATIVE = (0.13, 0.40, 0.71)
WHITE = (1.0, 1.0, 1.0)

COLOUR_BAR_HEIGHT = 46
_BAR_SEGMENTS = 41

Picture = str | bytes


# ---------------------------------------------------------------------------------------- colours
def _as_values(values, n: int, what: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != n:
        raise InputError(f"expected {n} {what} values; got {array.shape[0]} ({describe(values)})")
    if not np.isfinite(array).all():
        raise InputError(f"expected finite {what} values; got NaN or infinite entries")
    return array


def symmetric_scale(*arrays) -> float:
    """``max |value|`` over all given arrays (0 when they are empty or all zero)."""
    largest = 0.0
    for array in arrays:
        if array is not None and np.size(array):
            largest = max(largest, float(np.max(np.abs(np.asarray(array, dtype=np.float64)))))
    return largest


def signed_colour(value: float, scale: float) -> tuple[float, float, float]:
    """RGB of ``value`` on the symmetric scale ``[-scale, scale]``: white at 0, red / blue at the ends."""
    if scale <= 0 or value == 0:
        return WHITE
    t = min(abs(value) / scale, 1.0)
    end = POSITIVE if value > 0 else NEGATIVE
    return (1.0 + t * (end[0] - 1.0), 1.0 + t * (end[1] - 1.0), 1.0 + t * (end[2] - 1.0))


def _highlights(values: np.ndarray, scale: float, threshold: float) -> dict[int, tuple[float, float, float]]:
    """Colours of the entries whose magnitude exceeds ``threshold * scale``."""
    if scale <= 0:
        return {}
    return {i: signed_colour(v, scale) for i, v in enumerate(values.tolist()) if abs(v) > threshold * scale}


# ---------------------------------------------------------------------------------------- molecule pictures
def _check_mol(mol):
    chem = require("rdkit.Chem", "chem")
    if not isinstance(mol, chem.Mol):
        raise InputError(f"expected an RDKit Mol; got {describe(mol)}")
    if mol.GetNumAtoms() == 0:
        raise InputError("expected a molecule with at least one atom; got an empty molecule")
    return mol


def _drawer(image_format: str, width: int, height: int, panel_width: int, panel_height: int):
    draw = require("rdkit.Chem.Draw.rdMolDraw2D", "chem")
    if image_format == "svg":
        drawer = draw.MolDraw2DSVG(width, height, panel_width, panel_height)
    elif image_format == "png":
        drawer = draw.MolDraw2DCairo(width, height, panel_width, panel_height)
    else:
        raise InputError(f"expected image_format 'svg' or 'png'; got {image_format!r}")
    options = drawer.drawOptions()
    options.fillHighlights = True
    options.atomHighlightsAreCircles = True
    options.highlightRadius = 0.35
    options.highlightBondWidthMultiplier = 12
    options.legendFontSize = 15
    return drawer


def _caption(title: str | None, prediction: float | None, gap: float | None,
             baseline_score: float | None = None) -> str:
    parts = [] if not title else [str(title)]
    if prediction is not None:
        parts.append(f"F(x) {float(prediction):.4g}" if baseline_score is not None
                     else f"prediction {float(prediction):.4g}")
    if baseline_score is not None:
        parts.append(f"F(x') {float(baseline_score):.4g}")
    if gap is not None:
        parts.append(f"completeness gap {float(gap):.2e}")
    return "   ".join(parts)


def _colour_bar(drawer, left: float, top: float, width: float, scale: float) -> None:
    """A blue-white-red strip labelled ``-scale``, ``0``, ``+scale`` in pixel coordinates."""
    geometry = require("rdkit.Geometry", "chem")
    point = geometry.Point2D
    bar_top, bar_height = top + 6, 12
    segment = width / _BAR_SEGMENTS
    drawer.SetFillPolys(True)
    for k in range(_BAR_SEGMENTS):
        value = (2.0 * k / (_BAR_SEGMENTS - 1) - 1.0) * (scale if scale > 0 else 1.0)
        drawer.SetColour(signed_colour(value, scale if scale > 0 else 1.0))
        x0 = left + k * segment
        drawer.DrawRect(point(x0, bar_top), point(x0 + segment + 0.5, bar_top + bar_height), True)
    drawer.SetFillPolys(False)
    drawer.SetColour((0.3, 0.3, 0.3))
    drawer.DrawRect(point(left, bar_top), point(left + width, bar_top + bar_height), True)
    drawer.SetColour((0.0, 0.0, 0.0))
    drawer.SetFontSize(12)
    label_y = bar_top + bar_height + 11
    drawer.DrawString(f"-{scale:.3g}", point(left, label_y), 1, True)
    drawer.DrawString("0", point(left + width / 2, label_y), 0, True)
    drawer.DrawString(f"+{scale:.3g}", point(left + width, label_y), 2, True)


def draw_molecule(mol, atom_values, bond_values=None, *, prediction: float | None = None,
                  completeness_gap: float | None = None, title: str | None = None,
                  baseline_score: float | None = None, scale: float | None = None, threshold: float = 1e-3, size: tuple[int, int] = (480, 400),
                  image_format: str = "svg") -> Picture:
    """Draw ``mol`` with atoms and bonds coloured by their attributions.

    Parameters
    ----------
    mol:
        RDKit molecule; atom ``i`` gets ``atom_values[i]``, bond ``k`` (RDKit bond index)
        ``bond_values[k]``.
    atom_values:
        ``(n_atoms,)`` signed attributions.
    bond_values:
        ``(n_bonds,)`` signed attributions, or ``None`` for atoms only.
    prediction, completeness_gap, baseline_score:
        Printed under the molecule when given (the baseline score F(x') next to F(x)).
    title:
        Printed first in the caption (e.g. the model name or SMILES).
    scale:
        Colour-scale half width; default ``max |value|`` over atoms and bonds.
    threshold:
        Entries with ``|value| <= threshold * scale`` stay uncoloured.
    size:
        ``(width, height)`` in pixels, colour bar included.
    image_format:
        ``"svg"`` (returns ``str``) or ``"png"`` (returns ``bytes``).
    """
    mol = _check_mol(mol)
    atoms = _as_values(atom_values, mol.GetNumAtoms(), "atom")
    bonds = None if bond_values is None else _as_values(bond_values, mol.GetNumBonds(), "bond")
    scale = symmetric_scale(atoms, bonds) if scale is None else float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise InputError(f"expected a finite scale >= 0; got {scale!r}")
    width, height = size
    drawer = _drawer(image_format, width, height, width, height - COLOUR_BAR_HEIGHT)
    atom_colours = _highlights(atoms, scale, threshold)
    bond_colours = {} if bonds is None else _highlights(bonds, scale, threshold)
    caption = _caption(title, prediction, completeness_gap, baseline_score)
    drawer.DrawMolecule(mol, highlightAtoms=list(atom_colours), highlightAtomColors=atom_colours,
                        highlightBonds=list(bond_colours), highlightBondColors=bond_colours,
                        legend=caption)
    _colour_bar(drawer, 0.2 * width, height - COLOUR_BAR_HEIGHT, 0.6 * width, scale)
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    if image_format == "svg" and caption:  # RDKit draws text as paths: keep the caption readable too
        text = _with_svg_title(text, caption)
    return text


def _with_svg_title(svg: str, caption: str) -> str:
    """``svg`` with a ``<title>`` (what screen readers and text search see) after its opening tag."""
    start = svg.find("<svg")
    end = svg.find(">", start)
    if start < 0 or end < 0:
        return svg
    title = html.escape(" ".join(caption.split()), quote=False)
    return f"{svg[:end + 1]}\n<title>{title}</title>{svg[end + 1:]}"


def draw_grid(mols: Sequence, atom_values: Sequence, bond_values: Sequence | None = None, *,
              legends: Sequence[str] | None = None, columns: int = 4, panel: tuple[int, int] = (280, 240),
              shared_scale: bool = True, threshold: float = 1e-3, image_format: str = "svg") -> Picture:
    """Draw many molecules side by side, each coloured by its attributions.

    ``atom_values[k]`` (and ``bond_values[k]``) belong to ``mols[k]``. With ``shared_scale``
    every panel uses one colour scale (the largest magnitude of all), drawn once at the bottom;
    otherwise each panel is scaled on its own and its scale is appended to its legend.
    """
    if len(mols) == 0:
        raise InputError("expected at least one molecule; got none")
    counts = [len(atom_values)] + ([] if bond_values is None else [len(bond_values)])
    if any(c != len(mols) for c in counts):
        raise InputError(f"expected one attribution array per molecule ({len(mols)}); got {counts} "
                         f"(atom{'' if bond_values is None else ', bond'} arrays)")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise InputError(f"expected columns to be a positive integer; got {describe(columns)}")
    mols = [_check_mol(m) for m in mols]
    atoms = [_as_values(v, m.GetNumAtoms(), "atom") for v, m in zip(atom_values, mols)]
    bonds = [None] * len(mols) if bond_values is None else [
        _as_values(v, m.GetNumBonds(), "bond") for v, m in zip(bond_values, mols)]
    scales = [symmetric_scale(a, b) for a, b in zip(atoms, bonds)]
    common = max(scales)
    legends = list(legends) if legends is not None else ["" for _ in mols]
    if len(legends) != len(mols):
        raise InputError(f"expected one legend per molecule ({len(mols)}); got {len(legends)}")
    if not shared_scale:
        legends = [f"{text}  (scale {s:.3g})".strip() for text, s in zip(legends, scales)]
    rows = math.ceil(len(mols) / columns)
    width, height = panel[0] * min(columns, len(mols)), panel[1] * rows
    bar = COLOUR_BAR_HEIGHT if shared_scale else 0
    drawer = _drawer(image_format, width, height + bar, panel[0], panel[1])
    atom_maps, bond_maps = [], []
    for a, b, s in zip(atoms, bonds, scales):
        use = common if shared_scale else s
        atom_maps.append(_highlights(a, use, threshold))
        bond_maps.append({} if b is None else _highlights(b, use, threshold))
    drawer.DrawMolecules(mols, highlightAtoms=[list(m) for m in atom_maps], highlightAtomColors=atom_maps,
                         highlightBonds=[list(m) for m in bond_maps], highlightBondColors=bond_maps,
                         legends=legends)
    if shared_scale:
        _colour_bar(drawer, 0.5 * width - min(0.3 * width, 180), height, min(0.6 * width, 360), common)
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    if image_format == "svg" and any(legends):
        text = _with_svg_title(text, " | ".join(legends))
    return text


def save_picture(picture: Picture, path: str | os.PathLike) -> Path:
    """Write an SVG string or PNG bytes to ``path`` (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(picture, bytes):
        path.write_bytes(picture)
    elif isinstance(picture, str):
        path.write_text(picture)
    else:
        raise InputError(f"expected SVG text or PNG bytes; got {describe(picture)}")
    return path


def _format_of(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".svg", ".png"):
        raise InputError(f"expected a picture path ending in .svg or .png; got {os.fspath(path)!r}")
    return suffix[1:]


# ---------------------------------------------------------------------------------------- pair heat map
def pair_matrix(n_atoms: int, pair_index, pair_values, atom_values=None) -> np.ndarray:
    """Symmetric ``(n_atoms, n_atoms)`` matrix of pair attributions, atom attributions on the diagonal.

    ``pair_index`` is ``(2, n_pairs)`` (atom rows of each pair), ``pair_values`` ``(n_pairs,)``;
    a pair listed in both directions has its values summed.
    """
    index = np.asarray(pair_index.detach().cpu() if hasattr(pair_index, "detach") else pair_index,
                       dtype=np.int64)
    if index.ndim != 2 or index.shape[0] != 2:
        raise InputError(f"expected pair_index of shape (2, n_pairs); got {index.shape}")
    values = _as_values(pair_values, index.shape[1], "pair")
    if index.size and (index.min() < 0 or index.max() >= n_atoms):
        raise InputError(f"expected pair atom indices in [0, {n_atoms - 1}]; got [{index.min()}, {index.max()}]")
    matrix = np.zeros((n_atoms, n_atoms))
    np.add.at(matrix, (index[0], index[1]), values)
    matrix = matrix + matrix.T
    np.fill_diagonal(matrix, 0.0 if atom_values is None else _as_values(atom_values, n_atoms, "atom"))
    return matrix


def _atom_labels(mol, n: int) -> list[str]:
    """``<element><index>``: the input index when the atom carries it (``atomNote``), else RDKit's."""
    if mol is None:
        return [str(i) for i in range(n)]
    return [f"{atom.GetSymbol()}{atom.GetProp('atomNote') if atom.HasProp('atomNote') else atom.GetIdx()}"
            for atom in mol.GetAtoms()]


def pair_heatmap(matrix, mol=None, *, title: str | None = None, scale: float | None = None, ax=None):
    """Heat map of an atom x atom attribution matrix (see :func:`pair_matrix`).

    Returns the matplotlib ``Figure``; rows and columns are labelled ``<element><index>`` when
    ``mol`` is given. Red is positive, blue negative, on a symmetric scale.
    """
    pyplot = require("matplotlib.pyplot", "viz")
    colors = require("matplotlib.colors", "viz")
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise InputError(f"expected a square (n_atoms, n_atoms) matrix; got shape {m.shape}")
    if mol is not None and _check_mol(mol).GetNumAtoms() != m.shape[0]:
        raise InputError(f"expected a {mol.GetNumAtoms()} x {mol.GetNumAtoms()} matrix for this molecule; "
                         f"got {m.shape}")
    if not np.isfinite(m).all():
        raise InputError("expected finite matrix entries; got NaN or infinite values")
    half = symmetric_scale(m) if scale is None else float(scale)
    half = half if half > 0 else 1.0
    cmap = colors.LinearSegmentedColormap.from_list("sciattr_signed", [NEGATIVE, WHITE, POSITIVE])
    if ax is None:
        side = min(4.0 + 0.18 * m.shape[0], 14.0)
        figure, ax = pyplot.subplots(figsize=(side + 1.2, side))
    else:
        figure = ax.figure
    image = ax.imshow(m, cmap=cmap, vmin=-half, vmax=half, interpolation="nearest")
    labels = _atom_labels(mol, m.shape[0])
    ticks = np.arange(m.shape[0])
    font = max(4, min(9, int(240 / max(m.shape[0], 1))))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=font)
    ax.set_yticks(ticks, labels, fontsize=font)
    ax.set_title(title or "atom-pair attributions (atoms on the diagonal)", fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attribution")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------- MoleculeAttribution helpers
def _values(tensor) -> np.ndarray:
    return np.asarray(tensor.detach().cpu().double().numpy() if hasattr(tensor, "detach") else tensor,
                      dtype=np.float64)


def _molecule_view(result, index: int, target=None, view: str = "complete"):
    """``(mol, atom values, bond values, prediction, gap, baseline score)`` of molecule ``index``;
    ``mol`` is a copy whose atoms carry their input index as a note."""
    n = result.n_examples
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise InputError(f"expected a molecule index in [0, {n - 1}]; got {index!r}")
    chem = require("rdkit.Chem", "chem")
    mol = chem.Mol(result.molecules[index])
    for atom, source in zip(mol.GetAtoms(), result.input_atoms(index)):
        atom.SetProp("atomNote", str(source))
    atoms = _values(result.atom_values(index, target, view=view))
    bonds = _values(result.bond_values(index, target))
    prediction = _scalar(result, result.forward_x[index], target)
    gap = _scalar(result, result.completeness_gap[index], target)
    baseline = _scalar(result, result.forward_baseline[index], target)
    return mol, atoms, bonds, prediction, gap, baseline


def _scalar(result, value, target=None) -> float:
    """One number of a per-example value: the ``target`` column of a multi-target result."""
    return float(result._task_column(value, target))


def _left_out(result, index: int) -> str:
    notes = result.notes[index] if index < len(result.notes) else ()
    return "atoms left out (see notes)" if any("left out" in str(n) for n in notes) else ""


@renamed_keywords
def draw_attribution(result, index: int = 0, path: str | os.PathLike | None = None, *,
                     target=None, title: str | None = None, view: str = "complete", **options) -> Picture:
    """Picture of molecule ``index`` of a ``MoleculeAttribution`` (atoms, bonds, F(x), F(x'), gap).

    Atom colours are the complete atom scores (``view="features"``: the atom features only);
    atoms are labelled with their input index. Bond colours are the attributions of the pair (or
    both directed edges) of each bond; pairs that are not bonds are not drawn (see
    :func:`attribution_heatmap`). With ``path`` (``.svg`` or ``.png``) the picture is also
    written there; ``target`` picks a column (index or task name) of a multi-target result.
    """
    mol, atoms, bonds, prediction, gap, baseline = _molecule_view(result, index, target, view)
    if path is not None:
        options.setdefault("image_format", _format_of(path))
    name = title if title is not None else result.meta.get("model")
    extra = _left_out(result, index)
    if extra:
        name = f"{name}  ({extra})" if name else f"({extra})"
    picture = draw_molecule(mol, atoms, bonds, prediction=prediction, completeness_gap=gap,
                            baseline_score=baseline, title=name, **options)
    if path is not None:
        save_picture(picture, path)
    return picture


@renamed_keywords
def attribution_heatmap(result, index: int = 0, *, target=None, **options):
    """Atom x atom heat map of molecule ``index`` of a ``MoleculeAttribution``: pair (or edge)
    attributions off the diagonal, atom-feature attributions on it (the diagonal and the halves
    of its row and column add up to the atom's complete score). Rows and columns are labelled with
    input atom indices. Returns a matplotlib ``Figure``."""
    mol, _, _, _, _, _ = _molecule_view(result, index, target)
    features = _values(result.atom_feature_values(index, target))
    ends = result.link_atoms(index).cpu().numpy()
    matrix = pair_matrix(mol.GetNumAtoms(), ends, _values(result.link_values(index, target)), features)
    return pair_heatmap(matrix, mol, **options)


@renamed_keywords
def draw_attribution_grid(result, indices: Sequence[int] | None = None, *, target=None,
                          view: str = "complete", **options) -> Picture:
    """Grid picture of several molecules of a ``MoleculeAttribution`` (default: all), complete atom
    scores by default; legends give the input row, F(x), F(x') and the gap."""
    chosen = list(range(result.n_examples)) if indices is None else list(indices)
    views = [_molecule_view(result, i, target, view) for i in chosen]
    options.setdefault("legends", [f"#{result.rows[i]}  F(x) {v[3]:.3g}  F(x') {v[5]:.3g}  gap {v[4]:.1e}"
                                   + ("  *" if _left_out(result, i) else "")
                                   for i, v in zip(chosen, views)])
    return draw_grid([v[0] for v in views], [v[1] for v in views], [v[2] for v in views], **options)
