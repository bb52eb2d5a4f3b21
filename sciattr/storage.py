"""Saved results without pickle: one safetensors file whose metadata holds JSON.

A saved result is a single `safetensors <https://huggingface.co/docs/safetensors>`_ file:

* every tensor of the result (attributions, inputs, baselines, scores, segments, path records,
  link indices, ...) is one entry of the file, moved to the CPU, stored with its dtype and shape;
* everything else is JSON, kept in the file's metadata under the key ``"sciattr"``::

      {"format": "sciattr.result", "version": 1,
       "module": "sciattr.chem.adapter", "class": "MoleculeAttribution",
       "fields": {...}, "notes": [...]}

  Inside ``fields`` a tensor is ``{"__tensor__": "t3"}`` (the name of its entry), a tuple
  ``{"__tuple__": [...]}``, a dict with keys that are not all strings ``{"__items__": [[k, v], ...]}``,
  a non-finite float ``{"__float__": "nan"}``, a :class:`~sciattr.result.PathRecord`
  ``{"__path_record__": {...}}``, a :class:`~sciattr.settings.Settings` ``{"__settings__": {...}}``
  and an RDKit molecule ``{"__mol__": {"molblock": ..., "smiles": ..., "atom_props": ..., ...}}``:
  a V3000 mol block (atom order, charges, isotopes, radicals, explicit hydrogens and atom-map
  numbers survive, so atom ``k`` of a loaded molecule is atom ``k`` of the saved one), the
  canonical SMILES for people reading the file, and the molecule's and atoms' own properties
  (such as an atom's index in the caller's input).

Nothing is ever unpickled: a file that is not such a safetensors file (a ``torch.save`` pickle,
a truncated or edited file, any other data) raises :class:`ResultFileError` saying what was
expected and what was found.

Classes. The file names the module and class of the result. :func:`load` imports that module
only when it is part of sciattr (``sciattr`` or ``sciattr.*``) and then picks the class among the
subclasses of :class:`~sciattr.result.Attribution` -- domain result classes take part by being
subclasses, the core never imports the domains. A result class defined outside sciattr loads
once its module has been imported by the caller.

Values that have no faithful form in JSON (a callable baseline, a path object, an arbitrary
object in ``meta``) are saved as their description and restored as that string (``None`` for
a :class:`~sciattr.settings.Settings` field, whose checks a description would not pass); each
replacement is listed in ``meta["storage_notes"]`` of the loaded result, never silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any

import torch

from sciattr.errors import InputError, describe

__all__ = ["FORMAT", "VERSION", "ResultFileError", "load", "result_classes", "save"]

#: Value of the ``"format"`` entry of a saved result.
FORMAT = "sciattr.result"
#: Version of the layout described above.
VERSION = 1
#: Key of the JSON document in the safetensors metadata.
METADATA_KEY = "sciattr"
#: Largest safetensors header accepted (the JSON of a result is far smaller).
MAX_HEADER_BYTES = 256 * 2**20

_MODULE_NAME = re.compile(r"^sciattr(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ResultFileError(InputError):
    """A file given to :func:`load` is not a readable sciattr result (or a result cannot be saved)."""


# ---------------------------------------------------------------------------------------- classes
def result_classes() -> dict[str, type]:
    """Every result class known now: ``"module:QualName"`` -> class (Attribution and its subclasses)."""
    from sciattr.result import Attribution

    out: dict[str, type] = {}
    todo: list[type] = [Attribution]
    while todo:
        cls = todo.pop()
        key = f"{cls.__module__}:{cls.__qualname__}"
        if key not in out:
            out[key] = cls
            todo.extend(cls.__subclasses__())
    return out


def _resolve_class(module: Any, name: Any, path: Path) -> type:
    if not isinstance(module, str) or not isinstance(name, str):
        raise ResultFileError(f"{path}: expected the module and class of the result as strings; got "
                              f"{describe(module)} and {describe(name)}")
    key = f"{module}:{name}"
    classes = result_classes()
    if key not in classes and _MODULE_NAME.match(module):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ResultFileError(f"{path}: the result class {name} lives in {module}, which cannot be "
                                  f"imported here ({exc})") from exc
        classes = result_classes()
    if key not in classes:
        where = "" if _MODULE_NAME.match(module) else " (only sciattr modules are imported by load)"
        raise ResultFileError(f"{path}: expected a result class known to sciattr; got {key}{where}. "
                              f"Import the module defining it first")
    return classes[key]


# ---------------------------------------------------------------------------------------- encoding
class _Encoder:
    """Turns field values into JSON, collecting tensors (and notes on lossy replacements)."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.notes: list[str] = []

    def tensor(self, t: torch.Tensor) -> dict:
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        if t.is_complex():
            raise ResultFileError(f"complex tensors cannot be saved; got {describe(t)}")
        key = f"t{len(self.tensors)}"
        self.tensors[key] = t.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}

    def value(self, v: Any, where: str):
        from sciattr.result import PathRecord
        from sciattr.settings import Settings

        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v) if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, PathRecord):
            return {"__path_record__": {f.name: self.value(getattr(v, f.name), f"{where}.{f.name}")
                                        for f in dataclasses.fields(v)}}
        if isinstance(v, Settings):
            return {"__settings__": {f.name: self.settings_value(getattr(v, f.name), f"{where}.{f.name}")
                                     for f in dataclasses.fields(v)}}
        if _is_mol(v):
            return {"__mol__": _mol_to_json(v)}
        if isinstance(v, dict):
            if all(isinstance(k, str) for k in v):
                if any(k.startswith("__") and k.endswith("__") for k in v):
                    return {"__items__": [[k, self.value(x, f"{where}[{k!r}]")] for k, x in v.items()]}
                return {k: self.value(x, f"{where}[{k!r}]") for k, x in v.items()}
            return {"__items__": [[self.value(k, f"{where} key"), self.value(x, f"{where}[{k!r}]")]
                                  for k, x in v.items()]}
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if hasattr(v, "item") and getattr(v, "shape", None) == ():  # numpy scalars
            return self.value(v.item(), where)
        if type(v).__module__ == "numpy" and hasattr(v, "shape"):
            return self.tensor(torch.from_numpy(v.copy()))
        text = describe(v) if not callable(v) else f"callable {getattr(v, '__qualname__', type(v).__name__)}"
        self.notes.append(f"{where} was {text}; saved as that description")
        return {"__described__": text}

    def settings_value(self, v: Any, where: str):
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {k: self.settings_value(x, f"{where}[{k!r}]") for k, x in v.items()}
        encoded = self.value(v, where)
        if isinstance(encoded, dict) and "__described__" in encoded:
            self.notes[-1] = f"{where} was {encoded['__described__']}; saved as that description, loaded as None"
        return encoded


