"""Saved results: safetensors + JSON, no pickle; the right class comes back; bad files get a clear error."""

import dataclasses
import json
import math
import os
import pickle
import struct
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import sciattr
from sciattr import storage
from sciattr.errors import InputError, SciAttrError
from sciattr.result import Attribution, PathRecord
from sciattr.storage import ResultFileError

F64 = torch.float64


def _result(n=3, multi=False, with_path=False, **meta) -> Attribution:
    g = torch.Generator().manual_seed(1)
    shape = (n, 4, 2) if multi else (n, 4)
    fx = torch.randn((n, 2) if multi else (n,), generator=g, dtype=F64)
    path = None
    if with_path:
        path = PathRecord(torch.linspace(0, 1, 5, dtype=F64), torch.randn(n, 5, dtype=F64),
                          {"input": torch.randn(5, n, 4, dtype=F64)})
    return Attribution(
        attributions={"input": torch.randn(shape, generator=g, dtype=F64)},
        inputs={"input": torch.randn(n, 4, generator=g, dtype=F64)},
        baselines={"input": torch.zeros(n, 4, dtype=F64)},
        forward_x=fx, forward_baseline=torch.zeros_like(fx), method="integrated_gradients",
        rule="trapezoid", steps=torch.tensor([8] * n), target="0", multi_target=multi,
        segments={"input": torch.arange(n)} if n else None, path=path, meta=meta,
    )


