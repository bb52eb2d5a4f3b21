"""Property-based tests: generated input to the public API and the command line keeps the contract.

The contract: a call returns a result whose attributions are finite and whose completeness gap is
reported (finite), or raises a :class:`sciattr.errors.SciAttrError`; never another exception,
never a NaN without a warning, and a batch accounts for every input row (processed or reported,
in order).

Example budgets come from a Hypothesis profile chosen by ``HYPOTHESIS_PROFILE``: ``ci`` (default:
few examples, derandomized, so a CI run is fast and repeatable) or ``slow`` (many random examples
for a longer hunt), e.g. ``HYPOTHESIS_PROFILE=slow pytest tests/test_properties.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sciattr
from sciattr.errors import SciAttrError

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                                       HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=10, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("slow", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def budget(factor: float):
    """An example budget scaled from the profile's (cheap properties get more examples)."""
    return settings(max_examples=max(2, round(settings.default.max_examples * factor)))


F64 = torch.float64


# ---------------------------------------------------------------------------------------- the contract
def _finite_rows(res, example: int):
    for name, a in res.attributions.items():
        a = a[res.segments[name] == example] if res.segments is not None and name in res.segments else a[example]
        assert torch.isfinite(a).all(), f"example {example}: non-finite attributions of {name!r}"
    assert torch.isfinite(res.completeness_gap[example]).all(), f"example {example}: the gap is not finite"