def _is_mol(v) -> bool:
    cls = type(v)
    return cls.__name__ in ("Mol", "RWMol") and cls.__module__.startswith("rdkit.")


def _plain_props(obj) -> dict:
    props = obj.GetPropsAsDict(includePrivate=False, includeComputed=False)
    return {k: v for k, v in props.items() if isinstance(v, (bool, int, float, str))
            and not (isinstance(v, float) and not math.isfinite(v))}


def _mol_to_json(mol) -> dict:
    from rdkit import Chem

    out = {"molblock": Chem.MolToMolBlock(mol, forceV3000=True), "n_atoms": mol.GetNumAtoms()}
    try:
        out["smiles"] = Chem.MolToSmiles(mol)
    except Exception:  # noqa: BLE001 -- a description only; the mol block is what is read back
        out["smiles"] = ""
    props = [_plain_props(a) for a in mol.GetAtoms()]
    if any(props):
        out["atom_props"] = props
    mol_props = _plain_props(mol)
    if mol_props:
        out["mol_props"] = mol_props
    return out


def _set_prop(obj, key: str, value) -> None:
    if isinstance(value, bool):
        obj.SetBoolProp(key, value)
    elif isinstance(value, int):
        obj.SetIntProp(key, value)
    elif isinstance(value, float):
        obj.SetDoubleProp(key, value)
    else:
        obj.SetProp(key, str(value))


def _mol_from_json(data, where: str, path: Path):
    from sciattr.errors import require

    Chem = require("rdkit.Chem", "chem")
    if not isinstance(data, dict) or not isinstance(data.get("molblock"), str):
        raise ResultFileError(f"{path}: expected a mol block at {where}; got {describe(data)}")
    mol = Chem.MolFromMolBlock(data["molblock"], sanitize=True, removeHs=False)
    if mol is None:
        mol = Chem.MolFromMolBlock(data["molblock"], sanitize=False, removeHs=False)
    if mol is None:
        raise ResultFileError(f"{path}: the mol block at {where} cannot be read by RDKit")
    n = data.get("n_atoms")
    if n is not None and mol.GetNumAtoms() != n:
        raise ResultFileError(f"{path}: the molecule at {where} should have {n} atoms; its mol block has "
                              f"{mol.GetNumAtoms()}")
    atom_props = data.get("atom_props") or []
    if atom_props and len(atom_props) != mol.GetNumAtoms():
        raise ResultFileError(f"{path}: expected one property set per atom at {where}; got {len(atom_props)} "
                              f"for {mol.GetNumAtoms()} atoms")
    for atom, props in zip(mol.GetAtoms(), atom_props):
        for key, value in (props or {}).items():
            _set_prop(atom, str(key), value)
    for key, value in (data.get("mol_props") or {}).items():
        _set_prop(mol, str(key), value)
    return mol


