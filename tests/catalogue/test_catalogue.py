"""Runs the catalogue of bad input (bad_inputs.py): each case must behave as the catalogue says."""

from __future__ import annotations

import csv
import json
import pickle
import re
import shutil
import time
import warnings
from pathlib import Path

import pytest
import torch
from bad_inputs import (
    AREAS,
    CASES,
    MAX_ATOMS,
    FiniteOrRaises,
    Raises,
    RowError,
    RowNote,
    RowOk,
    float32_linear,
    width4_linear,
    x3,
)

import sciattr
from sciattr.errors import SciAttrError

pytest.importorskip("rdkit")

F64 = torch.float64
FACTORIES = (float32_linear, width4_linear)
XFAIL: dict[str, str] = {}


def test_catalogue_is_complete():
    from sciattr.chem.featurize import MAX_ATOMS as featurizer_max

    assert MAX_ATOMS == featurizer_max
    ids = [f"{c.entry}:{c.id}" for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 80
    counts = {area: sum(c.entry in entries for c in CASES) for area, entries in AREAS.items()}
    assert counts["engine"] >= 20 and counts["molecules"] >= 30 and counts["texts"] >= 20, counts


# ---------------------------------------------------------------------------------------- shared models
@pytest.fixture(scope="module")
def weave():
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.weave import W2N2

    feat = SimpleWeaveFeaturizer()
    torch.manual_seed(0)
    model = W2N2(feat.n_atom_features, feat.n_pair_features, 1, n_hidden=8, n_atom_hidden=8, n_dense=8).double()
    return model, feat


WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "more", "than"]


@pytest.fixture(scope="module")
def classifier():
    from sciattr.text.classifier import LSTMTopicClassifier
    from sciattr.text.corpus import PAD, UNK, Vocabulary

    torch.manual_seed(0)
    vocab = Vocabulary([PAD, UNK] + WORDS)
    return LSTMTopicClassifier(len(vocab), ["business", "sports"], 6, 6, dropout=0.0).double().eval(), vocab


@pytest.fixture(scope="module")
def lm():
    from sciattr.text.corpus import EOS, UNK, Vocabulary
    from sciattr.text.lstm_lm import LSTMLanguageModel

    torch.manual_seed(0)
    vocab = Vocabulary([UNK, EOS] + WORDS)
    return LSTMLanguageModel(len(vocab), 6, 6, dropout=0.0).double().eval(), vocab


# ---------------------------------------------------------------------------------------- expectations
def _raises(expect: Raises, call):
    with pytest.raises(SciAttrError) as info:
        call()
    assert isinstance(info.value, expect.error), f"expected {expect.error.__name__}; got {info.value!r}"
    assert re.search(expect.fragment, str(info.value)), f"{expect.fragment!r} not in: {info.value}"
    return info.value


def _finite_result(res, example: int | None = None):
    assert isinstance(res, sciattr.Attribution)
    for name, a in res.attributions.items():
        if example is not None and res.segments is not None and name in res.segments:
            a = a[res.segments[name] == example]
        elif example is not None:
            a = a[example]
        assert torch.isfinite(a).all(), f"non-finite attributions of {name!r}"
    gap = res.completeness_gap if example is None else res.completeness_gap[example]
    assert torch.isfinite(gap).all(), "the completeness gap is not finite"


def _row_check(expect, res, row: int = 0, others=(1,)):
    errors = {e["row"]: e["message"] for e in res.errors}
    for other in others:
        assert other in res.rows, f"row {other} was not processed: {errors.get(other)}"
    assert len(res.rows) + len(res.errors) == 1 + len(others), "a row is missing from the result"
    if isinstance(expect, RowError):
        assert row in errors, f"row {row} was processed; expected the error {expect.fragment!r}"
        assert re.search(expect.fragment, errors[row]), f"{expect.fragment!r} not in: {errors[row]}"
        return
    assert row in res.rows, f"row {row} was not processed: {errors.get(row)}"
    i = res.rows.index(row)
    _finite_result(res, i)
    if isinstance(expect, RowNote):
        notes = res.notes[i] if i < len(res.notes) else []
        assert any(re.search(expect.fragment, n) for n in notes), f"{expect.fragment!r} not in notes {notes}"
    elif isinstance(expect, RowOk) and expect.atoms is not None:
        got = tuple((a["index"], a["symbol"]) for a in res.to_atoms(i))
        assert got == expect.atoms, f"atoms shown {got}; the input's atoms are {expect.atoms}"
    return i