def keeps_contract(call, n_rows: int | None = None):
    """Run ``call``: a SciAttrError is fine; a result must be finite and account for every row."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = call()
        except SciAttrError as exc:
            assert str(exc).strip(), "an error without a message"
            return exc
    assert isinstance(res, sciattr.Attribution), f"expected an Attribution; got {type(res).__name__}"
    non_finite = any(not torch.isfinite(a).all() for a in res.attributions.values()) or \
        not torch.isfinite(res.completeness_gap).all()
    if non_finite:
        assert caught, "a non-finite result came back without a warning"
    for i in range(res.n_examples):
        _finite_rows(res, i)
    assert res.relative_gap.shape[0] == res.n_examples
    if n_rows is not None:
        rows = list(getattr(res, "rows", range(res.n_examples)))
        errors = [e["row"] for e in getattr(res, "errors", [])]
        assert sorted(rows + errors) == list(range(n_rows)), f"rows {rows} + errors {errors} != {n_rows} rows"
        assert rows == sorted(rows), "processed rows out of order"
        for e in getattr(res, "errors", []):
            assert isinstance(e["message"], str) and e["message"].strip()
    return res


# ---------------------------------------------------------------------------------------- engine
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int32, torch.int64,
          torch.uint8, torch.bool, torch.complex64]
SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, -1e-300, 1e38]


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.randn(shape, generator=g, dtype=F64) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if x.numel() and draw(st.booleans()):
        flat = x.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from(SPECIALS))
    if dtype.is_complex:
        return x.to(dtype)
    if dtype == torch.bool:
        return x > 0
    if not dtype.is_floating_point:
        return torch.nan_to_num(x, 0.0, 0.0, 0.0).clamp(-100, 100).to(dtype)
    return x.to(dtype)


def sum_of_squares(x):
    return (x ** 2).reshape(x.shape[0], -1).sum(-1)


@budget(3)
@given(x=tensors(), options=st.fixed_dictionaries({}, optional={
    "steps": st.one_of(st.integers(-2, 40), st.sampled_from([None, "auto", 2.5, "many"])),
    "rule": st.sampled_from(["trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre",
                             "simpson"]),
    "baselines": st.sampled_from(["zeros", "uniform", 0.5, math.nan, "blur"]),
    "tolerance": st.sampled_from([1e-3, 0.05, 0.0, -1.0]),
    "batch_size": st.sampled_from([1, 3, 0]),
}))
def test_engine_on_any_tensor(x, options):
    keeps_contract(lambda: sciattr.integrated_gradients(sum_of_squares, x, **options))


ACTIVATIONS = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus,
    "abs": torch.abs, "square": torch.square, "sin": torch.sin,
    "sqrt_norm": lambda h: torch.sqrt((h ** 2).sum(-1, keepdim=True)).expand_as(h),
    "log": lambda h: torch.log(h.abs()), "exp": torch.exp, "clamped": lambda h: h.clamp(-0.1, 0.1),
}


class RandomMLP(torch.nn.Module):
    def __init__(self, width_in, widths, activations, seed):
        super().__init__()
        torch.manual_seed(seed)
        dims = [width_in, *widths]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.activations = activations

    def forward(self, x):
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                x = ACTIVATIONS[self.activations[k % len(self.activations)]](x)
        return x


@st.composite
def small_models(draw):
    width_in = draw(st.integers(1, 5))
    widths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    activations = draw(st.lists(st.sampled_from(sorted(ACTIVATIONS)), min_size=1, max_size=3))
    model = RandomMLP(width_in, widths, activations, draw(st.integers(0, 1000))).double()
    if draw(st.booleans()):
        model.train()
    else:
        model.eval()
    return model, width_in, widths[-1]


@budget(3)
@given(spec=small_models(), n=st.integers(1, 4), seed=st.integers(0, 1000),
       target=st.one_of(st.none(), st.integers(-1, 6)),
       steps=st.one_of(st.none(), st.integers(1, 64)),
       rule=st.sampled_from([None, "trapezoid", "riemann_left", "riemann_middle", "gausslegendre"]))
def test_engine_on_random_small_models(spec, n, seed, target, steps, rule):
    model, width_in, _ = spec
    x = torch.randn(n, width_in, dtype=F64, generator=torch.Generator().manual_seed(seed))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    options = {"target": target, "steps": steps, "rule": rule}
    keeps_contract(lambda: sciattr.integrated_gradients(model, x, **options))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items()), "attribution changed the model"


# ---------------------------------------------------------------------------------------- molecules
pytest.importorskip("rdkit")

SEEDS = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CCO", "C1CCCCC1N", "O=C(O)CCl", "c1ccncc1", "CC#N",
         "C[C@H](N)C(=O)O", "C/C=C/C"]
TOKENS = ["C", "c", "N", "n", "O", "o", "S", "F", "Cl", "Br", "I", "P", "B", "[Na+]", "[O-]", "[NH4+]", "[CH3]",
          "[CH2]", "[13CH3]", "[2H]", "[H]", "*", "[*]", "[Xe]", "[Og]", "[Fe+2]", "[U]", "[se]", "[C@H]",
          "[N+](=O)[O-]", "=", "#", "/", "\\", ".", "(", ")", "1", "2", "%10", "[", "]", "+", "-", "@", " ", "\t"]


@st.composite
def smiles(draw):
    kind = draw(st.sampled_from(["seed", "tokens", "mutated", "fragment", "ring", "text"]))
    if kind == "tokens":
        return "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=12)))
    if kind == "text":
        return draw(st.text(max_size=12))
    base = draw(st.sampled_from(SEEDS))
    if kind == "seed":
        return base
    if kind == "ring":
        return "C1" + "C" * draw(st.integers(1, 300)) + "C1" + draw(st.sampled_from(["", "O", ".[Na+]"]))
    if kind == "fragment":
        return base + "." + draw(st.sampled_from(["[Na+]", "[Cl-]", "O", "[H][H]", "*", base]))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(base)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        tok = draw(st.sampled_from(TOKENS))
        if op == "insert":
            base = base[:at] + tok + base[at:]
        elif op == "delete":
            base = base[:at] + base[at + 1:]
        else:
            base = base[:at] + tok + base[at + len(tok):]
    return base


@functools.cache
def weave_model():
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.weave import W2N2

    feat = SimpleWeaveFeaturizer()
    torch.manual_seed(0)
    return W2N2(feat.n_atom_features, feat.n_pair_features, 2, n_hidden=8, n_atom_hidden=8,
                n_dense=8).double(), feat


ODD_ITEMS = st.sampled_from([None, 42, 3.5, math.nan, b"CCO", ["CCO"], ""])


@budget(4)
@given(items=st.lists(st.one_of(smiles(), ODD_ITEMS), min_size=1, max_size=5),
       target=st.sampled_from([None, 0, 1, 2]))
def test_molecules_any_smiles(items, target):
    from sciattr.chem.adapter import explain_molecules

    model, feat = weave_model()
    res = keeps_contract(lambda: explain_molecules(model, items, featurizer=feat, target=target, steps=16),
                         n_rows=len(items))
    if isinstance(res, sciattr.Attribution):
        for i in range(res.n_examples):  # every atom shown is an atom of the molecule shown
            atoms = res.to_atoms(i)
            assert len(atoms) == len(res.atom_values(i))
            assert all(isinstance(a["index"], int) and a["index"] >= 0 for a in atoms)


@budget(0.5)
@given(smi=smiles())
def test_cli_molecule_any_smiles(smi, tmp_path_factory):
    from sciattr.cli import main

    assume(not smi.startswith("-"))
    out = tmp_path_factory.mktemp("cli") / "r.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["molecule", smi, "--out", str(out)])
    assert code in (0, 2)
    if code == 0:
        assert out.is_file()


LINE = smiles().filter(lambda s: not re.search(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029\",]", s))


@budget(0.5)
@given(lines=st.lists(LINE, min_size=1, max_size=6))
def test_cli_molecule_file_one_output_row_per_input_row(lines, tmp_path_factory):
    import csv

    from sciattr.cli import main

    folder = tmp_path_factory.mktemp("batch")
    path = folder / "in.csv"
    path.write_text("smiles\n" + "\n".join(lines) + "\n", encoding="utf-8")
    out = folder / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["molecule", "--file", str(path), "--out-dir", str(out)])
    assert code in (0, 2)
    if code == 2:
        return
    if (out / "molecules.csv").is_file():
        table = list(csv.DictReader((out / "molecules.csv").open(newline="", encoding="utf-8")))
    else:
        from sciattr.run import merge

        table = merge(out).to_dict("records")
    assert len(table) == len(lines), f"{len(table)} output rows for {len(lines)} input rows"
    for k, row in enumerate(table):
        assert int(row["row"]) == k
        assert row["status"] == "ok" or str(row["error"]).strip(), f"row {k}: no reason given"


ENCODINGS = ["utf-8", "latin-1", "utf-16", "cp1252", "shift_jis", "utf-32"]


@budget(1)
@given(data=st.one_of(st.binary(max_size=200),
                      st.tuples(st.text(max_size=60), st.sampled_from(ENCODINGS)).map(
                          lambda t: t[0].encode(t[1], errors="replace"))),
       suffix=st.sampled_from([".csv", ".smi", ".sdf", ".txt"]))
def test_cli_molecule_file_any_bytes(data, suffix, tmp_path_factory):
    from sciattr.cli import main

    folder = tmp_path_factory.mktemp("bytes")
    path = folder / f"in{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["molecule", "--file", str(path), "--out-dir", str(folder / "out")])
    assert code in (0, 2)


# ---------------------------------------------------------------------------------------- texts
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "more", "than"]


@functools.cache
def classifier():
    from sciattr.text.classifier import LSTMTopicClassifier
    from sciattr.text.corpus import PAD, UNK, Vocabulary

    torch.manual_seed(0)
    vocab = Vocabulary([PAD, UNK] + WORDS)
    return LSTMTopicClassifier(len(vocab), ["business", "sports"], 6, 6, dropout=0.0).double().eval(), vocab


def _decode(data: bytes, encoding: str, errors: str) -> str:
    try:
        return data.decode(encoding, errors=errors)
    except UnicodeDecodeError:  # some codecs refuse truncated input whatever the handler
        return data.decode("utf-8", errors="surrogateescape")


def decoded_bytes():
    """Random bytes read with a random encoding (lone surrogates included, as Python's I/O makes them)."""
    return st.tuples(st.binary(max_size=40), st.sampled_from(ENCODINGS),
                     st.sampled_from(["replace", "ignore", "surrogateescape", "backslashreplace"])).map(
        lambda t: _decode(*t))


TEXTS = st.one_of(st.text(max_size=40), decoded_bytes(),
                  st.lists(st.sampled_from(WORDS + ["zebra", "", " "]), max_size=14).map(" ".join),
                  st.sampled_from([None, 3, b"the cat", "\x00", "\u202e", "\U0001F600"]))


@budget(3)
@given(texts=st.lists(TEXTS, min_size=1, max_size=4),
       targets=st.one_of(st.none(), st.lists(st.sampled_from([None, 0, 1, 5, "sports", "politics", -1]),
                                             min_size=4, max_size=4)))
def test_classifier_any_text(texts, targets):
    from sciattr.text.classifier import classifier_attribution

    model, vocab = classifier()
    targets = None if targets is None else targets[: len(texts)]
    keeps_contract(lambda: classifier_attribution(model, vocab, texts, targets, steps=8, max_length=10),
                   n_rows=len(texts))


@budget(1)
@given(data=st.binary(max_size=120))
def test_text_batch_file_any_bytes(data, tmp_path_factory):
    from sciattr.text.report import read_batch_file

    path = tmp_path_factory.mktemp("texts") / "in.txt"
    path.write_bytes(data)
    try:
        texts, targets = read_batch_file(path)
    except SciAttrError:
        return
    assert len(texts) == len(targets) and all(isinstance(t, str) for t in texts)


@functools.cache
def g2p():
    from sciattr.text.seq2seq import load_g2p

    return load_g2p()


@budget(1)
@given(words=st.lists(st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=25), st.text(max_size=6)),
                      min_size=1, max_size=3))