class _Decoder:
    def __init__(self, tensors: dict[str, torch.Tensor], path: Path):
        self.tensors, self.path = tensors, path
        self.used: set[str] = set()

    def fail(self, where: str, expected: str, got) -> ResultFileError:
        return ResultFileError(f"{self.path}: corrupt result file: expected {expected} at {where}; "
                               f"got {describe(got)}")

    def value(self, v, where: str):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            raise self.fail(where, "a JSON value", v)
        if len(v) == 1:
            (tag, inner), = v.items()
            if tag == "__tensor__":
                if not isinstance(inner, str) or inner not in self.tensors:
                    raise self.fail(where, "the name of a tensor stored in the file", inner)
                self.used.add(inner)
                return self.tensors[inner]
            if tag == "__tuple__":
                if not isinstance(inner, list):
                    raise self.fail(where, "a list", inner)
                return tuple(self.value(x, f"{where}[{i}]") for i, x in enumerate(inner))
            if tag == "__items__":
                if not isinstance(inner, list) or not all(isinstance(p, list) and len(p) == 2 for p in inner):
                    raise self.fail(where, "a list of [key, value] pairs", inner)
                out = {}
                for k, x in inner:
                    key = self.value(k, f"{where} key")
                    try:
                        hash(key)
                    except TypeError:
                        raise self.fail(where, "a hashable key", key) from None
                    out[key] = self.value(x, f"{where}[{key!r}]")
                return out
            if tag == "__float__":
                if inner not in ("nan", "inf", "-inf"):
                    raise self.fail(where, "'nan', 'inf' or '-inf'", inner)
                return float(inner)
            if tag == "__described__":
                return str(inner)
            if tag == "__mol__":
                return _mol_from_json(inner, where, self.path)
            if tag == "__path_record__":
                from sciattr.result import PathRecord

                fields = self.value(inner, where)
                try:
                    return PathRecord(**fields)
                except TypeError as exc:
                    raise self.fail(where, "the fields of a path record", inner) from exc
            if tag == "__settings__":
                return self.settings(inner, where)
        return {k: self.value(x, f"{where}[{k!r}]") for k, x in v.items()}

    def settings(self, inner, where: str):
        from sciattr.settings import Settings

        if not isinstance(inner, dict):
            raise self.fail(where, "the fields of a Settings object", inner)

        def restore(x, at):
            if isinstance(x, dict) and set(x) == {"__described__"}:
                return None
            if isinstance(x, dict) and not any(k.startswith("__") for k in x):
                return {k: restore(y, f"{at}[{k!r}]") for k, y in x.items()}
            return self.value(x, at)

        names = {f.name for f in dataclasses.fields(Settings)}
        values = {k: restore(x, f"{where}.{k}") for k, x in inner.items() if k in names}
        try:
            return Settings(**values)
        except (TypeError, InputError) as exc:
            raise ResultFileError(f"{self.path}: corrupt result file: the settings at {where} are not valid "
                                  f"({exc})") from exc


# ---------------------------------------------------------------------------------------- save/load
def save(result, path: str | os.PathLike) -> Path:
    """Write ``result`` (an :class:`~sciattr.result.Attribution` or subclass) to ``path``.

    Returns the path. The file is written next to its final place and renamed, so a failed save
    never leaves half a file under the name. See the module docstring for the layout.
    """
    from safetensors.torch import save as st_save

    from sciattr.result import Attribution

    if not isinstance(result, Attribution):
        raise InputError(f"expected an Attribution to save; got {describe(result)}")
    path = Path(path)
    if path.is_dir():
        raise InputError(f"expected a file path to save the result to; got the folder {path}")
    if not path.parent.is_dir():
        raise InputError(f"cannot save the result to {path}: the folder {path.parent} does not exist")
    cls = type(result)
    encoder = _Encoder()
    fields = {name: encoder.value(value, name) for name, value in result._state().items()}
    document = {"format": FORMAT, "version": VERSION, "module": cls.__module__, "class": cls.__qualname__,
                "fields": fields, "notes": encoder.notes}
    text = json.dumps(document, allow_nan=False, ensure_ascii=False)
    data = st_save(encoder.tensors, metadata={METADATA_KEY: text})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write the result to {path}: {exc.strerror or exc}") from exc
    return path


