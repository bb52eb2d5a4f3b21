"""The catalogue of bad input: every case sciattr knows about, with the behaviour it promises.

One :class:`Case` per row: where it goes in (``entry``, a runner of ``test_catalogue.py``), the
input, and what must happen (``expect``):

``Raises(error, fragment)``
    the call raises ``error`` (a :class:`sciattr.errors.SciAttrError` subclass) whose message
    matches the regular expression ``fragment`` (what was expected and what was got);
``RowError(fragment)``
    in a batch, the row is reported in ``result.errors`` with that reason and every other row is
    processed;
``RowNote(fragment)``
    the row is processed and ``result.notes`` of the row says what was changed or ignored;
``RowOk(atoms=...)``
    the row is processed (finite attributions, completeness gap reported); ``atoms`` optionally
    lists ``(input atom index, element)`` of every atom shown;
``FiniteOrRaises(error, fragment)``
    either a result whose attributions and gap are finite, or that error;
``Exit(code, fragment, rows=...)``
    the command line (run in-process) returns ``code`` and prints ``fragment`` on stderr; for
    batch files ``rows`` lists, per input row in order, ``"ok"``, ``("ok", note fragment)`` or a
    fragment of the row's reason;
``Check(name)``
    a behaviour checked by the function ``check_<name>`` of ``test_catalogue.py``.

Inputs written ``{tmp}`` are placed in a fresh temporary folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sciattr.chem.featurize import MAX_ATOMS
from sciattr.errors import InputError, ModelOutputError, SciAttrError, TargetError
from sciattr.storage import ResultFileError

F64 = torch.float64


@dataclass(frozen=True)
class Raises:
    error: type
    fragment: str


@dataclass(frozen=True)
class RowError:
    fragment: str


@dataclass(frozen=True)
class RowNote:
    fragment: str


@dataclass(frozen=True)
class RowOk:
    atoms: tuple | None = None


@dataclass(frozen=True)
class FiniteOrRaises:
    error: type
    fragment: str


@dataclass(frozen=True)
class Exit:
    code: int
    fragment: str = ""
    rows: tuple | None = None


@dataclass(frozen=True)
class Check:
    name: str


@dataclass(frozen=True)
class Case:
    id: str
    entry: str
    input: Any
    expect: Any
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- engine models
def lin(x):
    """``(n, 3) -> (n, 2)``: two linear scores."""
    return x @ torch.ones(3, 2, dtype=x.dtype)


def square_sum(x):
    return (x ** 2).sum(-1)


def norm(x):
    """Finite output, gradient 0/0 at the zero baseline."""
    return torch.sqrt((x ** 2).sum(-1))


def log_sum(x):
    return torch.log(x.sum(-1))


def nan_side_column(x):
    """Column 0 is finite and linear; column 1 is NaN everywhere (log of a negative number)."""
    s = x.sum(-1)
    return torch.stack([s, torch.log(-s.abs() - 1.0)], -1)


def detached(x):
    return x.detach().sum(-1) + 1.0


def constant(x):
    return torch.ones(x.shape[0], dtype=x.dtype)


def returns_none(x):
    return None


def wrong_rows(x):
    return x.sum().reshape(1).expand(7)


def float32_linear():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1)


def width4_linear():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1).double()


def x3(n=4):
    return torch.randn(n, 3, dtype=F64, generator=torch.Generator().manual_seed(0))


def with_nan():
    x = x3()
    x[1, 2] = math.nan
    return x


def with_inf():
    x = x3()
    x[2, 0] = math.inf
    return x


# input: (model, inputs, options); model may be a zero-argument factory (a class or *_linear)
ENGINE = [
    ("baseline-shape", (lin, x3(), {"target": 0, "baselines": torch.zeros(2, 2, dtype=F64)}),
     Raises(InputError, r"baseline for 'input' has shape \(2, 2\); expected \(4, 3\)")),
    ("baseline-nan", (lin, x3(), {"target": 0, "baselines": torch.full((4, 3), math.nan, dtype=F64)}),
     Raises(InputError, r"non-finite|finite")),
    ("baseline-unknown-name", (lin, x3(), {"target": 0, "baselines": "blur"}), Raises(InputError, "unknown baseline 'blur'")),
    ("baseline-old-spelling", (lin, x3(), {"target": 0, "baseline": "zeros"}), Raises(InputError, "use 'baselines'")),
    ("target-out-of-range", (lin, x3(), {"target": 5}), Raises(TargetError, r"target 5 is out of range.*\[0, 1\]")),
    ("target-wrong-length", (lin, x3(), {"target": [0, 1]}), Raises(TargetError, "one entry per example")),
    ("target-missing-multi-output", (lin, x3(), {}), Raises(TargetError, "one output value per example")),
    ("target-old-spelling-task", (lin, x3(), {"task": 0}), Raises(InputError, "use 'target'")),
    ("steps-zero", (lin, x3(), {"target": 0, "steps": 0}), Raises(InputError, "steps must be")),
    ("steps-negative", (lin, x3(), {"target": 0, "steps": -3}), Raises(InputError, "steps must be")),
    ("steps-fraction", (lin, x3(), {"target": 0, "steps": 2.5}), Raises(InputError, "steps must be")),
    ("steps-bool", (lin, x3(), {"target": 0, "steps": True}), Raises(InputError, "steps must be")),
    ("steps-word", (lin, x3(), {"target": 0, "steps": "many"}), Raises(InputError, "steps must be")),
    ("steps-huge", (lin, x3(), {"target": 0, "steps": 10 ** 9}), Raises(InputError, "steps must be at most")),
    ("steps-old-spelling", (lin, x3(), {"target": 0, "n_steps": 8}), Raises(InputError, "use 'steps'")),
    ("max-steps-zero", (lin, x3(), {"target": 0, "max_steps": 0}), Raises(InputError, "max_steps must be")),
    ("tolerance-negative", (lin, x3(), {"target": 0, "tolerance": -1.0}), Raises(InputError, "tolerance must be")),
    ("batch-size-zero", (lin, x3(), {"target": 0, "batch_size": 0}), Raises(InputError, "batch_size must be")),
    ("memory-budget-word", (lin, x3(), {"target": 0, "memory_budget": "lots"}), Raises(InputError, "memory_budget")),
    ("rule-unknown", (lin, x3(), {"target": 0, "rule": "simpson"}), Raises(InputError, "simpson")),
    ("store-path-not-bool", (lin, x3(), {"target": 0, "store_path": "yes"}), Raises(InputError, "store_path")),
    ("option-unknown", (lin, x3(), {"target": 0, "colour": "red"}), Raises(InputError, "unknown option 'colour'")),
    ("input-list", (lin, [1.0, 2.0], {"target": 0}), Raises(InputError, "inputs must be a tensor or a mapping")),
    ("input-empty-mapping", (lin, {}, {"target": 0}), Raises(InputError, "at least one tensor")),
    ("input-integer", (lin, torch.ones(2, 3, dtype=torch.long), {"target": 0}),
     Raises(InputError, "floating-point tensor.*torch.int64")),
    ("input-bool", (lin, torch.ones(2, 3, dtype=torch.bool), {"target": 0}), Raises(InputError, "floating-point")),
    ("input-complex", (lin, torch.ones(2, 3, dtype=torch.complex128), {"target": 0}),
     Raises(InputError, "floating-point|complex")),
    ("input-scalar", (square_sum, torch.tensor(1.0, dtype=F64), {}), Raises(InputError, "scalar")),
    ("input-nan", (lin, with_nan(), {"target": 0}), Raises(InputError, r"non-finite values in rows \[1\]")),
    ("input-inf", (lin, with_inf(), {"target": 0}), Raises(InputError, r"non-finite values in rows \[2\]")),
    ("input-no-examples", (square_sum, torch.zeros(0, 3, dtype=F64), {}), Raises(InputError, "no examples")),
    ("inputs-different-counts", (lambda a, b: a.sum(-1) + b.sum(-1), {"a": x3(), "b": x3(3)}, {}),
     Raises(InputError, "same number of examples")),
    ("forward-kwargs-rows", (lambda x, s: lin(x) * s, x3(), {"target": 0, "forward_kwargs": {"s": torch.ones(5, 1)}}),
     Raises(InputError, "one row per example")),
    ("input-dtype-differs-from-model", (float32_linear, x3(), {"target": 0}),
     Raises(InputError, "dtype")),
    ("model-wrong-input-width", (width4_linear, x3(), {"target": 0}),
     Raises(ModelOutputError, r"the model raised RuntimeError.*\(4, 3\)|shape")),
    ("model-output-not-finite-at-baseline", (log_sum, torch.ones(1, 3, dtype=F64), {"steps": 4}),
     Raises(ModelOutputError, r"not finite for example")),
    ("model-output-none", (returns_none, x3(), {}), Raises(ModelOutputError, "tensor|None")),
    ("model-output-wrong-rows", (wrong_rows, x3(), {}), Raises(SciAttrError, "per example|7")),
    ("model-output-constant", (constant, x3(), {}), Raises(SciAttrError, "depend")),
    ("model-output-detached", (detached, x3(), {}), Raises(SciAttrError, "depend")),
    ("model-input-unused", (lambda x, y: x.sum(-1) + y.detach().sum(-1), {"x": x3(), "y": x3()}, {}),
     Raises(InputError, "does not depend differentiably on input 'y'")),
    ("gradient-not-finite-trapezoid", (norm, x3(), {"steps": 8, "rule": "trapezoid"}),
     FiniteOrRaises(ModelOutputError, "finite")),
    ("gradient-not-finite-left-rule", (norm, x3(), {"steps": 8, "rule": "riemann_left"}),
     FiniteOrRaises(ModelOutputError, "finite")),
    ("nan-in-other-output-column", (nan_side_column, x3(), {"target": 0, "steps": 8}), Check("nan_side_column")),
]

ENGINE_CHECKS = [
    ("gauss-legendre-thousands-of-steps-is-fast", None, Check("gauss_legendre_fast")),
    ("batch-norm-in-training-mode-left-unchanged", None, Check("batch_norm_untouched")),
]


# ---------------------------------------------------------------------------------------- molecules
# explain_molecules(model, [input, "CCO"]): the row's fate, and "CCO" is always processed.
MOLECULE_ROWS = [
    ("smiles-garbage", "not a smiles", RowError("expected a valid SMILES")),
    ("smiles-empty", "", RowError("non-empty SMILES")),
    ("smiles-blank", "   ", RowError("non-empty SMILES")),
    ("smiles-unclosed-ring", "C1CC", RowError("expected a valid SMILES")),
    ("smiles-unbalanced-branch", "CC(C", RowError("expected a valid SMILES")),
    ("smiles-bad-ring-closure", "C%9", RowError("expected a valid SMILES")),
    ("smiles-pentavalent-carbon", "C(C)(C)(C)(C)C", RowError("Explicit valence")),
    ("smiles-cannot-kekulize", "c1cccc1", RowError("kekulize")),
    ("smiles-only-hydrogen", "[H][H]", RowError("at least one heavy atom")),
    ("smiles-too-many-atoms", "C" * (MAX_ATOMS + 1), RowError(f"at most {MAX_ATOMS} atoms")),
    ("row-none", None, RowError("got None")),
    ("row-int", 42, RowError("got int 42")),
    ("row-float-nan", math.nan, RowError("float")),
    ("row-bytes", b"CCO", RowError("bytes")),
    ("row-list", ["CCO"], RowError("list")),
    ("salt-fragment-removed", "c1ccccc1[N+](=O)[O-].[Na+]", RowNote(r"\[Na\+\]")),
    ("salt-first-atom-numbering", "[Na+].CC(=O)[O-]",
     RowOk(atoms=((1, "C"), (2, "C"), (3, "O"), (4, "O")))),
    ("salt-first-note", "[Na+].CC(=O)[O-]", RowNote(r"fragment.*\[Na\+\]|\[Na\+\].*fragment")),
    ("explicit-hydrogen-numbering", "[H]OC", RowOk(atoms=((1, "O"), (2, "C")))),
    ("explicit-hydrogen-note", "[H]OC", RowNote("hydrogen")),
    ("two-equal-fragments", "CC.CC", RowNote("fragment")),
    ("unknown-element", "[Xe]C(=O)O", RowNote("Xe")),
    ("element-oganesson-in-molecule", "[Og]C", RowNote("Og")),
    ("radical", "[CH3]", RowNote("radical")),
    ("radical-in-molecule", "C[CH2]", RowNote("radical")),
    ("isotope", "[13CH3]O", RowNote("isotope")),
    ("deuterium", "[2H]C([2H])([2H])O", RowNote("isotope|hydrogen")),
    ("dummy-atom", "*CC", RowNote(r"\*|dummy")),
    ("huge-ring", "C1" + "C" * 200 + "C1", RowOk()),
    ("mapped-atoms", "[CH3:1][OH:2]", RowOk(atoms=((0, "C"), (1, "O")))),
]

# charges: noted when the featurizer cannot represent them (the simple Weave featurizer has no charge feature)
MOLECULE_ROWS += [
    ("formal-charge", "C[N+](C)(C)C", RowNote("charge")),
]

# explain_molecules(model, [input]) alone
MOLECULE_ALONE = [
    ("only-molecule-has-no-pairs-methane", "C", RowOk()),
    ("only-molecule-has-no-pairs-sodium", "[Na+]", RowOk()),
    ("only-molecule-has-no-pairs-oganesson", "[Og]", RowOk()),
]

# whole-call errors of explain_molecules(model, input, **params)
MOLECULE_CALLS = [
    ("molecules-a-string", "CCO", Raises(InputError, "of SMILES strings"), {}),
    ("molecules-none", None, Raises(InputError, "of SMILES strings"), {}),
    ("molecules-a-number", 3, Raises(InputError, "of SMILES strings"), {}),
    ("all-rows-bad", ["xyz", ""], Raises(InputError, r"row 0: expected a valid SMILES.*row 1: expected a non-empty"), {}),
    ("target-out-of-range", ["CCO"], Raises(TargetError, "out of range"), {"target": 5}),
    ("featurizer-mismatch", ["CCO"], Raises(InputError, r"atoms of shape \(N, 14\); got \(\d+, 54\)"),
     {"featurizer": "WeaveFeaturizer"}),
    ("unsanitizable-mol-object", "unsanitizable", RowError("sanitiz"), {}),
    ("too-many-pairs", ["C" * 100, "CCO"], RowError("at most 1000 atom pairs"), {"featurizer": "max_links"}),
    ("baseline-old-spelling", ["CCO"], Raises(InputError, "use 'baselines'"), {"baseline": "zeros"}),
]

# a shipped model, no featurizer given: the model's card decides
MOLECULE_ZOO = [
    ("shipped-gcn-without-featurizer", "c1ccccc1O", RowOk(), {"model": "gcn-benzene"}),
    ("shipped-weave-without-featurizer", "c1ccccc1O", RowOk(), {"model": "w2n2-benzene"}),
]

SDF_GOOD = """ethanol
     RDKit          2D

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.2990    0.7500    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    2.5981   -0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  2  3  1  0
M  END
$$$$
"""
SDF_PENTAVALENT = """bad carbon
     RDKit          2D

  6  5  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
   -1.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000    1.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000   -1.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    0.5000    0.5000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
  1  4  1  0
  1  5  1  0
  1  6  1  0
