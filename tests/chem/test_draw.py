"""Pictures: signed colours, SVG/PNG molecule drawings, grids and the pair heat map."""

import io
import re
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from rdkit import Chem

from sciattr.chem import W2N2, SimpleWeaveFeaturizer
from sciattr.chem.adapter import explain_molecules
from sciattr.chem.draw import (
    NEGATIVE,
    POSITIVE,
    attribution_heatmap,
    draw_attribution,
    draw_attribution_grid,
    draw_grid,
    draw_molecule,
    pair_heatmap,
    pair_matrix,
    signed_colour,
    symmetric_scale,
)
from sciattr.errors import InputError

matplotlib.use("Agg")

ASPIRIN = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")  # 13 atoms, 13 bonds


def _same_colour(hex_colour: str, rgb) -> bool:
    """RDKit writes ``int(255 * c)``: allow one unit of rounding."""
    got = [int(hex_colour[k:k + 2], 16) for k in (1, 3, 5)]
    return all(abs(g - 255 * c) <= 1 for g, c in zip(got, rgb))


def _atom_fills(svg: str) -> dict[int, str]:
    """Fill colour of the highlight ellipse of every coloured atom."""
    fills = {}
    for match in re.finditer(r"<ellipse[^>]*class='atom-(\d+)'[^>]*style='fill:(#[0-9A-F]{6})", svg):
        fills[int(match.group(1))] = match.group(2)
    return fills


def test_signed_colours_are_symmetric():
    assert signed_colour(2.0, 2.0) == pytest.approx(POSITIVE)
    assert signed_colour(-2.0, 2.0) == pytest.approx(NEGATIVE)
    assert signed_colour(0.0, 2.0) == (1.0, 1.0, 1.0)
    assert signed_colour(1.0, 2.0) == pytest.approx(tuple((1 + c) / 2 for c in POSITIVE))
    assert signed_colour(5.0, 2.0) == pytest.approx(POSITIVE)  # clipped
    assert symmetric_scale([1.0, -3.0], [2.0]) == 3.0 and symmetric_scale([0.0]) == 0.0


def test_svg_colours_exactly_the_nonzero_atoms_with_their_signs():
    values = np.zeros(13)
    values[[0, 4, 7]] = [1.0, -2.0, 0.5]
    svg = draw_molecule(ASPIRIN, values, prediction=0.9, completeness_gap=1e-4, title="test")
    ET.fromstring(svg.encode("latin-1"))  # valid XML
    fills = _atom_fills(svg)
    assert sorted(fills) == [0, 4, 7]
    assert _same_colour(fills[4], NEGATIVE)  # the largest magnitude sets the scale
    assert _same_colour(fills[0], signed_colour(1.0, 2.0))
    assert _same_colour(fills[7], signed_colour(0.5, 2.0))


def test_bond_values_colour_bonds_and_share_the_scale():
    bonds = np.zeros(13)
    bonds[2] = 4.0
    svg = draw_molecule(ASPIRIN, np.ones(13), bonds)
    assert "class='bond-2 atom-" in svg
    assert _same_colour(_atom_fills(svg)[0], signed_colour(1.0, 4.0))


def test_png_has_red_and_blue_pixels():
    values = np.linspace(-1.0, 1.0, 13)
    png = draw_molecule(ASPIRIN, values, image_format="png", size=(400, 360))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert image.shape == (360, 400, 3)
    red = (np.abs(image - np.array(POSITIVE) * 255).sum(-1) < 30).sum()
    blue = (np.abs(image - np.array(NEGATIVE) * 255).sum(-1) < 30).sum()
    assert red > 100 and blue > 100


def test_all_zero_values_colour_nothing():
    svg = draw_molecule(ASPIRIN, np.zeros(13))
    assert _atom_fills(svg) == {}


@pytest.mark.parametrize("values, message", [(np.ones(12), "13 atom values"), (np.full(13, np.nan), "finite")])
def test_bad_values_are_rejected(values, message):
    with pytest.raises(InputError, match=message):
        draw_molecule(ASPIRIN, values)


def test_grid_colours_every_panel():
    benzene = Chem.MolFromSmiles("c1ccccc1")
    svg = draw_grid([ASPIRIN, benzene], [np.ones(13), -np.ones(6)], legends=["a", "b"])
    ET.fromstring(svg.encode("latin-1"))
    assert len(re.findall(r"<ellipse[^>]*class='atom-", svg)) == 19
    with pytest.raises(InputError, match="one attribution array per molecule"):
        draw_grid([ASPIRIN], [np.ones(13), np.ones(6)])


def test_pair_matrix_and_heatmap():
    m = pair_matrix(4, np.array([[0, 1], [1, 3]]), [0.5, -0.25], atom_values=[1.0, 2.0, 3.0, 4.0])
    expected = np.array([[1.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.0, -0.25], [0.0, 0.0, 3.0, 0.0], [0.0, -0.25, 0.0, 4.0]])
    np.testing.assert_array_equal(m, expected)
    figure = pair_heatmap(m, Chem.MolFromSmiles("CCCO"))
    image = figure.axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), expected)
    assert image.get_clim() == (-4.0, 4.0)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["C0", "C1", "C2", "O3"]
    with pytest.raises(InputError, match="square"):
        pair_heatmap(np.ones((2, 3)))


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    featurizer = SimpleWeaveFeaturizer()
    model = W2N2(featurizer.n_atom_features, featurizer.n_pair_features, 1).double().eval()
    res = explain_molecules(model, ["CC(=O)Oc1ccccc1C(=O)O", "c1ccncc1"], featurizer=featurizer, steps=32)
    res.meta["model"] = "random w2n2"
    return res


def test_helpers_draw_a_molecule_attribution(result, tmp_path):
    path = tmp_path / "aspirin.svg"
    svg = draw_attribution(result, 0, path)
    assert path.read_text() == svg
    atoms = result.atom_values(0).numpy()
    scale = symmetric_scale(atoms, result.bond_values(0).numpy())
    fills = _atom_fills(svg)
    assert sorted(fills) == [k for k, v in enumerate(atoms) if abs(v) > 1e-3 * scale]
    top = int(np.argmax(np.abs(atoms)))
    rescaled = _atom_fills(draw_attribution(result, 0, scale=float(abs(atoms[top]))))
    assert _same_colour(rescaled[top], POSITIVE if atoms[top] > 0 else NEGATIVE)
    png_path = tmp_path / "aspirin.png"
    draw_attribution(result, 0, png_path)
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    grid = draw_attribution_grid(result)
    assert len(re.findall(r"<ellipse[^>]*class='atom-", grid)) >= len(fills)


def test_heatmap_of_an_attribution_has_atoms_on_the_diagonal(result):
    figure = attribution_heatmap(result, 1)
    data = figure.axes[0].images[0].get_array()
    # diagonal: atom-feature attributions; off the diagonal: pairs, once in each triangle
    np.testing.assert_allclose(np.diag(data), result.atom_feature_values(1).numpy())
    np.testing.assert_allclose(data, data.T)
    off = data - np.diag(np.diag(data))
    assert off.sum() / 2 == pytest.approx(float(result.link_values(1).sum()))
    # the diagonal plus half of the atom's row is its complete score (the default atom number)
    np.testing.assert_allclose(np.diag(data) + off.sum(1) / 2, result.atom_values(1).numpy(), rtol=1e-10, atol=1e-12)
    assert np.triu(data).sum() == pytest.approx(float(result.per_example()[1]), rel=1e-10)