def _describe_start(head: bytes) -> str:
    if head[:1] == b"\x80":
        return "a Python pickle (sciattr never unpickles files)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive, such as a file written by torch.save (sciattr never unpickles files)"
    if head[:1] in (b"{", b"["):
        return "a JSON document"
    if head[:4] == b"\x89HDF":
        return "an HDF5 file"
    return f"data starting with {head[:16]!r}"


def read_document(path: str | os.PathLike) -> tuple[dict, Path]:
    """The JSON document of a saved result, checked, without reading its tensors."""
    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"expected a saved sciattr result; {path} does not exist")
    if not path.is_file():
        raise ResultFileError(f"expected a saved sciattr result file; {path} is not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ResultFileError(f"{path} is not a sciattr result: expected a safetensors file; got "
                                      f"{size} bytes, too short for one")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > min(size - 8, MAX_HEADER_BYTES):
                raise ResultFileError(f"{path} is not a sciattr result: expected a safetensors file; got "
                                      f"{_describe_start(head)}")
            raw = fh.read(n)
    except OSError as exc:
        raise ResultFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path} is not a sciattr result: expected a safetensors file whose header is "
                              f"JSON; got {_describe_start(head)} ({exc})") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        raise ResultFileError(f"{path} is a safetensors file but not a sciattr result: expected the metadata "
                              f"entry {METADATA_KEY!r}; got {sorted(metadata) if isinstance(metadata, dict) else None}")
    try:
        document = json.loads(metadata[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path}: corrupt result file: its {METADATA_KEY!r} metadata is not JSON "
                              f"({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        got = document.get("format") if isinstance(document, dict) else describe(document)
        raise ResultFileError(f"{path} is not a sciattr result: expected format {FORMAT!r}; got {got!r}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise ResultFileError(f"{path}: expected a result file of version 1 to {VERSION}; got version "
                              f"{version!r} (written by a newer sciattr?)")
    if not isinstance(document.get("fields"), dict):
        raise ResultFileError(f"{path}: corrupt result file: expected a JSON object of fields; got "
                              f"{describe(document.get('fields'))}")
    return document, path


def load(path: str | os.PathLike, cls: type | None = None):
    """Read a result written by :func:`save` (or ``Attribution.save``) and return it as its own class.

    Parameters
    ----------
    path:
        The file.
    cls:
        Optional: the class the caller expects. A file holding another class (that is not a
        subclass of ``cls``) raises :class:`ResultFileError` rather than being returned as
        something else.

    Raises
    ------
    ResultFileError
        The file does not exist, is not a safetensors file written by sciattr (a pickle, a
        truncated or edited file), names an unknown result class, or its fields do not fit it.
    """
    from safetensors.torch import load_file

    document, path = read_document(path)
    result_cls = _resolve_class(document.get("module"), document.get("class"), path)
    if cls is not None and not issubclass(result_cls, cls):
        raise ResultFileError(f"{path} holds a {result_cls.__name__}; expected a {cls.__name__} "
                              f"(load it with sciattr.load or {result_cls.__name__}.load)")
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own errors on corrupt data
        raise ResultFileError(f"{path}: corrupt result file: its tensors cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    decoder = _Decoder(tensors, path)
    fields = {name: decoder.value(value, name) for name, value in document["fields"].items()}
    known = {f.name: f for f in dataclasses.fields(result_cls) if f.init}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ResultFileError(f"{path}: the file has fields {unknown} that {result_cls.__name__} does not have "
                              f"(written by another version of sciattr?)")
    missing = sorted(name for name, f in known.items() if name not in fields
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ResultFileError(f"{path}: corrupt result file: {result_cls.__name__} needs the fields {missing}; "
                              f"the file lacks them")
    try:
        result = result_cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ResultFileError(f"{path}: corrupt result file: its fields do not make a {result_cls.__name__} "
                              f"({exc})") from exc
    notes = document.get("notes") or []
    if notes and isinstance(getattr(result, "meta", None), dict):
        result.meta = {**result.meta, "storage_notes": [str(n) for n in notes]}
    return result
