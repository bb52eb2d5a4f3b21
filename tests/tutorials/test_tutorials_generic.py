"""The generic tutorials run top to bottom in fast mode and print sane numbers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"


def run_tutorial(name: str, out: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    command = [sys.executable, str(TUTORIALS / name), "--fast", "--out", str(out)]
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_01_axioms(tmp_path):
    out = run_tutorial("01_axioms.py", tmp_path)
    rows = {line.split("  ")[0]: line for line in out.splitlines() if line.endswith(("yes", "NO"))}
    assert len([line for line in out.splitlines() if line.endswith(("yes", "NO"))]) == 7
    assert "NO" not in out and "all axioms hold for integrated gradients: True" in out
    sensitivity = re.split(r"\s{2,}", rows["sensitivity"].strip())
    assert sensitivity[2:6] == ["1", "1", "0", "0"]  # analytic, IG, gradient, gradient x input
    assert "(1.5, -0.5)  (1.5, -0.5)" in out
    assert number(r"90% at alpha = ([\d.]+)", out) == pytest.approx(0.45, abs=0.01)
    assert (tmp_path / "01_axioms.txt").read_text().count("yes") == 7
    assert (tmp_path / "01_sensitivity_path.png").stat().st_size > 1000


def test_06_saturation_interior(tmp_path):
    pytest.importorskip("rdkit")
    from PIL import Image

    out = run_tutorial("06_saturation_interior.py", tmp_path)
    probability, logit = out.split("logit (Fig. 2b)")
    # the probability saturates near the molecule (Fig. 13a): almost nothing changes for 0.9 <= a <= 1
    assert number(r"change left for 0.9 <= a <= 1: mean ([\d.]+)", probability) < 0.01
    assert number(r"largest on the path: median ([\d.e+-]+)", probability) < 1e-2
    assert 0.0 < number(r"change left for 0.9 <= a <= 1: mean ([\d.]+)", logit) < 0.2
    # saturation hides the molecule's features from the plain gradient: the interior gradients' importance
    # at a = 1 is a small fraction of its peak along the path (Fig. 3), however the atoms rank there
    trend = re.search(r"mean \|importance\| at a = [\d. /]+: ([\d.e+-]+) / ([\d.e+-]+) / ([\d.e+-]+) / ([\d.e+-]+)",
                      out)
    values = [float(v) for v in trend.groups()]
    assert values[3] < 0.01 * max(values)
    ring = number(r"atoms, (\d+) in benzene rings", out)
    at_peak = number(r"at the peak of the trend.*\((\d+) in a benzene ring\)", out)
    assert at_peak >= 0.5 * ring
    gap = number(r"completeness gap of the grid: ([-\d.e+]+)\)", out)
    assert abs(gap) < 0.05
    for name in ("06_fig13_probability.png", "06_fig2b_logit.png", "06_fig3_interior_grid.png"):
        assert (tmp_path / name).stat().st_size > 1000
    with Image.open(tmp_path / "06_fig3_interior.gif") as gif:
        assert gif.n_frames >= 20


def test_07_faithfulness(tmp_path):
    pytest.importorskip("rdkit")
    out = run_tutorial("07_faithfulness.py", tmp_path)
    assert number(r"chemistry adapter: max \|difference\| ([\d.e+-]+)", out) < 1e-5
    table = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("integrated_gradients", "gradient", "gradient_x_input", "random"):
            table[cells[0]] = [float(c) for c in cells[1:]]
    assert set(table) == {"integrated_gradients", "gradient", "gradient_x_input", "random"}
    aopc, auroc = 0, 2
    ig, grad, rand = table["integrated_gradients"], table["gradient"], table["random"]
    assert ig[aopc] > rand[aopc] and ig[aopc] > grad[aopc]
    assert ig[auroc] > 0.9 and ig[auroc] > grad[auroc]
    assert 0.3 < rand[auroc] < 0.75
    assert (tmp_path / "07_fig5_aopc.png").stat().st_size > 1000
    assert (tmp_path / "07_faithfulness.txt").read_text().count("\n") == 5
