"""Molecules as feature tables with index maps back to atoms and bonds.

Public API
----------
``SimpleWeaveFeaturizer(max_distance=2, ...)``
    Kearnes et al. (2016) "simple" featurization: element one-hot per atom; bond type and
    graph-distance one-hot per atom pair.
``WeaveFeaturizer(max_distance=2, ...)``
    The fuller Weave featurization: element, degree, total valence, formal charge,
    hybridization, aromaticity, hydrogen count and ring membership per atom; bond type,
    conjugation, same ring and graph distance per pair.
``PyGFeaturizer(atoms="full", ...)``
    One-hot node features and per-bond edge features, both edge directions (PyG convention);
    ``featurizer.data(smiles)`` gives a ``torch_geometric.data.Data(x, edge_index, edge_attr)``.
``MoleculeGraph``
    What a featurizer returns: ``atoms (n_atoms, F_atom)``, ``links (n_links, F_link)``,
    ``link_index (2, n_links)``, ``link_bond (n_links,)`` and ``source_atoms (n_atoms,)``.
``featurize_batch(featurizer, items) -> (graphs, rows, errors)``
    Featurize many molecules; bad rows become ``{"row", "input", "message"}`` records.
``collate(graphs) -> GraphBatch``
    The disjoint union of many graphs (what models are trained on).
``load_sdf(path) -> list[Chem.Mol | UnreadableRecord]``
    Records of an SDF file; a record RDKit cannot read is an :class:`UnreadableRecord` carrying
    RDKit's reason (explaining it gives a row error with that reason).

Conventions (decided once, used everywhere)
-------------------------------------------
* **Atoms.** Atom row ``i`` is atom ``i`` of ``graph.mol`` (the processed molecule);
  ``graph.source_atoms[i]`` is its index in the molecule that was passed in (hydrogens added
  by ``hydrogens="explicit"`` are numbered after the input's atoms, their bonds after its
  bonds, and a note says so). Everything sciattr shows or writes about an atom
  uses that input index; when atoms were left out (a fragment, explicit hydrogens) the notes
  say which.
* **What RDKit says.** RDKit's warnings while a molecule is read or sanitized become notes of
  the row; when RDKit refuses a molecule its reason is the row's error message.
* **What a featurizer cannot represent** (a formal charge or radical in the simple
  featurization, isotopes, radicals, elements outside :data:`ELEMENTS`, dummy atoms ``*``) is
  named in ``graph.notes``: two molecules that differ only there get identical features.
* **Hydrogens.** ``hydrogens="implicit"`` (default) removes hydrogens with ``Chem.RemoveHs``; they
  enter only as the hydrogen count of the full featurization. Hydrogens RDKit keeps (isotopes,
  H2) are atoms of element ``H``. ``"explicit"`` adds all hydrogens as atoms.
* **Salts and fragments.** ``fragments="largest"`` (default) keeps the fragment with the most
  heavy atoms (first on ties) and notes the removed ones in ``graph.notes``; ``"all"`` keeps
  every fragment (no pairs between fragments); ``"error"`` rejects multi-fragment input.
* **Charges** are kept as written (no neutralization); the full featurization encodes the
  formal charge, the simple one ignores it. **Stereo** is not featurized: stereoisomers get the
  same features.
* **Unknown elements** (and dummy atoms ``*``) go to the ``element=other`` column, unknown bond
  orders (dative, ...) to ``bond=other``; nothing crashes on them and ``graph.notes`` says so.
* **Pairs** (Weave featurizers) are unordered: one row per atom pair ``i < j`` of one fragment
  with graph distance ``<= max_distance`` (Kearnes et al. use 2, the "N2" of W1N2/W2N2;
  ``None`` takes all pairs, which grow as n^2). No self pairs. The distance one-hot has the
  fixed columns ``d=1 .. d=6, d>=7`` whatever the cutoff, so a model's input width does not
  depend on it.
* **Edges** (PyG featurizer) are directed: every bond gives the edges ``(i, j)`` and ``(j, i)``
  with the same features. ``link_bond`` maps a pair or edge to its RDKit bond index (``-1``
  for a non-bonded pair).
* **Limits.** At most ``max_atoms`` (default :data:`MAX_ATOMS`) atoms and ``max_links``
  (default :data:`MAX_LINKS`) pairs or edges per molecule; above either the row is rejected with
  an :class:`~sciattr.errors.InputError` suggesting a smaller ``max_distance``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from sciattr.errors import InputError, SciAttrError, describe, require

Chem = require("rdkit.Chem", "chem")
_rdBase = require("rdkit.rdBase", "chem")

__all__ = [
    "ELEMENTS",
    "MAX_ATOMS",
    "MAX_LINKS",
    "GraphBatch",
    "MoleculeGraph",
    "PyGFeaturizer",
    "SimpleWeaveFeaturizer",
    "UnreadableRecord",
    "WeaveFeaturizer",
    "collate",
    "featurize_batch",
    "featurizer_from_spec",
    "load_sdf",
    "prepare_molecule",
    "rdkit_messages",
    "source_bonds",
    "unrepresented",
]

#: Elements with their own one-hot column; everything else is ``element=other``.
ELEMENTS = ("H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I")
#: Largest molecule (atoms after hydrogen handling) a featurizer accepts by default.
MAX_ATOMS = 2000
#: Largest number of pairs or edges per molecule a featurizer accepts by default.
MAX_LINKS = 250_000

DISTANCE_BINS = 7  # d=1 .. d=6, d>=7
_BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
_HYBRIDIZATIONS = ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2")
_SOURCE_PROP = "_sciattr_source_atom"

MoleculeInput = Any  # a SMILES string or an RDKit Mol


# ---------------------------------------------------------------------------------------- containers
@dataclass
class MoleculeGraph:
    """One featurized molecule.

    Attributes
    ----------
    mol:
        The processed RDKit molecule; atom row ``i`` is ``mol.GetAtomWithIdx(i)``.
    smiles:
        Canonical SMILES of ``mol``.
    atoms:
        ``(n_atoms, F_atom)`` atom features.
    links:
        ``(n_links, F_link)`` pair features (``kind="pairs"``) or edge features (``kind="edges"``).
    link_index:
        ``(2, n_links)`` atom rows joined by each link (``i < j`` for pairs; both directions for edges).
    link_bond:
        ``(n_links,)`` RDKit bond index of each link, ``-1`` for non-bonded pairs.
    source_atoms:
        ``(n_atoms,)`` index of each atom in the input molecule (added hydrogens: after the input's atoms).
    kind:
        ``"pairs"`` (Weave) or ``"edges"`` (PyG).
    notes:
        Remarks on the processing (removed fragments, unknown elements).
    """

    mol: Any
    smiles: str
    atoms: torch.Tensor
    links: torch.Tensor
    link_index: torch.Tensor
    link_bond: torch.Tensor
    source_atoms: torch.Tensor
    kind: str
    notes: tuple[str, ...] = ()

    @property
    def n_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def n_links(self) -> int:
        return int(self.links.shape[0])

    def to_data(self):
        """This graph as ``torch_geometric.data.Data(x, edge_index, edge_attr, smiles=...)``."""
        require("torch_geometric", "chem")
        from torch_geometric.data import Data

        if self.kind != "edges":
            raise InputError(f"expected an edge graph (PyGFeaturizer) for a PyG Data; got kind {self.kind!r}")
        return Data(x=self.atoms, edge_index=self.link_index, edge_attr=self.links, smiles=self.smiles)


@dataclass
class GraphBatch:
    """The disjoint union of several :class:`MoleculeGraph`.

    ``atoms (N, F_atom)``, ``links (L, F_link)``, ``link_index (2, L)`` into the rows of ``atoms``,
    ``atom_batch (N,)`` and ``link_batch (L,)`` graph index of each row, ``n_graphs``.
    A Weave model is called as ``model(b.atoms, b.links, b.link_index, b.atom_batch, b.n_graphs)``,
    a PyG model as ``model(b.atoms, b.link_index, b.links, b.atom_batch)``.
    """

    atoms: torch.Tensor
    links: torch.Tensor
    link_index: torch.Tensor
    atom_batch: torch.Tensor
    link_batch: torch.Tensor
    n_graphs: int

    def to(self, device=None, dtype=None) -> GraphBatch:
        return GraphBatch(self.atoms.to(device=device, dtype=dtype), self.links.to(device=device, dtype=dtype),
                          self.link_index.to(device), self.atom_batch.to(device), self.link_batch.to(device),
                          self.n_graphs)


def collate(graphs: Sequence[MoleculeGraph]) -> GraphBatch:
    """Stack graphs into one :class:`GraphBatch` (atom rows offset per graph)."""
    if not graphs:
        raise InputError("expected at least one graph to collate; got none")
    kinds = {g.kind for g in graphs}
    if len(kinds) > 1:
        raise InputError(f"expected graphs of one kind; got {sorted(kinds)}")
    sizes = torch.tensor([g.n_atoms for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    index = torch.cat([g.link_index + offsets[k] for k, g in enumerate(graphs)], 1)
    ids = torch.arange(len(graphs))
    return GraphBatch(
        atoms=torch.cat([g.atoms for g in graphs]),
        links=torch.cat([g.links for g in graphs]),
        link_index=index,
        atom_batch=torch.repeat_interleave(ids, sizes),
        link_batch=torch.repeat_interleave(ids, torch.tensor([g.n_links for g in graphs])),
        n_graphs=len(graphs),
    )


# ---------------------------------------------------------------------------------------- parsing
_RDKIT_PROP = "_sciattr_rdkit_messages"


class _RDKitLog(logging.Handler):
    """Collects what RDKit logs (through Python's logging) while a molecule is read."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        text = "; ".join(line.strip() for line in record.getMessage().splitlines() if line.strip())
        text = re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", text)
        text = re.sub(r"^ERROR:\s*", "", text)
        if not text or text in self.messages or _NOISE.search(text):
            return
        self.messages.append(text)


#: RDKit lines that add nothing to the reason: the SDF reader's recovery note, the caret under a
#: SMILES, the echo of a failed SMILES (the input is already in the message).
_NOISE = re.compile(r"^(moving to the beginning of the next molecule|[~^\s]+|"
                    r"SMILES Parse Error: Failed parsing SMILES .* for input: .*)$")


class _Capture(logging.Filter):
    """Installed once on the ``rdkit`` logger: a record logged by a thread inside
    :func:`rdkit_messages` goes to that block's collector and no further (neither printed nor
    propagated); records of other threads pass as usual. Threads capture independently, so
    molecules read in a worker thread keep their own messages."""

    def filter(self, record):
        stack = getattr(_CAPTURING, "stack", None)
        if stack:
            stack[-1].emit(record)
            return False
        return True


_CAPTURING = threading.local()
_CAPTURE_FILTER = _Capture()


@contextlib.contextmanager
def rdkit_messages():
    """Capture RDKit's log messages (warnings and errors) inside the block: yields a list that
    fills with them, timestamps removed, instead of letting RDKit print to stderr. Only this
    thread's messages are collected (blocks in several threads at once are independent)."""
    collector = _RDKitLog()
    logger = logging.getLogger("rdkit")
    _rdBase.LogToPythonLogger()  # recent RDKit's default; messages reach the logger from the thread that logs
    if _CAPTURE_FILTER not in logger.filters:
        logger.addFilter(_CAPTURE_FILTER)
    stack = _CAPTURING.__dict__.setdefault("stack", [])
    stack.append(collector)
    try:
        yield collector.messages
    finally:
        stack.pop()


def atoms_of(mol) -> list:
    """The atoms of ``mol`` as a list, fetched by index (RDKit's ``GetAtoms()`` sequence checks its
    length twice per item from Python, which makes it about twice as slow)."""
    get = mol.GetAtomWithIdx
    return [get(k) for k in range(mol.GetNumAtoms())]


def bonds_of(mol) -> list:
    """The bonds of ``mol`` as a list, fetched by index (see :func:`atoms_of`)."""
    get = mol.GetBondWithIdx
    return [get(k) for k in range(mol.GetNumBonds())]


def _parse_smiles(text: str):
    if not text.strip():
        raise InputError(f"expected a non-empty SMILES string; got {text!r}")
    with rdkit_messages() as said:
        mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:
            echoes = {text.strip(), text.strip().split()[0]}  # RDKit repeats the input (up to a space)
            reason = "; ".join(m for m in said if m not in echoes) or "RDKit cannot parse it"
            raise InputError(f"expected a valid SMILES; got {text!r} (RDKit: {reason})")
        try:
            Chem.SanitizeMol(mol)
        except Chem.rdchem.MolSanitizeException as exc:  # valence, kekulization, ...
            raise InputError(f"expected a chemically valid SMILES; got {text!r} (RDKit: {exc})") from None
        # what MolFromSmiles does after sanitizing; conflicting stereo marks are cleaned (and said) here
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    if said:
        mol.SetProp(_RDKIT_PROP, "; ".join(said))
    return mol


@dataclass(frozen=True)
class UnreadableRecord:
    """A record of a file that RDKit refused: ``index`` (0-based record), RDKit's ``reason`` and
    the record's title line when it could be read."""

    index: int
    reason: str
    name: str = ""

    def __str__(self) -> str:
        return f"<unreadable record {self.index}>"


def _as_mol(item: MoleculeInput):
    if isinstance(item, str):
        return _parse_smiles(item)
    if isinstance(item, Chem.Mol):
        return Chem.Mol(item)
    if isinstance(item, UnreadableRecord):
        raise InputError(f"RDKit cannot read record {item.index}{f' ({item.name})' if item.name else ''}: "
                         f"{item.reason}")
    if item is None:
        raise InputError("expected a SMILES string or an RDKit Mol; got None (an unreadable record?)")
    raise InputError(f"expected a SMILES string or an RDKit Mol; got {describe(item)}")


def _largest_fragment(mol, mode: str, notes: list[str]):
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) <= 1 or mode == "all":
        return mol
    if mode == "error":
        raise InputError(f"expected one molecule; got {len(frags)} fragments in "
                         f"{Chem.MolToSmiles(mol)!r} (pass fragments='largest' or 'all')")
    sizes = [f.GetNumHeavyAtoms() for f in frags]
    keep = int(np.argmax(sizes))
    removed = [Chem.MolToSmiles(f) for k, f in enumerate(frags) if k != keep]
    left = sorted(a.GetIntProp(_SOURCE_PROP) for k, f in enumerate(frags) if k != keep for a in atoms_of(f))
    notes.append(f"kept the largest fragment; left out {', '.join(removed)} (input atoms {_ranges(left)})")
    return frags[keep]


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    out: list[str] = []
    runs: list[list[int]] = []
    for k in indices:
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    for start, end in runs:
        out.append(f"{start}-{end}" if end > start else str(start))
    return ", ".join(out)


def prepare_molecule(item: MoleculeInput, *, hydrogens: str = "implicit", fragments: str = "largest",
                     max_atoms: int = MAX_ATOMS):
    """Parse and normalize one molecule; returns ``(mol, source_atoms, notes)``.

    See the module docstring for the conventions on hydrogens, fragments, charges and stereo.
    Raises :class:`~sciattr.errors.InputError` for invalid or empty input, molecules without heavy
    atoms and molecules larger than ``max_atoms``.
    """
    if hydrogens not in ("implicit", "explicit"):
        raise InputError(f"expected hydrogens='implicit' or 'explicit'; got {hydrogens!r}")
    if fragments not in ("largest", "all", "error"):
        raise InputError(f"expected fragments='largest', 'all' or 'error'; got {fragments!r}")
    mol = _as_mol(item)
    if mol.GetNumAtoms() == 0:
        raise InputError("expected a molecule with at least one atom; got an empty molecule")
    notes: list[str] = []
    if mol.HasProp(_RDKIT_PROP):
        notes.append(f"RDKit: {mol.GetProp(_RDKIT_PROP)}")
    n_input, n_input_bonds = mol.GetNumAtoms(), mol.GetNumBonds()
    for atom in atoms_of(mol):
        atom.SetIntProp(_SOURCE_PROP, atom.GetIdx())
    for bond in bonds_of(mol):
        bond.SetIntProp(_SOURCE_PROP, bond.GetIdx())
    mol = _largest_fragment(mol, fragments, notes)
    kept_before = [a.GetIntProp(_SOURCE_PROP) for a in atoms_of(mol)]
    with rdkit_messages() as said:
        try:
            mol = Chem.AddHs(mol) if hydrogens == "explicit" else Chem.RemoveHs(mol)
        except (Chem.rdchem.MolSanitizeException, RuntimeError) as exc:  # a Mol passed in unsanitized
            raise InputError(f"expected a sanitizable molecule; got {_input_text(mol)!r} (RDKit: {exc})") from None
    if said:
        notes.append(f"RDKit: {'; '.join(said)}")
    atoms = atoms_of(mol)
    if hydrogens == "implicit":
        now = {a.GetIntProp(_SOURCE_PROP) for a in atoms if a.HasProp(_SOURCE_PROP)}
        gone = sorted(set(kept_before) - now)
        if gone:
            notes.append(f"explicit hydrogens left out as atoms (input atoms {_ranges(gone)})")
    if mol.GetNumHeavyAtoms() == 0:
        raise InputError(f"expected a molecule with at least one heavy atom; got {Chem.MolToSmiles(mol)!r}")
    if mol.GetNumAtoms() > max_atoms:
        raise InputError(f"expected at most {max_atoms} atoms per molecule; got {mol.GetNumAtoms()}")
    added = [a for a in atoms if not a.HasProp(_SOURCE_PROP)]
    if added:  # hydrogens added by hydrogens="explicit": numbered after the input's own atoms and bonds
        for k, atom in enumerate(added):
            atom.SetIntProp(_SOURCE_PROP, n_input + k)
        for k, bond in enumerate(b for b in bonds_of(mol) if not b.HasProp(_SOURCE_PROP)):
            bond.SetIntProp(_SOURCE_PROP, n_input_bonds + k)
        notes.append(f"hydrogens added as atoms {_ranges(range(n_input, n_input + len(added)))} "
                     f"(numbered after the input's {n_input} atoms)")
    source = [a.GetIntProp(_SOURCE_PROP) for a in atoms]
    mol.SetIntProp("_sciattr_input_atoms", n_input + len(added))
    return mol, torch.tensor(source, dtype=torch.long), tuple(notes)


def source_bonds(mol) -> list[int]:
    """Input bond index of each bond of a prepared molecule (bonds to added hydrogens: after the input's bonds)."""
    return [b.GetIntProp(_SOURCE_PROP) if b.HasProp(_SOURCE_PROP) else -1 for b in bonds_of(mol)]


def unrepresented(mol, represents: frozenset, source=None) -> list[str]:
    """Notes on what a featurization cannot represent in ``mol`` (atoms named by input index).

    ``represents`` holds the properties it encodes among ``"charge"`` (formal charges
    -2..+2; larger ones share the end columns), ``"radical"`` and ``"isotope"``; elements outside
    :data:`ELEMENTS` and dummy atoms always share the ``element=other`` column.
    """
    def where(atoms):
        ids = sorted(int(source[a]) if source is not None and source[a] >= 0 else a for a in atoms)
        return f"input atom{'s' if len(ids) > 1 else ''} {_ranges(ids)}"

    found: dict[str, list[int]] = {}
    for atom in atoms_of(mol):
        k, charge = atom.GetIdx(), atom.GetFormalCharge()
        if charge and ("charge" not in represents or abs(charge) > 2):
            found.setdefault("formal charge", []).append(k)
        if atom.GetNumRadicalElectrons() and "radical" not in represents:
            found.setdefault("radical electrons", []).append(k)
        if atom.GetIsotope() and "isotope" not in represents:
            found.setdefault("isotope", []).append(k)
        if atom.GetAtomicNum() == 0:
            found.setdefault("dummy atom", []).append(k)
        elif atom.GetSymbol() not in ELEMENTS:
            found.setdefault(f"element {atom.GetSymbol()}", []).append(k)
    notes = []
    for what, atoms in found.items():
        if what.startswith("element") or what == "dummy atom":
            notes.append(f"{what} ({where(atoms)}) featurized as element=other")
        elif what == "formal charge" and "charge" in represents:
            notes.append(f"formal charge beyond +-2 ({where(atoms)}) featurized as the +-2 column")
        else:
            notes.append(f"{what} ({where(atoms)}) not represented by this featurizer (featurized like the "
                         f"same atom without it)")
    return notes


def load_sdf(path: str | os.PathLike) -> list:
    """All records of an SDF file as RDKit molecules.

    A record RDKit cannot read is an :class:`UnreadableRecord` with RDKit's reason; a record read
    with RDKit warnings carries them, and they become notes of its row when it is explained.
    """
    if not os.path.exists(path):
        raise InputError(f"expected an existing SDF file; got {os.fspath(path)!r}")
    supplier = Chem.SDMolSupplier(os.fspath(path), removeHs=False)
    records = []
    for k in range(len(supplier)):
        with rdkit_messages() as said:
            mol = supplier[k]
        if mol is None:
            title = ""
            try:
                title = supplier.GetItemText(k).splitlines()[0].strip()
            except (RuntimeError, IndexError, UnicodeDecodeError):
                pass
            records.append(UnreadableRecord(k, "; ".join(said) or "no reason given", title))
            continue
        if said:
            mol.SetProp(_RDKIT_PROP, "; ".join(said))
        records.append(mol)
    return records


# ---------------------------------------------------------------------------------------- one-hot blocks
def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((codes.shape[0], width), dtype=np.float32)
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out


def _code(value, choices: Sequence) -> int:
    """Index of ``value`` in ``choices``; ``len(choices)`` (the "other" column) if absent."""
    return _positions(tuple(choices)).get(value, len(choices))


@functools.lru_cache(maxsize=64)
def _positions(choices: tuple) -> dict:
    """Value -> first index in ``choices``."""
    return {v: k for k, v in reversed(list(enumerate(choices)))}


def _names(prefix: str, labels: Sequence) -> list[str]:
    return [f"{prefix}={label}" for label in labels]


def _clip_code(value: int, low: int, high: int) -> int:
    """Column of an integer in bins ``low, ..., high`` where the end bins take everything beyond."""
    return min(max(value, low), high) - low


_ELEMENT_NAMES = _names("element", (*ELEMENTS, "other"))
_BOND_NAMES = _names("bond", ("none", "single", "double", "triple", "aromatic", "other"))
_DISTANCE_NAMES = _names("distance", (*range(1, DISTANCE_BINS), f"{DISTANCE_BINS}+"))


def _element_codes(mol) -> np.ndarray:
    return np.array([_code(a.GetSymbol(), ELEMENTS) for a in atoms_of(mol)], dtype=np.int64)


def _simple_atom_features(mol) -> np.ndarray:
    return _one_hot(_element_codes(mol), len(ELEMENTS) + 1)


_FULL_ATOM_NAMES = (
    _ELEMENT_NAMES
    + _names("degree", (0, 1, 2, 3, 4, 5, "6+"))
    + _names("valence", (0, 1, 2, 3, 4, 5, 6, "7+"))
    + _names("charge", ("-2-", -1, 0, "+1", "+2+"))
    + _names("hybridization", (*_HYBRIDIZATIONS, "other"))
    + ["aromatic"]
    + _names("hydrogens", (0, 1, 2, 3, "4+"))
    + ["in_ring"]
    + _names("ring_size", (3, 4, 5, 6, 7, "8+"))
)


def _smallest_ring_code(atom, ring_info) -> int | None:
    for size in range(3, 8):
        if ring_info.IsAtomInRingOfSize(atom.GetIdx(), size):
            return size - 3
    return 5 if atom.IsInRing() else None


def _full_atom_features(mol) -> np.ndarray:
    n = mol.GetNumAtoms()
    ring_info = mol.GetRingInfo()
    blocks = [_simple_atom_features(mol)]
    columns: dict[str, list[int]] = {"degree": [], "valence": [], "charge": [], "hyb": [], "hyd": []}
    flags = np.zeros((n, 2), dtype=np.float32)  # aromatic, in_ring
    ring = np.zeros((n, 6), dtype=np.float32)
    for atom in atoms_of(mol):
        i = atom.GetIdx()
        columns["degree"].append(_clip_code(atom.GetDegree(), 0, 6))
        columns["valence"].append(_clip_code(atom.GetTotalValence(), 0, 7))
        columns["charge"].append(_clip_code(atom.GetFormalCharge(), -2, 2))
        columns["hyb"].append(_code(str(atom.GetHybridization()), _HYBRIDIZATIONS))
        columns["hyd"].append(_clip_code(atom.GetTotalNumHs(), 0, 4))
        flags[i] = (atom.GetIsAromatic(), atom.IsInRing())
        size = _smallest_ring_code(atom, ring_info)
        if size is not None:
            ring[i, size] = 1.0
    widths = {"degree": 7, "valence": 8, "charge": 5, "hyb": 7, "hyd": 5}
    encoded = {k: _one_hot(np.array(v, dtype=np.int64), widths[k]) for k, v in columns.items()}
    blocks += [encoded["degree"], encoded["valence"], encoded["charge"], encoded["hyb"], flags[:, :1],
               encoded["hyd"], flags[:, 1:], ring]
    return np.concatenate(blocks, 1)


def _bond_code(bond) -> int:
    return _bond_type_code(bond.GetBondType())


@functools.cache
def _bond_type_code(kind) -> int:
    return 1 + _code(str(kind), _BOND_TYPES)  # 0 is "none"


def _bond_codes(mol) -> np.ndarray:
    """``(n_bonds,)`` bond code (1 + type column) of every bond of ``mol``."""
    return np.array([_bond_code(b) for b in bonds_of(mol)], dtype=np.int64)


# ---------------------------------------------------------------------------------------- pairs and edges
def _distance_matrix(mol) -> np.ndarray:
    dist = Chem.GetDistanceMatrix(mol).astype(np.int64, copy=False) if mol.GetNumAtoms() > 1 \
        else np.zeros((1, 1), dtype=np.int64)
    return dist


def _pair_table(mol, max_distance: int | None, max_links: int):
    """``(i, j, distance, bond_index)`` arrays of the unordered pairs within the cutoff."""
    n = mol.GetNumAtoms()
    dist = _distance_matrix(mol)
    i, j = np.triu_indices(n, k=1)
    d = dist[i, j]
    keep = d < 10**7  # RDKit marks disconnected pairs with 1e8
    if max_distance is not None:
        keep &= d <= max_distance
    i, j, d = i[keep], j[keep], d[keep]
    if i.shape[0] > max_links:
        raise InputError(f"expected at most {max_links} atom pairs per molecule; got {i.shape[0]} "
                         f"({n} atoms, max_distance={max_distance}); pass a smaller max_distance")
    bond_of = np.full((n, n), -1, dtype=np.int64)
    for k, bond in enumerate(bonds_of(mol)):
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bond_of[a, b] = bond_of[b, a] = k
    return i, j, d, bond_of[i, j]


def _pair_bond_block(mol, bonds: np.ndarray) -> np.ndarray:
    per_bond = np.concatenate([_bond_codes(mol), np.zeros(1, dtype=np.int64)])  # index -1: no bond
    return _one_hot(per_bond[bonds], len(_BOND_NAMES))


def _distance_block(d: np.ndarray) -> np.ndarray:
    return _one_hot(np.clip(d, 1, DISTANCE_BINS) - 1, DISTANCE_BINS)


def _same_ring(mol, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    rings = mol.GetRingInfo().AtomRings()
    if not rings:
        return np.zeros((i.shape[0], 1), dtype=np.float32)
    member = np.zeros((mol.GetNumAtoms(), len(rings)), dtype=bool)
    for k, ring in enumerate(rings):
        member[list(ring), k] = True
    return (member[i] & member[j]).any(1, keepdims=True).astype(np.float32)


def _conjugated(mol, bonds: np.ndarray) -> np.ndarray:
    per_bond = np.array([b.GetIsConjugated() for b in bonds_of(mol)] + [False], dtype=np.float32)  # -1: no bond
    return per_bond[bonds].reshape(-1, 1)


# ---------------------------------------------------------------------------------------- featurizers
@dataclass(frozen=True)
class _Featurizer:
    """Shared parsing options and the call protocol of every featurizer."""

    hydrogens: str = "implicit"
    fragments: str = "largest"
    max_atoms: int = MAX_ATOMS
    max_links: int = MAX_LINKS

    kind = "pairs"
    atom_feature_names: tuple[str, ...] = field(default=(), init=False, repr=False)
    link_feature_names: tuple[str, ...] = field(default=(), init=False, repr=False)

    @property
    def n_atom_features(self) -> int:
        return len(self.atom_feature_names)

    @property
    def n_link_features(self) -> int:
        return len(self.link_feature_names)

    #: What the atom features encode beyond the element (see :func:`unrepresented`).
    represents: ClassVar[frozenset[str]] = frozenset()

    def __call__(self, item: MoleculeInput) -> MoleculeGraph:
        mol, source, notes = prepare_molecule(item, hydrogens=self.hydrogens, fragments=self.fragments,
                                              max_atoms=self.max_atoms)
        notes = notes + tuple(unrepresented(mol, self.represents, source.tolist()))
        atoms = self._atom_features(mol)
        links, index, bonds = self._links(mol)
        if (_bond_codes(mol) == len(_BOND_TYPES) + 1).any():
            notes = notes + ("bond(s) of unusual order featurized as bond=other",)
        return MoleculeGraph(
            mol=mol, smiles=Chem.MolToSmiles(mol), atoms=torch.from_numpy(atoms),
            links=torch.from_numpy(links), link_index=torch.from_numpy(index).long(),
            link_bond=torch.from_numpy(bonds).long(), source_atoms=source, kind=self.kind, notes=notes,
        )

    def dummy_atoms(self, atoms: torch.Tensor) -> torch.Tensor:
        """The ``dummy`` baseline of atom rows: an atom of unknown element, nothing else set."""
        out = torch.zeros_like(atoms)
        out[:, self.atom_feature_names.index("element=other")] = 1
        return out

    def dummy_links(self, links: torch.Tensor) -> torch.Tensor:
        """The ``dummy`` baseline of link rows: bond of unknown type, graph distance kept."""
        out = torch.zeros_like(links)
        keep = [k for k, name in enumerate(self.link_feature_names) if name.startswith("distance=")]
        out[:, keep] = links[:, keep]
        if "bond=other" in self.link_feature_names:
            bonded = links[:, [self.link_feature_names.index(n) for n in self.link_feature_names
                               if n.startswith("bond=") and n != "bond=none"]].sum(1) > 0
            out[bonded, self.link_feature_names.index("bond=other")] = 1
        return out

    @property
    def has_skeleton(self) -> bool:
        """Whether the ``skeleton`` baseline exists here: an element-only atom featurization with a
        carbon column (other columns -- charge, hybridization, hydrogens -- have no one neutral value)."""
        names = self.atom_feature_names
        return "element=C" in names and all(name.startswith("element=") for name in names)

    def skeleton_atoms(self, atoms: torch.Tensor) -> torch.Tensor:
        """The ``skeleton`` baseline of atom rows: every atom a carbon (see :attr:`has_skeleton`)."""
        if not self.has_skeleton:
            extra = [name for name in self.atom_feature_names if not name.startswith("element=")]
            got = f"{len(extra)} more columns ({', '.join(extra[:3])}, ...)" if extra else "no element=C column"
            raise InputError(f"expected an element-only atom featurization for baselines='skeleton' (e.g. "
                             f"SimpleWeaveFeaturizer, PyGFeaturizer(atoms='simple')); got {type(self).__name__} with "
                             f"{got}; try 'dummy' or expected gradients (ReferenceBaselines)")
        out = torch.zeros_like(atoms)
        out[:, self.atom_feature_names.index("element=C")] = 1
        return out

    def skeleton_links(self, links: torch.Tensor) -> torch.Tensor:
        """The ``skeleton`` baseline of link rows: every bond single, conjugation cleared, the
        topology kept (graph distance, ring membership, ``bond=none`` of non-bonded pairs)."""
        names = list(self.link_feature_names)
        bond_cols = [k for k, name in enumerate(names) if name.startswith("bond=") and name != "bond=none"]
        topology = [k for k, name in enumerate(names) if name.startswith("distance=")
                    or name in ("bond=none", "in_ring", "same_ring")]
        cleared = [k for k, name in enumerate(names) if name == "conjugated"]
        unknown = sorted(set(range(len(names))) - set(bond_cols) - set(topology) - set(cleared))
        if unknown:
            raise InputError(f"expected link columns of bond type, conjugation, ring membership or graph distance "
                             f"for baselines='skeleton'; got also {[names[k] for k in unknown]}")
        out = torch.zeros_like(links)
        out[:, topology] = links[:, topology]
        bonded = links[:, bond_cols].sum(1) > 0
        out[bonded, names.index("bond=single")] = 1
        return out

    def _atom_features(self, mol) -> np.ndarray:
        raise NotImplementedError

    def _links(self, mol):
        raise NotImplementedError


@dataclass(frozen=True)
class _PairFeaturizer(_Featurizer):
    max_distance: int | None = 2

    def __post_init__(self):
        if self.max_distance is not None and (isinstance(self.max_distance, bool)
                                              or not isinstance(self.max_distance, int) or self.max_distance < 1):
            raise InputError(f"expected max_distance to be None or an integer >= 1; got {self.max_distance!r}")

    @property
    def n_pair_features(self) -> int:
        return self.n_link_features

    @property
    def pair_feature_names(self) -> tuple[str, ...]:
        return self.link_feature_names

    def _links(self, mol):
        i, j, d, bonds = _pair_table(mol, self.max_distance, self.max_links)
        index = np.stack([i, j]) if i.shape[0] else np.zeros((2, 0), dtype=np.int64)
        return self._pair_features(mol, i, j, d, bonds), index, bonds

    def _pair_features(self, mol, i, j, d, bonds) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class SimpleWeaveFeaturizer(_PairFeaturizer):
    """Kearnes et al. (2016) "simple" featurization (the one of the counterfactuals paper).

    Atoms: ``element=<symbol>`` one-hot over :data:`ELEMENTS` plus ``element=other`` (14 columns).
    Pairs ``i < j`` within ``max_distance``: ``bond=none|single|double|triple|aromatic|other`` and
    ``distance=1..6|7+`` one-hots (13 columns).

    Example
    -------
    >>> g = SimpleWeaveFeaturizer()("CCO")
    >>> g.atoms.shape, g.links.shape, g.link_index.tolist()
    (torch.Size([3, 14]), torch.Size([3, 13]), [[0, 0, 1], [1, 2, 2]])
    """

    atom_feature_names: tuple[str, ...] = field(default=tuple(_ELEMENT_NAMES), init=False, repr=False)
    link_feature_names: tuple[str, ...] = field(default=tuple(_BOND_NAMES + _DISTANCE_NAMES), init=False,
                                                repr=False)

    def _atom_features(self, mol) -> np.ndarray:
        return _simple_atom_features(mol)

    def _pair_features(self, mol, i, j, d, bonds) -> np.ndarray:
        return np.concatenate([_pair_bond_block(mol, bonds), _distance_block(d)], 1)


@dataclass(frozen=True)
class WeaveFeaturizer(_PairFeaturizer):
    """The fuller Weave featurization (54 atom columns, 15 pair columns).

    Atoms: element, degree (0..5, 6+), total valence (0..6, 7+), formal charge (<=-2 .. >=+2),
    hybridization (S, SP, SP2, SP3, SP3D, SP3D2, other), aromatic, total hydrogens (0..3, 4+),
    in_ring and the size of the smallest ring (3..7, 8+). Pairs: bond type, conjugated,
    same_ring, graph distance. Column names are in ``atom_feature_names``/``pair_feature_names``.
    """

    atom_feature_names: tuple[str, ...] = field(default=tuple(_FULL_ATOM_NAMES), init=False, repr=False)
    link_feature_names: tuple[str, ...] = field(
        default=tuple(_BOND_NAMES + ["conjugated", "same_ring"] + _DISTANCE_NAMES), init=False, repr=False)
    represents = frozenset({"charge"})

    def _atom_features(self, mol) -> np.ndarray:
        return _full_atom_features(mol)

    def _pair_features(self, mol, i, j, d, bonds) -> np.ndarray:
        return np.concatenate([_pair_bond_block(mol, bonds), _conjugated(mol, bonds), _same_ring(mol, i, j),
                               _distance_block(d)], 1)


_EDGE_NAMES = tuple(_names("bond", ("single", "double", "triple", "aromatic", "other")) + ["conjugated", "in_ring"])


@dataclass(frozen=True)
class PyGFeaturizer(_Featurizer):
    """One-hot features for PyG models: ``x`` atom features, ``edge_attr`` per directed bond edge.

    ``atoms="full"`` (default) uses the :class:`WeaveFeaturizer` atom columns, ``"simple"`` the
    element one-hot only. Edge columns: ``bond=single|double|triple|aromatic|other``,
    ``conjugated``, ``in_ring`` (7). Both directions of each bond are edges (``2 * n_bonds``),
    edge ``2k`` is ``begin -> end`` of bond ``k`` and ``2k + 1`` its reverse.
    """

    atoms: str = "full"
    kind = "edges"
    link_feature_names: tuple[str, ...] = field(default=_EDGE_NAMES, init=False, repr=False)

    def __post_init__(self):
        if self.atoms not in ("full", "simple"):
            raise InputError(f"expected atoms='full' or 'simple'; got {self.atoms!r}")
        names = _FULL_ATOM_NAMES if self.atoms == "full" else _ELEMENT_NAMES
        object.__setattr__(self, "atom_feature_names", tuple(names))

    @property
    def represents(self) -> frozenset:  # type: ignore[override]
        return frozenset({"charge"}) if self.atoms == "full" else frozenset()

    @property
    def n_edge_features(self) -> int:
        return self.n_link_features

    def data(self, item: MoleculeInput):
        """``torch_geometric.data.Data(x, edge_index, edge_attr, smiles)`` of one molecule."""
        return self(item).to_data()

    def _atom_features(self, mol) -> np.ndarray:
        return _full_atom_features(mol) if self.atoms == "full" else _simple_atom_features(mol)

    def _links(self, mol):
        bonds = list(bonds_of(mol))
        if 2 * len(bonds) > self.max_links:
            raise InputError(f"expected at most {self.max_links} edges per molecule; got {2 * len(bonds)}")
        feats = np.zeros((2 * len(bonds), len(_EDGE_NAMES)), dtype=np.float32)
        index = np.zeros((2, 2 * len(bonds)), dtype=np.int64)
        bond_ids = np.repeat(np.arange(len(bonds), dtype=np.int64), 2)
        for k, bond in enumerate(bonds):
            a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            index[:, 2 * k], index[:, 2 * k + 1] = (a, b), (b, a)
            row = np.zeros(len(_EDGE_NAMES), dtype=np.float32)
            row[_bond_code(bond) - 1] = 1.0
            row[5], row[6] = bond.GetIsConjugated(), bond.IsInRing()
            feats[2 * k] = feats[2 * k + 1] = row
        return feats, index, bond_ids


Featurizer = SimpleWeaveFeaturizer | WeaveFeaturizer | PyGFeaturizer


def featurize_batch(featurizer: Featurizer, items: Sequence[MoleculeInput]):
    """Featurize many molecules, collecting bad rows instead of stopping.

    Returns
    -------
    graphs:
        The :class:`MoleculeGraph` of every good row.
    rows:
        ``rows[k]`` is the position in ``items`` of ``graphs[k]``.
    errors:
        One ``{"row": int, "input": str, "message": str}`` per bad row.
    """
    items = as_items(items)
    graphs, rows, errors = [], [], []
    for row, item in enumerate(items):
        try:
            graphs.append(featurizer(item))
            rows.append(row)
        except SciAttrError as exc:
            errors.append({"row": row, "input": _input_text(item), "message": str(exc)})
    return graphs, rows, errors


def as_items(items) -> list:
    """Molecules of any sequence (list, tuple, numpy array, pandas Series: by position) as a list."""
    if isinstance(items, (str, bytes, Chem.Mol, MoleculeGraph)) or items is None:
        one = isinstance(items, (str, bytes, Chem.Mol, MoleculeGraph))
        hint = f" (one molecule: wrap it in a list, e.g. [{items!r}])" if isinstance(items, str) else \
            " (one molecule: wrap it in a list)" if one else ""
        raise InputError(f"expected a list (or any sequence, or a pandas Series) of SMILES strings or RDKit "
                         f"molecules; got {describe(items)}{hint}")
    if hasattr(items, "iloc") and hasattr(items, "tolist"):  # pandas Series: by position, not by label
        return list(items.tolist())
    if isinstance(items, np.ndarray):
        if items.ndim != 1:
            raise InputError(f"expected a one-dimensional array of SMILES strings; got shape {items.shape}")
        return list(items.tolist())
    if isinstance(items, Sequence):
        return list(items)
    if isinstance(items, (set, frozenset, dict)) or not hasattr(items, "__iter__"):
        raise InputError(f"expected a list (or any ordered sequence, or a pandas Series) of SMILES strings or "
                         f"RDKit molecules; got {describe(items)}")
    return list(items)


def _input_text(item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Chem.Mol):
        try:
            return Chem.MolToSmiles(item)
        except (RuntimeError, ValueError):  # an unsanitizable Mol still needs a label
            return "<RDKit Mol>"
    return describe(item)


def featurizer_from_spec(spec: dict):
    """The featurizer a model card describes, e.g. ``{"class": "SimpleWeaveFeaturizer", "max_distance": 2}``."""
    if not isinstance(spec, dict) or "class" not in spec:
        raise InputError(f"expected a featurizer spec with a 'class' key; got {describe(spec)}")
    options = {k: v for k, v in spec.items() if k != "class"}
    classes = {"SimpleWeaveFeaturizer": SimpleWeaveFeaturizer, "WeaveFeaturizer": WeaveFeaturizer,
               "PyGFeaturizer": PyGFeaturizer}
    if spec["class"] not in classes:
        raise InputError(f"expected a featurizer class among {sorted(classes)}; got {spec['class']!r}")
    return classes[spec["class"]](**options)