def _run(case, call, row_check=None):
    expect = case.expect
    if isinstance(expect, Raises):
        return _raises(expect, call)
    if isinstance(expect, FiniteOrRaises):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = call()
        except SciAttrError as exc:
            assert isinstance(exc, expect.error) and re.search(expect.fragment, str(exc)), repr(exc)
            return exc
        _finite_result(res)
        return res
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = call()
    if row_check is not None:
        row_check(expect, res)
    return res


# ---------------------------------------------------------------------------------------- runners
def run_engine(case, tmp_path, fixtures):
    model, inputs, options = case.input
    if model in FACTORIES:
        model = model()
    _run(case, lambda: sciattr.integrated_gradients(model, inputs, **options))


def check_nan_side_column(tmp_path, fixtures):
    from bad_inputs import nan_side_column

    x = x3()
    res = sciattr.integrated_gradients(nan_side_column, x, target=0, steps=8)
    torch.testing.assert_close(res.attributions["input"], x)  # linear: IG = x - 0 exactly
    assert torch.isfinite(res.completeness_gap).all()


def check_gauss_legendre_fast(tmp_path, fixtures):
    from sciattr.core.quadrature import quadrature

    start = time.perf_counter()
    alphas, weights = quadrature("gausslegendre", 4000)
    assert time.perf_counter() - start < 1.0
    assert abs(float(weights.sum()) - 1.0) < 1e-10 and 0 < float(alphas.min()) and float(alphas.max()) < 1
    x = x3(2)
    res = sciattr.integrated_gradients(lambda t: (t ** 2).sum(-1), x, steps=4000, rule="gausslegendre")
    torch.testing.assert_close(res.attributions["input"], x ** 2)  # exact for a quadratic


def check_batch_norm_untouched(tmp_path, fixtures):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)).double()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning):
        res = sciattr.integrated_gradients(model, x3(), target=0, steps=8)
    assert model.training
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed"
    _finite_result(res)


def run_engine_check(case, tmp_path, fixtures):
    globals()[f"check_{case.expect.name}"](tmp_path, fixtures)


def _explain(model, items, **options):
    from sciattr.chem.adapter import explain_molecules

    return explain_molecules(model, items, steps=32, **options)


def run_molecule_row(case, tmp_path, fixtures):
    model, feat = fixtures["weave"]
    _run(case, lambda: _explain(model, [case.input, "CCO"], featurizer=feat), _row_check)


def run_molecule_alone(case, tmp_path, fixtures):
    model, feat = fixtures["weave"]
    _run(case, lambda: _explain(model, [case.input], featurizer=feat), lambda e, r: _row_check(e, r, others=()))


def run_molecule_call(case, tmp_path, fixtures):
    from sciattr.chem.featurize import Chem, SimpleWeaveFeaturizer, WeaveFeaturizer

    model, feat = fixtures["weave"]
    params = dict(case.params)
    items = case.input
    if params.get("featurizer") == "WeaveFeaturizer":
        params["featurizer"] = WeaveFeaturizer()
    elif params.get("featurizer") == "max_links":
        params["featurizer"] = SimpleWeaveFeaturizer(max_distance=None, max_links=1000)
    else:
        params.setdefault("featurizer", feat)
    if items == "unsanitizable":
        items = [Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False), "CC"]
    _run(case, lambda: _explain(model, items, **params), _row_check)


def run_molecule_zoo(case, tmp_path, fixtures):
    from sciattr.zoo import load_model

    model = load_model(case.params["model"])
    _run(case, lambda: _explain(model, [case.input, "CCO"]), _row_check)