def _same(x, y, where="result"):
    """Exact equality of saved and loaded values (NaN equals NaN; molecules by atoms and SMILES)."""
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape, where
        torch.testing.assert_close(y, x, rtol=0, atol=0, equal_nan=True, msg=where)
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        assert type(x) is type(y), where
        for f in dataclasses.fields(x):
            _same(getattr(x, f.name), getattr(y, f.name), f"{where}.{f.name}")
    elif isinstance(x, dict):
        assert isinstance(y, dict) and list(x) == list(y), where
        for k in x:
            _same(x[k], y[k], f"{where}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        assert type(x) is type(y) and len(x) == len(y), where
        for k, (u, v) in enumerate(zip(x, y)):
            _same(u, v, f"{where}[{k}]")
    elif isinstance(x, float) and math.isnan(x):
        assert isinstance(y, float) and math.isnan(y), where
    elif type(x).__name__ == "Mol":
        from rdkit import Chem

        assert Chem.MolToSmiles(x) == Chem.MolToSmiles(y), where
        assert [(a.GetSymbol(), a.GetFormalCharge(), a.GetIsotope(), a.GetNumRadicalElectrons()) for a in x.GetAtoms()] \
            == [(a.GetSymbol(), a.GetFormalCharge(), a.GetIsotope(), a.GetNumRadicalElectrons()) for a in y.GetAtoms()]
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


def _assert_same(a: Attribution, b: Attribution):
    assert type(a) is type(b)
    _same(a, b)
    torch.testing.assert_close(b.completeness_gap, a.completeness_gap, rtol=0, atol=0, equal_nan=True)


def test_round_trip_values_equal(tmp_path):
    res = _result(meta_note="hello", nested={"k": [1, 2.5, None, "x"]}, pair=(1, 2), keyed={3: "three"},
                  bad=float("nan"), big=float("-inf"))
    path = res.save(tmp_path / "r.safetensors")
    back = sciattr.load(path)
    _assert_same(res, back)
    assert back.meta == {**res.meta, "bad": back.meta["bad"]} and back.meta["bad"] != back.meta["bad"]
    assert back.meta["pair"] == (1, 2) and back.meta["keyed"] == {3: "three"} and back.meta["big"] == -float("inf")
    assert Attribution.load(path).meta["meta_note"] == "hello"


def test_round_trip_multi_target_path_record_and_dtypes(tmp_path):
    res = _result(multi=True, with_path=True)
    res.inputs["mask"] = torch.tensor([[True, False]] * 3)
    res.inputs["half"] = torch.ones(3, 2, dtype=torch.bfloat16)
    res.inputs["empty"] = torch.zeros(3, 0)
    back = sciattr.load(res.save(tmp_path / "r.st"))
    _assert_same(res, back)
    assert isinstance(back.path, PathRecord)
    assert torch.equal(back.path.alphas, res.path.alphas) and torch.equal(back.path.gradients["input"],
                                                                         res.path.gradients["input"])


def test_file_is_safetensors_with_json_and_no_pickle(tmp_path):
    path = _result().save(tmp_path / "r.safetensors")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    doc = json.loads(header["__metadata__"]["sciattr"])
    assert doc["format"] == "sciattr.result" and doc["version"] == storage.VERSION
    assert doc["module"] == "sciattr.result" and doc["class"] == "Attribution"
    assert doc["fields"]["method"] == "integrated_gradients"
    assert b"\x80\x04" not in raw[:2] and not raw.startswith(b"PK")
    with pytest.raises((pickle.UnpicklingError, ValueError, EOFError, KeyError)):
        pickle.loads(raw)  # not a pickle at all


def test_engine_result_round_trip(tmp_path):
    x = torch.randn(4, 3, dtype=F64)
    res = sciattr.integrated_gradients(lambda t: (t ** 2).sum(-1), x, steps=16)
    back = sciattr.load(res.save(tmp_path / "ig.safetensors"))
    _assert_same(res, back)


def test_unrestorable_values_are_described_and_noted(tmp_path):
    res = _result(fn=len, obj=object())
    back = sciattr.load(res.save(tmp_path / "r.safetensors"))
    assert back.meta["fn"] == "callable len" and back.meta["obj"].startswith("object")
    notes = back.meta["storage_notes"]
    assert any("meta['fn']" in n for n in notes) and any("meta['obj']" in n for n in notes)


# ------------------------------------------------------------------ domain classes
def _molecule_result():
    from sciattr.chem.adapter import explain_molecules
    from sciattr.chem.featurize import SimpleWeaveFeaturizer
    from sciattr.chem.weave import W2N2

    feat = SimpleWeaveFeaturizer()
    model = W2N2(feat.n_atom_features, feat.n_pair_features, 1, n_hidden=8, n_atom_hidden=8, n_dense=8).double()
    return explain_molecules(model, ["CC(=O)[O-].[Na+]", "not a smiles", "[13CH3]C(N)=O", "c1ccccc1O"],
                             featurizer=feat, steps=32)


def test_molecule_result_round_trip(tmp_path):
    from sciattr.chem.adapter import MoleculeAttribution
    from sciattr.chem.featurize import Chem

    res = _molecule_result()
    res.molecules[0].GetAtomWithIdx(0).SetIntProp("input_index", 7)
    path = res.save(tmp_path / "mol.safetensors")
    for loader in (sciattr.load, Attribution.load, MoleculeAttribution.load):
        back = loader(path)
        assert type(back) is MoleculeAttribution
        _assert_same(res, back)
        assert back.rows == res.rows and back.errors == res.errors and back.notes == res.notes
        assert back.smiles == res.smiles and back.link_name == res.link_name
        assert torch.equal(back.link_index, res.link_index) and torch.equal(back.link_bond, res.link_bond)
        for m, n in zip(res.molecules, back.molecules):
            assert Chem.MolToSmiles(m) == Chem.MolToSmiles(n)
            assert [(a.GetSymbol(), a.GetFormalCharge(), a.GetIsotope()) for a in m.GetAtoms()] == \
                   [(a.GetSymbol(), a.GetFormalCharge(), a.GetIsotope()) for a in n.GetAtoms()]
        assert back.molecules[0].GetAtomWithIdx(0).GetIntProp("input_index") == 7
        for i in range(res.n_examples):
            assert back.to_atoms(i) == res.to_atoms(i) and back.to_bonds(i) == res.to_bonds(i)


def test_subclass_load_refuses_another_class(tmp_path):
    from sciattr.chem.adapter import MoleculeAttribution
    from sciattr.text.tokens import TokenAttribution

    path = _result().save(tmp_path / "base.safetensors")
    with pytest.raises(ResultFileError, match="holds a Attribution; expected a MoleculeAttribution"):
        MoleculeAttribution.load(path)
    with pytest.raises(ResultFileError, match="expected a TokenAttribution"):
        TokenAttribution.load(path)


def test_token_and_seq2seq_results_round_trip(tmp_path):
    from sciattr.text.seq2seq import Seq2SeqAttribution
    from sciattr.text.tokens import TokenAttribution

    base = _result(n=2)
    tok = base.specialize(TokenAttribution, tokens=[["the", "cat"], ["a"]], token_ids=torch.tensor([[3, 4], [5, 0]]),
                          attention_mask=torch.tensor([[1, 1], [1, 0]]), target_labels=["sports", "tech"],
                          notes=[["1 unknown word(s) mapped to <unk>: cat"], []],
                          errors=[{"row": 1, "input": None, "message": "expected a string; got NoneType"}],
                          rows=[0, 2])
    back = sciattr.load(tok.save(tmp_path / "tok.safetensors"))
    assert type(back) is TokenAttribution
    _assert_same(tok, back)
    assert (back.tokens, back.notes, back.errors, back.rows, back.target_labels) == \
           (tok.tokens, tok.notes, tok.errors, tok.rows, tok.target_labels)
    seq = base.specialize(Seq2SeqAttribution, tokens=[["c", "a", "t"]] * 2, output_tokens=[["K", "AE1", "T"]] * 2)
    back = TokenAttribution.load(seq.save(tmp_path / "seq.safetensors"))
    assert type(back) is Seq2SeqAttribution and back.output_tokens == seq.output_tokens


def test_a_fresh_interpreter_loads_the_domain_class(tmp_path):
    path = _molecule_result().save(tmp_path / "mol.safetensors")
    code = ("import sys, sciattr; r = sciattr.load(sys.argv[1]); "
            "print(type(r).__module__, type(r).__name__, r.molecules[0].GetNumAtoms())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True,
                         timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["sciattr.chem.adapter", "MoleculeAttribution", "4"]


# ------------------------------------------------------------------ files that are not results
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch EVIL_MARKER",))


def _good_bytes(tmp_path):
    return _result().save(tmp_path / "good.safetensors").read_bytes()


def _with_document(tmp_path, name, change):
    raw = _good_bytes(tmp_path)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    doc = json.loads(header["__metadata__"]["sciattr"])
    change(doc)
    header["__metadata__"]["sciattr"] = json.dumps(doc)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])
    return path


