"""Tutorial 08 (ground truth) runs in fast mode within a minute of CPU and its numbers tell its story."""

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_08_ground_truth(tmp_path):
    pytest.importorskip("rdkit")
    pytest.importorskip("torch_geometric")
    from PIL import Image

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", SCIATTR_FAST="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(ROOT / "tutorials" / "08_ground_truth.py"), "--out", str(tmp_path)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert cpu < 60, f"fast mode took {cpu:.0f} s of CPU"

    assert "(halide AND carbonyl) OR nitro" in out
    assert number(r"model: test ROC AUC ([\d.]+)", out) > 0.9
    complete = number(r"attribution AUROC, complete atom scores: ([\d.]+)", out)
    features = number(r"attribution AUROC, feature-only atom scores: ([\d.]+)", out)
    # feature-only atom scores miss what the network reads from bonds: far below the complete scores
    assert complete > 0.8 and complete - features > 0.1
    assert number(r"max relative completeness gap: ([\d.e+-]+)", out) < 0.05
    # the plain model's zeros baseline is already "active" for most positives, and sciattr says so
    assert number(r"F\(x'\) > 0 \(already 'active'\) for (\d+)% of the positives", out) >= 50
    assert "BaselineWarning raised: True" in out and "same side of the decision threshold" in out
    # the saturated carbon skeleton is an 'inactive' molecule for this model (unlike its zeros baseline), and
    # its attributions find the rule's atoms
    assert number(r"skeleton baseline \(every atom a carbon, every bond single\): attribution AUROC ([\d.]+)", out) > 0.9
    assert number(r"skeleton baseline .*; mean F\(x'\) ([-\d.e+]+)", out) < 0
    # expected gradients over inactive references explain the decision better than the zeros baseline
    expected = number(r"inactive reference molecules: attribution AUROC ([\d.]+)", out)
    assert expected > complete + 0.03
    assert number(r"mean F\(x'\) ([-\d.e+]+)", out) < 0
    # training with the zeros baseline anchored at logit 0 makes it neutral, and better read
    anchored = number(r"attribution AUROC complete ([\d.]+), feature-only", out)
    assert abs(number(r"anchored model: test ROC AUC [\d.]+; median F\(x'\) ([-\d.e+]+)", out)) < 0.5
    assert anchored > complete
    # the shipped seed ensemble: its attributions are its networks' mean, and it scores above their mean
    members = [float(v) for v in re.findall(r"seed \d ([\d.]+)", out)]
    ensemble = number(r"\(mean [\d.]+\); ensemble: ([\d.]+)", out)
    assert len(members) == 3 and ensemble > sum(members) / 3
    assert number(r"max \|difference\| ([\d.e+-]+) \(linearity\)", out) < 1e-4
    # the networks need the halogen (deleting it flips the decision), yet from zeros the attribution credits
    # it with <= 0 in some of those molecules; from the skeleton in none
    flips = {label: [int(v) for v in re.search(label + r" baseline: of (\d+) molecules whose decision the deletion "
                                               r"flips, the attribution credits the halogens with <= 0 in (\d+)",
                                               out).groups()] for label in ("zeros", "skeleton")}
    assert flips["zeros"][0] >= 10 and flips["zeros"][0] == flips["skeleton"][0]
    assert flips["zeros"][1] >= 1 and flips["skeleton"][1] == 0
    table = (tmp_path / "08_ground_truth.txt").read_text().splitlines()
    assert len(table) == 8 and float(table[1].split()[-1]) == pytest.approx(complete, abs=1e-3)
    by_label = {line[:52].strip(): float(line.split()[-1]) for line in table[1:]}
    assert by_label["shipped seed ensemble (its own test split)"] == pytest.approx(ensemble, abs=1e-3)
    assert by_label["saturated carbon skeleton baseline"] == pytest.approx(
        number(r"skeleton baseline \(every atom a carbon, every bond single\): attribution AUROC ([\d.]+)", out),
        abs=1e-3)
    for name in ("08_complete.png", "08_feature-only.png", "08_expected_gradients.png", "08_anchored.png",
                 "08_ensemble.png"):
        with Image.open(tmp_path / name) as picture:
            assert min(picture.size) >= 200