def _batch_table(out: Path) -> list[dict]:
    for name in ("molecules.csv", "attributions.csv"):
        if (out / name).is_file():
            with (out / name).open(newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
    from sciattr.run import merge

    return merge(out).to_dict("records")


def _check_rows(table: list[dict], rows: tuple):
    assert len(table) == len(rows), f"{len(table)} output rows for {len(rows)} input rows"
    if table and "row" in table[0]:
        assert [int(r["row"]) for r in table] == list(range(len(rows))), "rows out of order"
    for k, (got, want) in enumerate(zip(table, rows)):
        if isinstance(want, tuple):
            assert got["status"] == "ok", f"row {k}: {got.get('error')}"
            assert re.search(want[1], str(got.get("notes") or "")), f"row {k}: {want[1]!r} not in {got.get('notes')!r}"
        elif want == "ok":
            assert got["status"] == "ok", f"row {k}: {got.get('error')}"
        else:
            assert got["status"] == "error", f"row {k} processed; expected {want!r}"
            assert re.search(want, str(got["error"])), f"row {k}: {want!r} not in {got['error']!r}"


def _cli(argv, capsys):
    from sciattr.cli import main

    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def run_molecule_file(case, tmp_path, fixtures):
    name, content = case.input
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    code, err = _cli(["molecule", "--file", path, "--out-dir", out], fixtures["capsys"])
    expect = case.expect
    assert code == expect.code, f"exit code {code}; stderr: {err}"
    if expect.code != 0:
        assert re.search(expect.fragment, err), f"{expect.fragment!r} not in stderr: {err}"
        return
    assert "Traceback" not in err
    _check_rows(_batch_table(out), expect.rows)


def run_text_file(case, tmp_path, fixtures):
    name, content = case.input
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    code, err = _cli(["text", "--file", path, "--out-dir", out], fixtures["capsys"])
    assert code == case.expect.code, f"exit code {code}; stderr: {err}"
    assert "Traceback" not in err
    _check_rows(_batch_table(out), case.expect.rows)


def _prepare_cli_files(tmp: Path):
    (tmp / "in.csv").write_text("smiles\nCCO\n")
    (tmp / "good.csv").write_text("smiles\nCCO\n")
    (tmp / "in.txt").write_text("the cat\n")
    (tmp / "blocker").write_text("a file where a folder is wanted\n")
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp / "badwords.txt").write_text("\n42\n")
    (tmp / "emptydir").mkdir()


def run_cli(case, tmp_path, fixtures):
    _prepare_cli_files(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.input]
    if case.id == "molecule-unwritable-out":
        argv[argv.index("--out") + 1] = str(tmp_path / "blocker" / "r.html")
    start = time.perf_counter()
    code, err = _cli(argv, fixtures["capsys"])
    assert code == case.expect.code, f"exit code {code}; stderr: {err}"
    assert re.search(case.expect.fragment, err), f"{case.expect.fragment!r} not in stderr: {err}"
    assert "Traceback" not in err
    if case.id in ("molecule-unwritable-out", "molecule-out-is-a-folder-file"):
        assert time.perf_counter() - start < 5, "an unwritable output must be refused before the work"


def run_classifier_row(case, tmp_path, fixtures):
    from sciattr.text.classifier import classifier_attribution

    model, vocab = fixtures["classifier"]
    text, target = case.input
    _run(case, lambda: classifier_attribution(model, vocab, [text, "the cat"], [target, None], steps=8,
                                              max_length=10), _row_check)


def run_lm_row(case, tmp_path, fixtures):
    from sciattr.text.lstm_lm import lm_attribution

    model, vocab = fixtures["lm"]
    text, target = case.input
    _run(case, lambda: lm_attribution(model, vocab, [text, "the cat"], [target, None], steps=8), _row_check)


def run_text_call(case, tmp_path, fixtures):
    kind, a, b = case.input
    if kind == "classifier":
        from sciattr.text.classifier import classifier_attribution

        call = lambda: classifier_attribution(*fixtures["classifier"], a, b, steps=4)
    elif kind == "lm":
        from sciattr.text.lstm_lm import lm_attribution

        call = lambda: lm_attribution(*fixtures["lm"], a, b, steps=4)
    elif kind == "attribute_texts":
        from sciattr.text.report import attribute_texts

        call = lambda: attribute_texts(a, b)
    else:
        from sciattr.text.report import read_batch_file

        path = Path(a.replace("{tmp}", str(tmp_path)))
        if b is not None:
            path.write_bytes(b)
        call = lambda: read_batch_file(path)
    _run(case, call)


@pytest.fixture(scope="module")
def g2p_model():
    from sciattr.text.seq2seq import load_g2p

    return load_g2p()