BAD_FILES = {
    "torch_save": (lambda p: torch.save({"state": {"x": torch.ones(2)}}, p), "torch.save"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps({"a": 1})), "pickle"),
    "malicious_pickle": (lambda p: p.write_bytes(pickle.dumps(_Evil())), "pickle"),
    "empty": (lambda p: p.write_bytes(b""), "too short"),
    "short": (lambda p: p.write_bytes(b"abc"), "too short"),
    "random": (lambda p: p.write_bytes(bytes(range(256)) * 4), "expected a safetensors file"),
    "json": (lambda p: p.write_text('{"format": "sciattr.result"}'), "JSON document"),
    "text": (lambda p: p.write_text("smiles\nCCO\n"), "expected a safetensors file"),
    "safetensors_without_metadata": (lambda p: save_file({"x": torch.ones(2)}, str(p)),
                                     "not a sciattr result: expected the metadata"),
    "other_metadata": (lambda p: save_file({"x": torch.ones(2)}, str(p), metadata={"format": "pt"}),
                       "not a sciattr result: expected the metadata"),
    "metadata_not_json": (lambda p: save_file({"x": torch.ones(2)}, str(p), metadata={"sciattr": "{oops"}),
                          "metadata is not JSON"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_files_that_are_not_results(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write, fragment = BAD_FILES[kind]
    path = tmp_path / f"{kind}.bin"
    write(path)
    with pytest.raises(ResultFileError, match=fragment) as info:
        sciattr.load(path)
    assert isinstance(info.value, SciAttrError) and isinstance(info.value, InputError)
    assert str(path) in str(info.value)
    assert not (tmp_path / "EVIL_MARKER").exists()


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(format="something.else"), "expected format 'sciattr.result'"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(version="1"), "version '1'"),
    (lambda d: d.update({"class": "Nope"}), "expected a result class known to sciattr; got sciattr.result:Nope"),
    (lambda d: d.update(module="os", **{"class": "system"}), "only sciattr modules are imported"),
    (lambda d: d.update(module="sciattr.nothing_here"), "cannot be imported"),
    (lambda d: d.update(fields=[1, 2]), "expected a JSON object of fields"),
    (lambda d: d["fields"].update(forward_x={"__tensor__": "t999"}), "expected the name of a tensor"),
    (lambda d: d["fields"].update(extra_field=1), r"fields \['extra_field'\] that Attribution does not have"),
    (lambda d: d["fields"].pop("forward_x"), r"needs the fields \['forward_x'\]"),
    (lambda d: d["fields"].update(meta={"x": {"__float__": "lots"}}), "'nan', 'inf' or '-inf'"),
    (lambda d: d["fields"].update(meta={"m": {"__mol__": {"molblock": "garbage"}}}), "cannot be read by RDKit"),
])
def test_edited_documents(tmp_path, change, fragment):
    path = _with_document(tmp_path, "edited.safetensors", change)
    with pytest.raises(ResultFileError, match=fragment):
        sciattr.load(path)


def test_truncated_and_corrupted_files(tmp_path):
    raw = _good_bytes(tmp_path)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) - 40])
    with pytest.raises(ResultFileError, match="corrupt result file: its tensors cannot be read"):
        sciattr.load(cut)
    head = tmp_path / "head.safetensors"
    head.write_bytes(raw[:100])
    with pytest.raises(ResultFileError, match="expected a safetensors file"):
        sciattr.load(head)
    flipped = bytearray(raw)
    flipped[12] ^= 0xFF  # inside the JSON header
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ResultFileError):
        sciattr.load(bad)


def test_missing_paths_and_unwritable_targets(tmp_path):
    with pytest.raises(ResultFileError, match="does not exist"):
        sciattr.load(tmp_path / "missing.safetensors")
    with pytest.raises(ResultFileError, match="is not a file"):
        sciattr.load(tmp_path)
    with pytest.raises(InputError, match="folder .* does not exist"):
        _result().save(tmp_path / "no" / "such" / "r.safetensors")
    with pytest.raises(InputError, match="expected a file path"):
        _result().save(tmp_path)
    with pytest.raises(InputError, match="expected an Attribution"):
        storage.save({"a": 1}, tmp_path / "x.safetensors")


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "r.safetensors"
    _result(n=2).save(path)
    _result(n=5).save(path)
    assert sciattr.load(path).n_examples == 5
    assert [p.name for p in tmp_path.iterdir()] == ["r.safetensors"]