M  END
$$$$
"""
SDF_GARBAGE = "this is not a mol block\n$$$$\n"

# files given to ``sciattr molecule --file``: (file name, content) -> exit code and one entry per input row
MOLECULE_FILES = [
    ("csv-mixed-rows", ("in.csv", "smiles\nCCO\nnot_a_smiles\n\n[Na+].CC(=O)[O-]\nC(C)(C)(C)(C)C\n[CH3]\nc1ccccc1O\n"),
     Exit(0, rows=("ok", "expected a valid SMILES", "non-empty SMILES", ("ok", r"\[Na\+\]"), "Explicit valence",
                   ("ok", "radical"), "ok"))),
    # every kind of bad row in one file: one output row per input row, in order, the reason on each bad one
    ("csv-every-kind-of-row", ("in.csv", "name,smiles\n" + "\n".join(f"m{k},{smi}" for k, smi in enumerate(
        ["CCO", "not_a_smiles", "", "C1CC", "CC(C", "C(C)(C)(C)(C)C", "c1cccc1", "[H][H]", "C" * (MAX_ATOMS + 1),
         "[Na+].CC(=O)[O-]", "[H]OC", "[CH3]", "[13CH3]O", "*CC", "[Xe]C(=O)O", "C[N+](C)(C)C", "C", "[Og]",
         "C1" + "C" * 200 + "C1", "c1ccccc1O"])) + "\n"),
     Exit(0, rows=("ok", "valid SMILES", "non-empty SMILES", "valid SMILES", "valid SMILES", "Explicit valence",
                   "kekulize", "heavy atom", f"at most {MAX_ATOMS} atoms", ("ok", r"\[Na\+\]"), ("ok", "hydrogen"),
                   ("ok", "radical"), ("ok", "isotope"), ("ok", r"\*|dummy"), ("ok", "Xe"), ("ok", "charge"), "ok",
                   "ok", "ok", "ok"))),
    ("csv-no-smiles-column", ("in.csv", "formula\nCO\nNO\n"), Exit(2, r"smiles")),
    ("csv-empty", ("in.csv", ""), Exit(2, r"empty|header")),
    ("csv-header-only", ("in.csv", "smiles\n"), Exit(2, r"no|none|at least one|empty")),
    ("csv-not-utf8", ("in.csv", "smiles\nCCO\nC\xe9\n".encode("latin-1")), Exit(2, "UTF-8")),
    ("smi-not-utf8", ("in.smi", b"CCO\n\xff\xfe\n"), Exit(2, "UTF-8")),
    ("file-missing", ("__missing__.csv", None), Exit(2, r"missing|exist|not a file")),
    ("file-unknown-suffix", ("in.xyz", "CCO\n"), Exit(2, r"\.csv|format|suffix|extension")),
    ("sdf-records-with-reasons", ("in.sdf", SDF_GOOD + SDF_PENTAVALENT + SDF_GARBAGE + SDF_GOOD),
     Exit(0, rows=("ok", "valence", r"(?i)rdkit|mol block|record|parse", "ok"))),
]

# files given to ``sciattr text --file`` (the topic classifier; at most 500 tokens a text)
TEXT_FILES = [
    ("text-file-every-kind-of-row", ("in.txt", "the striker scored twice\n\n   \n" + "market " * 600 + "\n"
                                     "caf\u00e9 \U0001F600 zebra\nshares fell\tweather\nshares fell\tbusiness\n"),
     Exit(0, rows=("ok", "non-empty", "non-empty", "at most", ("ok", "unknown"), r"class|topic|label",
                   "ok"))),
]

# ``sciattr ...`` argument lists ({tmp}: a temporary folder)
CLI = [
    ("molecule-empty-smiles", ["molecule", "", "--out", "{tmp}/r.html"], Exit(2, "non-empty SMILES")),
    ("molecule-bad-smiles", ["molecule", "C1CC", "--out", "{tmp}/r.html"], Exit(2, "RDKit")),
    ("molecule-unknown-model-lists-all", ["molecule", "CCO", "--model", "nope", "--out", "{tmp}/r.html"],
     Exit(2, r"(?s)(gcn-benzene.*w2n2-benzene|w2n2-benzene.*gcn-benzene)")),
    ("molecule-smiles-and-file", ["molecule", "CCO", "--file", "{tmp}/in.csv"], Exit(2, "not both")),
    ("molecule-nothing", ["molecule"], Exit(2, "or --file")),
    ("molecule-unwritable-out", ["molecule", "CCO", "--out", "/proc/sciattr-nope/r.html"],
     Exit(2, r"(?i)cannot (be )?writ|not writable|cannot create|write")),
    ("molecule-out-is-a-folder-file", ["molecule", "--file", "{tmp}/good.csv", "--out-dir", "{tmp}/blocker/sub"],
     Exit(2, r"(?i)writ|folder|director|exists")),
    ("text-empty", ["text", "", "--out", "{tmp}/t.html"], Exit(2, "non-empty")),
    ("text-unknown-model-lists-all", ["text", "the cat", "--model", "nope", "--out", "{tmp}/t.html"],
     Exit(2, r"(?s)(?=.*lstm-lm)(?=.*topic-classifier)(?=.*g2p)")),
    ("text-nothing", ["text", "--model", "g2p"], Exit(2, "expected a text or --file")),
    ("text-and-file", ["text", "the cat", "--file", "{tmp}/in.txt"], Exit(2, "not both")),
    ("text-file-not-utf8", ["text", "--file", "{tmp}/latin1.txt", "--out-dir", "{tmp}/out"], Exit(2, "UTF-8")),
    ("text-file-missing", ["text", "--file", "{tmp}/missing.txt", "--out-dir", "{tmp}/out"],
     Exit(2, r"not a file|exist|missing")),
    ("text-too-long-names-truncate", ["text", " ".join(["the market"] * 51), "--model", "lstm-lm", "--out",
                                      "{tmp}/t.html"], Exit(2, r"(?s)at most 100 tokens.*--truncate")),
    ("hf-folder-without-config", ["text", "the cat", "--model", "{tmp}/emptydir", "--out", "{tmp}/t.html"],
     Exit(2, r"config|model")),
    ("g2p-all-rows-bad", ["text", "--model", "g2p", "--file", "{tmp}/badwords.txt", "--out-dir", "{tmp}/out"],
     Exit(2, "no row could be attributed")),
]


# ---------------------------------------------------------------------------------------- texts
# classifier_attribution(tiny, [input, "the cat"], [target, None])
CLASSIFIER_ROWS = [
    ("text-empty", ("", None), RowError("non-empty")),
    ("text-blank", ("   \t ", None), RowError("non-empty")),
    ("text-none", (None, None), RowError("expected a string; got NoneType")),
    ("text-number", (3.5, None), RowError("expected a string")),
    ("text-bytes", (b"the cat", None), RowError("expected a string")),
    ("text-too-long", ("cat " * 11, None), RowError("expected at most 10 tokens")),
    ("text-unknown-words", ("the zebra sat", None), RowNote("unknown word.*zebra")),
    ("text-emoji-and-controls", ("the \U0001F600 cat\x07", None), RowNote("unknown word")),
    ("text-nul-byte", ("the\x00cat", None), RowNote("unknown word")),
    ("text-only-unknown", ("zebra giraffe", None), RowNote("unknown word")),
    ("target-unknown-class", ("the cat", "politics"), RowError(r"expected a class name in \['business', 'sports'\]")),
    ("target-class-index-out-of-range", ("the cat", 7), RowError(r"class|range|index")),
]

# lm_attribution(tiny, [input, "the cat"], [next_word, None])
LM_ROWS = [
    ("lm-empty", ("", None), RowError("non-empty")),
    ("lm-too-long", ("dog " * 120, None), RowError("expected at most 100 tokens")),
    ("lm-next-word-unknown", ("the cat", "walrus"), RowNote("'walrus' is not in the vocabulary")),
    ("lm-unknown-words", ("the zebra ran", None), RowNote("zebra")),
]

# whole-call errors of the text API
TEXT_CALLS = [
    ("classifier-all-rows-bad", ("classifier", ["", 3.5], None),
     Raises(InputError, r"row 0: expected a non-empty text.*row 1: expected a string")),
    ("classifier-targets-count", ("classifier", ["the cat"], [0, 1]), Raises(InputError, "one target per text")),
    ("lm-targets-count", ("lm", ["the cat"], ["dog", "cat"]), Raises(InputError, "one (next word|target) per")),
    ("shipped-model-unknown-name", ("attribute_texts", ["x"], "gpt"), Raises(InputError, "expected a model name")),
    ("batch-file-missing", ("read_batch_file", "{tmp}/missing.txt", None), Raises(InputError, "not a file")),
    ("batch-file-empty", ("read_batch_file", "{tmp}/empty.txt", b""), Raises(InputError, "empty file")),
    ("batch-file-not-utf8", ("read_batch_file", "{tmp}/latin1.txt", "caf\xe9 au lait\n".encode("latin-1")),
     Raises(InputError, "UTF-8")),
    ("batch-file-utf16", ("read_batch_file", "{tmp}/utf16.txt", "the cat\n".encode("utf-16")),
     Raises(InputError, "UTF-8")),
]

# attribute_g2p([input, "cat"])
G2P_ROWS = [
    ("g2p-digits", "r2d2", RowError("expected letters a-z")),
    ("g2p-empty", "", RowError(r"expected a word|non-empty|letters")),
    ("g2p-300-letters", "a" * 300, RowError(r"at most \d+ letters|too long|at most")),
    ("g2p-accented", "café", RowError("expected letters a-z")),
    ("g2p-two-words", "the cat", RowError(r"letters a-z|one word")),
]

# model folders that are not loadable: (loader, how the folder is made)
MODEL_FOLDERS = [
    ("hf-folder-no-config", ("hf", "empty"), Raises(InputError, "config.json")),
    ("hf-config-without-model-type", ("hf", "config_without_model_type"), Raises(InputError, r"model_type")),
    ("hf-config-not-json", ("hf", "config_not_json"), Raises(InputError, r"config")),
    ("hf-config-without-weights", ("hf", "config_without_weights"), Raises(InputError, r"weights|safetensors|bin")),
    ("hf-weights-with-wrong-names", ("hf", "renamed_weights"), Raises(InputError, r"(?s)missing.*unexpected|unexpected.*missing")),
    ("text-zoo-wrong-weight-names", ("topic-classifier", "renamed_weights"),
     Raises(InputError, r"(?s)missing.*unexpected|unexpected.*missing")),
    ("text-zoo-missing-weights", ("topic-classifier", "missing_weights"), Raises(InputError, "missing")),
    ("text-zoo-weights-wrong-shape", ("topic-classifier", "wrong_shape"), Raises(InputError, r"shape|size")),
]

# sciattr.load(file with these bytes)
SAVED_FILES = [
    ("saved-result-pickle", "pickle", Raises(ResultFileError, "pickle")),
    ("saved-result-torch-save", "torch_save", Raises(ResultFileError, "torch.save")),
    ("saved-result-malicious-pickle", "malicious_pickle", Raises(ResultFileError, "never unpickles")),
    ("saved-result-empty", b"", Raises(ResultFileError, "too short")),
    ("saved-result-random-bytes", bytes(range(256)) * 3, Raises(ResultFileError, "expected a safetensors file")),
    ("saved-result-plain-safetensors", "plain_safetensors", Raises(ResultFileError, "not a sciattr result")),
    ("saved-result-truncated", "truncated", Raises(ResultFileError, "corrupt")),
    ("saved-result-missing", None, Raises(ResultFileError, "does not exist")),
    ("saved-molecule-as-base-expected-subclass", "base_as_molecule", Raises(ResultFileError, "expected a MoleculeAttribution")),
]


def all_cases() -> list[Case]:
    out = [Case(i, "engine", inp, exp) for i, inp, exp in ENGINE]
    out += [Case(i, "engine_check", inp, exp) for i, inp, exp in ENGINE_CHECKS]
    out += [Case(i, "molecule_row", inp, exp) for i, inp, exp in MOLECULE_ROWS]
    out += [Case(i, "molecule_alone", inp, exp) for i, inp, exp in MOLECULE_ALONE]
    out += [Case(i, "molecule_call", inp, exp, p) for i, inp, exp, p in MOLECULE_CALLS]
    out += [Case(i, "molecule_zoo", inp, exp, p) for i, inp, exp, p in MOLECULE_ZOO]
    out += [Case(i, "molecule_file", inp, exp) for i, inp, exp in MOLECULE_FILES]
    out += [Case(i, "text_file", inp, exp) for i, inp, exp in TEXT_FILES]
    out += [Case(i, "cli", inp, exp) for i, inp, exp in CLI]
    out += [Case(i, "classifier_row", inp, exp) for i, inp, exp in CLASSIFIER_ROWS]
    out += [Case(i, "lm_row", inp, exp) for i, inp, exp in LM_ROWS]
    out += [Case(i, "text_call", inp, exp) for i, inp, exp in TEXT_CALLS]
    out += [Case(i, "g2p_row", inp, exp) for i, inp, exp in G2P_ROWS]
    out += [Case(i, "model_folder", inp, exp) for i, inp, exp in MODEL_FOLDERS]
    out += [Case(i, "saved_file", inp, exp) for i, inp, exp in SAVED_FILES]
    return out


CASES = all_cases()
AREAS = {
    "engine": ("engine", "engine_check"),
    "molecules": ("molecule_row", "molecule_alone", "molecule_call", "molecule_zoo", "molecule_file"),
    "command line": ("cli", "text_file"),
    "texts": ("classifier_row", "lm_row", "text_call", "g2p_row", "model_folder"),
    "saved results": ("saved_file",),
}
