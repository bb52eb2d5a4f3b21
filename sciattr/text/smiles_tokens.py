"""SMILES tokens for transformer models of chemistry, and the rxnfp reaction classifier.

Chemical language models read SMILES split by a regular expression into atoms, bonds, branches,
ring closures and reaction arrows, each one vocabulary token. Because RDKit numbers the atoms of
a parsed SMILES in the order they are written, the atom tokens of each side of a reaction map in
order onto the RDKit atom indices of that side -- token attributions become atom attributions.

The shipped example is the 50-class reaction classifier of the ``rxnfp`` package (a
``BertForSequenceClassification``, ``bert_ft_10k_25s``), read from its model folder with
transformers; no rxnfp module is imported.

    res = attribute_reactions("CC(=O)O.OCC>>CC(=O)OCC", steps=32)
    atoms = reaction_atom_values(res, 0)
    atoms["reactants"].values   # one attribution per reactant atom (RDKit order)
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sciattr.errors import InputError, MissingDependencyError, describe

__all__ = [
    "SMILES_TOKEN_PATTERN",
    "SideAtoms",
    "attribute_reactions",
    "draw_reaction_side",
    "is_atom_token",
    "is_smiles_vocabulary",
    "load_reaction_classifier",
    "reaction_atom_values",
    "rxnfp_model_dir",
    "split_smiles",
]

#: One SMILES token: a bracket atom, a two- or one-letter atom, a ring closure, a bond, a branch,
#: a dot or a reaction arrow.
SMILES_TOKEN_PATTERN = re.compile(
    r"""
    \[[^\[\]]+\]                 # bracket atom: [C@@H], [NH4+], [2H]
  | Br | Cl                      # two-letter organic subset (before B and C)
  | [BCNOPSFI] | [bcnops] | \*   # one-letter organic subset, aromatic atoms, wildcard
  | %\([0-9]{3}\) | %[0-9]{2} | [0-9]    # ring closures
  | >> | >                       # reaction arrows
  | [-=\#$:~/\\().+@?|]          # bonds, branches, dots and the rest
    """,
    re.VERBOSE,
)
_ATOM = re.compile(r"^(\[[^\[\]]+\]|Br|Cl|[BCNOPSFI]|[bcnops]|\*)$")
_SIDES = ("reactants", "agents", "products")
RXNFP_MODEL = "bert_ft_10k_25s"


def split_smiles(smiles: str) -> list[str]:
    """Split a (reaction) SMILES into tokens; every character must belong to a token.

    Raises :class:`InputError` naming the first character no SMILES token matches.
    """
    if not isinstance(smiles, str):
        raise InputError(f"expected a SMILES string; got {describe(smiles)}")
    text = smiles.strip()
    if not text:
        raise InputError(f"expected a non-empty SMILES string; got {smiles!r}")
    tokens, pos = [], 0
    for match in SMILES_TOKEN_PATTERN.finditer(text):
        if match.start() != pos:
            break
        tokens.append(match.group())
        pos = match.end()
    if pos != len(text):
        raise InputError(f"expected a SMILES string; got {text[pos]!r} at position {pos} of {text!r}, which starts "
                         f"no SMILES token")
    return tokens


def is_atom_token(token: str) -> bool:
    """Whether a SMILES token is an atom (bracket atom, organic-subset or aromatic letter, ``*``)."""
    return bool(_ATOM.match(token))


def is_smiles_vocabulary(tokenizer) -> bool:
    """Whether ``tokenizer``'s vocabulary is made of SMILES tokens (has bracket atoms and ``>>``)."""
    vocab = tokenizer.get_vocab() if callable(getattr(tokenizer, "get_vocab", None)) else {}
    return ">>" in vocab and any(t.startswith("[") and "@" in t for t in vocab)


# ---------------------------------------------------------------------------------------- rxnfp
def rxnfp_model_dir(name: str = RXNFP_MODEL) -> Path:
    """Folder of an rxnfp transformer inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec("rxnfp")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the reaction classifier needs the rxnfp package (its model files only); "
                                     "install it with `pip install --no-deps rxnfp`")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "transformers" / name
        if (path / "config.json").is_file():
            return path
    raise MissingDependencyError(f"expected rxnfp model {name!r} under {list(spec.submodule_search_locations)}")


def load_reaction_classifier(dtype: torch.dtype = torch.float64, name: str = RXNFP_MODEL):
    """``(model, tokenizer)``: rxnfp's 50-class reaction BERT (offline) and its SMILES vocabulary."""
    from sciattr.text.huggingface import load_local_model

    return load_local_model(rxnfp_model_dir(name), dtype=dtype)


def attribute_reactions(reactions: str | Sequence[str], *, model=None, tokenizer=None,
                        target="predicted", **options):
    """Token attributions of a SMILES classifier (default: rxnfp's reaction classifier).

    ``reactions``: a reaction SMILES or a list (bad rows are reported in ``result.errors``).
    Other options as in :func:`sciattr.text.huggingface.classifier_integrated_gradients`; the
    SMILES are pre-split by :func:`split_smiles`, one word per token.
    """
    from sciattr.text.huggingface import classifier_integrated_gradients

    if model is None or tokenizer is None:
        model, tokenizer = load_reaction_classifier()
    return classifier_integrated_gradients(model, tokenizer, reactions, target=target, split=split_smiles, **options)


# ---------------------------------------------------------------------------------------- atoms
@dataclass
class SideAtoms:
    """Atom attributions of one side of a reaction (``"reactants"``, ``"agents"``, ``"products"``).

    ``values[k]`` is the attribution of atom ``k`` of ``Chem.MolFromSmiles(smiles)`` (explicit
    hydrogens kept); ``token_positions[k]`` is the position of its token in the model input;
    ``other`` is the summed attribution of the side's other tokens (bonds, branches, ring
    closures, dots), so ``sum(values) + other`` is the side's total; ``mol`` is the RDKit
    molecule when RDKit is installed.
    """

    side: str
    smiles: str
    values: list[float]
    token_positions: list[int]
    other: float = 0.0
    mol: object = field(default=None, repr=False)


def reaction_atom_values(res, example: int = 0, target: int = 0) -> dict[str, SideAtoms]:
    """Per-atom attributions of each side of the reaction (or the molecule) of ``example``.

    ``res`` is a result of :func:`attribute_reactions` (its ``word_ids`` mark special tokens with
    ``None``). Sides are ``"reactants"``, ``"agents"`` (between two single ``>``) and
    ``"products"``; a SMILES without an arrow gives one side, ``"molecule"``. With RDKit
    installed each side is parsed and its atom count checked against the atom tokens.
    """
    pairs = res.to_tokens(example, target=target)
    word_ids = res.word_ids[example] if example < len(res.word_ids) else [0] * len(pairs)
    if len(word_ids) != len(pairs):
        raise InputError(f"expected one word id per token ({len(pairs)}); got {len(word_ids)}")
    tokens = [(pos, tok, value) for pos, ((tok, value), wid) in enumerate(zip(pairs, word_ids)) if wid is not None]
    if not any(tok in (">", ">>") for _, tok, _ in tokens):
        return {"molecule": _side_atoms("molecule", tokens)}
    sides: dict = {}
    pieces: list = []
    names = iter(_SIDES)
    current = next(names)
    for pos, tok, value in tokens:
        if tok in (">", ">>"):
            if pieces:
                sides[current] = _side_atoms(current, pieces)
            pieces, current = [], ("products" if tok == ">>" else next(names, "products"))
            continue
        pieces.append((pos, tok, value))
    if pieces:
        sides[current] = _side_atoms(current, pieces)
    return sides


def _side_atoms(side: str, pieces: list[tuple[int, str, float]]) -> SideAtoms:
    smiles = "".join(tok for _, tok, _ in pieces)
    atoms = [(pos, value) for pos, tok, value in pieces if is_atom_token(tok)]
    mol = _parse(smiles)
    if mol is not None and mol.GetNumAtoms() != len(atoms):
        raise InputError(f"expected {len(atoms)} atoms in the {side} {smiles!r} (one per atom token); "
                         f"RDKit parsed {mol.GetNumAtoms()}")
    other = sum(value for _, tok, value in pieces if not is_atom_token(tok))
    return SideAtoms(side, smiles, [v for _, v in atoms], [p for p, _ in atoms], other, mol)


def _parse(smiles: str):
    try:
        from rdkit import Chem
    except ImportError:
        return None
    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(smiles, params)
    if mol is None:
        raise InputError(f"expected a valid SMILES; RDKit could not parse {smiles!r}")
    return mol


def draw_reaction_side(res, example: int = 0, side: str = "reactants", path=None, *, target: int = 0,
                       image_format: str = "svg"):
    """Draw one side of a reaction with its atoms coloured by attribution (red +, blue -).

    Uses :func:`sciattr.chem.draw.draw_molecule` (RDKit). Returns the SVG text / PNG bytes, or
    the written path when ``path`` is given (its suffix picks the format).
    """
    from sciattr.chem import draw

    sides = reaction_atom_values(res, example, target)
    if side not in sides:
        raise InputError(f"expected a side in {sorted(sides)}; got {side!r}")
    atoms = sides[side]
    if atoms.mol is None:
        raise MissingDependencyError("drawing needs RDKit; install it with `pip install rdkit`")
    fmt = image_format if path is None else Path(path).suffix.lower().lstrip(".")
    label = res.target_labels[example] if example < len(res.target_labels) else res.target
    picture = draw.draw_molecule(atoms.mol, atoms.values, title=f"{side} -> class {label}", image_format=fmt)
    return picture if path is None else draw.save_picture(picture, path)