def run_g2p_row(case, tmp_path, fixtures):
    from sciattr.text.seq2seq import attribute_g2p

    model = fixtures["g2p"]
    _run(case, lambda: attribute_g2p([case.input, "cat"], model=model, steps=8), _row_check)


def _hf_folder(tmp: Path, how: str) -> Path:
    folder = tmp / "hf"
    folder.mkdir()
    if how == "empty":
        return folder
    if how == "config_without_model_type":
        (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "num_labels": 2}))
        return folder
    if how == "config_not_json":
        (folder / "config.json").write_text("{oops")
        return folder
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=8, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat")
    weights = folder / "model.safetensors"
    if how == "config_without_weights":
        weights.unlink()
    elif how == "renamed_weights":
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        save_file({f"renamed.{k}": v for k, v in state.items()}, str(weights), metadata={"format": "pt"})
    return folder


def _text_zoo_folder(tmp: Path, how: str) -> Path:
    from safetensors.torch import load_file, save_file

    from sciattr.zoo.text_models import ZOO_TEXT

    folder = tmp / "zoo"
    folder.mkdir()
    for p in ZOO_TEXT.glob("topic_classifier*"):
        shutil.copy(p, folder / p.name)
    weights = folder / "topic_classifier.safetensors"
    state = load_file(str(weights))
    if how == "renamed_weights":
        save_file({f"renamed.{k}": v for k, v in state.items()}, str(weights))
    elif how == "missing_weights":
        dropped = min(state)
        save_file({k: v for k, v in state.items() if k != dropped}, str(weights))
    elif how == "wrong_shape":
        key = min(state)
        save_file({**state, key: torch.zeros(3, 3, dtype=state[key].dtype)}, str(weights))
    return folder


def run_model_folder(case, tmp_path, fixtures):
    loader, how = case.input
    if loader == "hf":
        from sciattr.text.huggingface import load_local_model

        folder = _hf_folder(tmp_path, how)
        _run(case, lambda: load_local_model(folder))
    else:
        from sciattr.zoo.text_models import load_topic_classifier

        folder = _text_zoo_folder(tmp_path, how)
        _run(case, lambda: load_topic_classifier(folder=folder))


class _Evil:
    def __reduce__(self):
        return (print, ("a pickle was executed",))


def _small_result():
    x = x3(2)
    return sciattr.integrated_gradients(lambda t: (t ** 2).sum(-1), x, steps=8)


def run_saved_file(case, tmp_path, fixtures):
    path = tmp_path / "result.safetensors"
    kind = case.input
    loader = sciattr.load
    if isinstance(kind, bytes):
        path.write_bytes(kind)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"attributions": [1.0]}))
    elif kind == "malicious_pickle":
        path.write_bytes(pickle.dumps(_Evil()))
    elif kind == "torch_save":
        torch.save({"state": {"x": torch.ones(2)}}, path)
    elif kind == "plain_safetensors":
        from safetensors.torch import save_file

        save_file({"x": torch.ones(2)}, str(path))
    elif kind == "truncated":
        raw = _small_result().save(path).read_bytes()
        path.write_bytes(raw[:-24])
    elif kind == "base_as_molecule":
        from sciattr.chem.adapter import MoleculeAttribution

        _small_result().save(path)
        loader = MoleculeAttribution.load
    _run(case, lambda: loader(path))


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.entry}:{c.id}", marks=(
    [pytest.mark.xfail(strict=True, reason=XFAIL[c.id])] if c.id in XFAIL else [])) for c in CASES])
def test_case(case, tmp_path, request, capsys):
    fixtures = {"capsys": capsys}
    needs = {"molecule_row": "weave", "molecule_alone": "weave", "molecule_call": "weave",
             "classifier_row": "classifier", "lm_row": "lm", "text_call": None, "g2p_row": "g2p_model"}
    if case.entry == "text_call":
        fixtures["classifier"] = request.getfixturevalue("classifier")
        fixtures["lm"] = request.getfixturevalue("lm")
    elif needs.get(case.entry):
        key = needs[case.entry]
        fixtures[key.removesuffix("_model")] = request.getfixturevalue(key)
    globals()[f"run_{case.entry}"](case, tmp_path, fixtures)