def test_g2p_any_word(words):
    from sciattr.text.seq2seq import attribute_g2p

    keeps_contract(lambda: attribute_g2p(words, model=g2p(), steps=8), n_rows=len(words))


@budget(1)
@given(text=st.one_of(st.text(max_size=30), decoded_bytes()),
       model=st.sampled_from(["topic-classifier", "lstm-lm", "g2p"]))
def test_cli_text_any_text(text, model, tmp_path_factory):
    from sciattr.cli import main

    assume(not text.startswith("-") and "\x00" not in text)
    out = tmp_path_factory.mktemp("text") / "t.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["text", text, "--model", model, "--out", str(out)])
    assert code in (0, 2)


# ---------------------------------------------------------------------------------------- saved results
@functools.cache
def saved_bytes():
    import tempfile
    from pathlib import Path

    x = torch.randn(3, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    res = sciattr.integrated_gradients(sum_of_squares, x, steps=8)
    res.meta["note"] = "x"
    with tempfile.TemporaryDirectory() as tmp:
        return res.save(Path(tmp) / "r.safetensors").read_bytes()


@budget(3)
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_load_any_corrupted_result(edits, cut, tmp_path_factory):
    raw = bytearray(saved_bytes())
    for where, value in edits:
        raw[int(where * len(raw))] = value
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    path = tmp_path_factory.mktemp("saved") / "r.safetensors"
    path.write_bytes(bytes(raw))
    try:
        res = sciattr.load(path)
    except SciAttrError:
        return
    assert isinstance(res, sciattr.Attribution)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**62, 2**62), st.floats(allow_nan=True),
                        st.text(max_size=10))
META = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-5, 5)), inner, max_size=3)), max_leaves=12)


@st.composite
def results(draw):
    n = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
    width = draw(st.integers(0, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    x = torch.randn(n, width, generator=g, dtype=F64).to(dtype)
    if x.numel() and draw(st.booleans()):
        x.reshape(-1)[0] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    fx = torch.randn(n, generator=g, dtype=F64)
    return sciattr.Attribution(
        attributions={"x": x}, inputs={"x": x.clone()}, baselines={"x": torch.zeros_like(x)}, forward_x=fx,
        forward_baseline=fx * 0, method="integrated_gradients", rule=draw(st.sampled_from(["trapezoid", "gl"])),
        steps=torch.full((n,), 8), target=draw(st.text(max_size=5)), meta=draw(st.dictionaries(
            st.text(max_size=8), META, max_size=4)))


@budget(3)
@given(res=results())
def test_saved_results_round_trip_exactly(res, tmp_path_factory):
    from test_storage import _same

    path = tmp_path_factory.mktemp("roundtrip") / "r.safetensors"
    _same(res, sciattr.load(res.save(path)))
