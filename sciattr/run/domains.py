"""The one place where the runner meets the domain APIs (chemistry and text).

A *domain* loads its model once (:meth:`Domain.load`), describes it for the run manifest
(:meth:`Domain.identity`) and turns a batch of :class:`~sciattr.run.readers.Record` into output
rows: one per record, in order, ``status="error"`` with the reason where a record could not be
attributed, and detail rows (atoms or tokens) for the good ones.

Only public results of :func:`sciattr.chem.explain_molecules` and of the text adapters are read
here; if their signatures change, this module is what adapts.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from sciattr.errors import BaselineWarning, ConvergenceWarning, InputError, SciAttrError, describe
from sciattr.run.output import Details, extend_details
from sciattr.run.readers import Record
from sciattr.settings import Settings

if TYPE_CHECKING:
    from sciattr.text.hf_report import _CliModel
    from sciattr.text.seq2seq import G2PModel
    from sciattr.zoo.text_models import TextModel

__all__ = ["Domain", "MoleculeDomain", "TextDomain", "make_domain"]


def _weights_digest(model) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    if isinstance(model, torch.nn.Module):
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                          if tensor.numel() else b"")
    return digest.hexdigest()


def _per_example_list(res, name: str) -> list | None:
    """A per-example tensor of a result as a list (one conversion for the batch), or ``None``."""
    values = getattr(res, name, None)
    if values is None or not hasattr(values, "tolist") or values.dim() != 1:
        return None
    return values.tolist()


#: How the adapters word "every row of the call failed" around the reasons of the rows.
_ALL_ROWS_FAILED = (
    re.compile(r"^no row could be used: row 0: (?P<reason>.*)$", re.DOTALL),
    re.compile(r"^expected at least one valid molecule; got none of 1 \(row 0: (?P<reason>.*)\)$", re.DOTALL),
)


def _one_row_reason(message: str) -> str:
    """The row's own reason from the error of a call on that row alone."""
    for pattern in _ALL_ROWS_FAILED:
        match = pattern.match(message)
        if match:
            return match.group("reason")
    return message


class Domain:
    """Base of the two domains. Subclasses set :attr:`kind` and :attr:`detail`."""

    kind = ""
    detail = ""
    #: SHA-256 of the model's weights, set by :meth:`_load`.
    _digest: str

    def __init__(self, model, *, target=None, settings: Settings | None = None, model_name: str | None = None):
        self.model_spec = model
        self.target = target
        self.settings = settings or Settings()
        self._name = model_name
        self._loaded = False

    # -------------------------------------------------------------- loading
    #: A fixed input attributed once after loading (see :meth:`load`).
    warm_up_input = ""

    def load(self) -> None:
        """Load the model (once), then attribute :attr:`warm_up_input` once.

        The engine sizes its passes from a memory probe taken on the first call for a model and
        remembered afterwards; the passes decide how path nodes are grouped, and so the last bits
        of float32 sums. Probing on the same fixed input in every process makes each batch's
        numbers independent of which batch a process starts with: a resumed run or a shard
        writes exactly what an uninterrupted single run writes.
        """
        if not self._loaded:
            self._load()
            self._loaded = True
            if self.warm_up_input:
                import contextlib

                record = Record(row=0, id=None, input=self.warm_up_input,
                                kind="smiles" if self.kind == "molecule" else "text")
                # a model that cannot take it fails on the real rows, with their own reasons
                with warnings.catch_warnings(), contextlib.suppress(Exception):
                    warnings.simplefilter("ignore")
                    self._attribute([record])

    def _load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def identity(self) -> dict:
        """Model name and a digest of its weights (what the manifest records)."""
        self.load()
        return {"name": self.name, "weights_sha256": self._digest}

    @property
    def name(self) -> str:
        return self._name or "model"

    # -------------------------------------------------------------- attribution
    def attribute(self, records: Sequence[Record]) -> tuple[list[dict], Details, Any]:
        """Rows (one per record, in order), the detail tables as columns (``{"atoms": {"row": [...],
        ...}, ...}``), and what pictures need (or ``None``).

        Convergence and baseline warnings are not raised per batch (they would name rows by their
        place in the batch): each row carries them, in ``converged`` and ``notes``.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", BaselineWarning)
            return self._attribute_rows(records)

    def _attribute_rows(self, records: Sequence[Record]) -> tuple[list[dict], Details, Any]:
        self.load()
        rows = [self._error_row(r, r.error) if r.error else None for r in records]
        todo = [k for k, r in enumerate(records) if not r.error]
        details: Details = {}
        extra = None
        if todo:
            try:
                done, details, extra = self._attribute([records[k] for k in todo])
            except SciAttrError:
                # the batch failed as a whole (e.g. no row usable): each row alone gives its own reason
                done, details, extra = [], {}, None
                for k in todo:
                    try:
                        one, one_details, _ = self._attribute([records[k]])
                        done.append(one[0])
                        extend_details(details, one_details)
                    except SciAttrError as exc:
                        done.append(self._error_row(records[k], _one_row_reason(str(exc))))
                    except Exception as exc:  # noqa: BLE001 -- a model failure on this row only: reported on the row
                        done.append(self._error_row(records[k], f"{type(exc).__name__}: {exc}"))
            for k, row in zip(todo, done):
                rows[k] = row
        # every row is set: an error row for a record that could not be read, else the row
        # :meth:`_attribute` returns for it (one per record)
        return cast("list[dict]", rows), details, extra

    def _attribute(self, records: Sequence[Record]) -> tuple[list[dict], Details, Any]:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _error_row(record: Record, message: str) -> dict:
        return {"id": record.id, "row": record.row, "input": record.input if record.kind != "molblock" else "",
                "status": "error", "error": " ".join(str(message).split())}


# ======================================================================================== molecules
def _parse_molblock(block: str):
    """``(mol, rdkit_messages)`` of an SDF record (``mol`` is None when RDKit refuses it)."""
    from rdkit import Chem

    from sciattr.chem.featurize import rdkit_messages

    with rdkit_messages() as said:
        mol = Chem.MolFromMolBlock(block, removeHs=False)
    return mol, list(said)


def molecule_items(records: Sequence[Record]) -> tuple[list, list[list[str]], dict[int, str]]:
    """What :func:`sciattr.chem.explain_molecules` takes for molecule records: SMILES as read, SDF
    records parsed by RDKit (hydrogens kept: the featurizer decides). Returns ``(items,
    parse_notes, failed)``; ``failed`` maps the position of a record RDKit refuses to the reason
    (its item is ``""``)."""
    items: list = []
    parse_notes: list[list[str]] = []
    failed: dict[int, str] = {}
    for k, r in enumerate(records):
        if r.kind == "molblock":
            mol, messages = _parse_molblock(r.input)
            if mol is None:
                failed[k] = f"RDKit cannot read this SDF record ({'; '.join(messages) or 'no reason given'})"
                items.append("")
            else:
                items.append(mol)
            parse_notes.append(messages if mol is not None else [])
        else:
            items.append(r.input)
            parse_notes.append([])
    return items, parse_notes, failed


class MoleculeDomain(Domain):
    """Molecules through :func:`sciattr.chem.explain_molecules`.

    ``model``: a shipped model name, a card path, or a loaded module (``featurizer=`` then, unless
    it carries a ``card``).
    """

    kind = "molecule"
    detail = "atoms"
    warm_up_input = "c1ccccc1O"

    def __init__(self, model, *, featurizer=None, **options):
        super().__init__(model, **options)
        self.featurizer = featurizer

    def _load(self) -> None:
        from sciattr.zoo import load_featurizer, load_model

        model = self.model_spec
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)
            # load_model sets ``card`` (a dict); torch types a module's dynamic attributes as Tensor | Module
            self._name = self._name or cast(dict, model.card).get("name", os.fspath(self.model_spec))
        if self.featurizer is None and getattr(model, "card", None) is not None:
            self.featurizer = load_featurizer(model)
        self.model = model
        self._digest = _weights_digest(model)
        card = getattr(model, "card", None) or {}
        kind = str(card.get("task", {}).get("kind", "")) if isinstance(card.get("task"), dict) else ""
        self.probability = "classification" in kind and "logit" in kind
        if self._name is None:
            self._name = card.get("name") or type(model).__name__

    def _attribute(self, records):
        from sciattr.chem import explain_molecules

        items, parse_notes, failed = molecule_items(records)
        keep = [k for k in range(len(records)) if k not in failed]
        rows: list[dict | None] = [None] * len(records)
        for k, message in failed.items():
            rows[k] = self._error_row(records[k], message)
        if not keep:
            return rows, {}, None
        res = explain_molecules(self.model, [items[k] for k in keep], featurizer=self.featurizer, target=self.target,
                                settings=self.settings)
        task = result_column(res, self.target)
        for error in res.errors:
            k = keep[error["row"]]
            rows[k] = self._error_row(records[k], error["message"])
        pictures = []
        # per-example numbers of the whole batch at once (one conversion each, not one per row)
        predictions = _column_values(res.forward_x, task)
        baseline_scores = _column_values(res.forward_baseline, task)
        gaps = _column_values(res.completeness_gap, task)
        relative = _column_values(res.relative_gap, task)
        spent = _per_example_list(res, "evaluations") or _per_example_list(res, "steps")
        met = _per_example_list(res, "converged")
        inputs = [records[keep[position]] for position in res.rows]
        details = _molecule_details(res, task, [r.row for r in inputs], [r.id for r in inputs])
        for i, record in enumerate(inputs):
            k = keep[res.rows[i]]
            notes = list(parse_notes[k]) + list(res.notes[i] if i < len(res.notes) else ())
            warned = getattr(res, "baseline_warnings", None)
            if warned and i < len(warned) and warned[i]:
                notes.append(str(warned[i]))
            prediction = predictions[i]
            evaluations = spent[i] if spent is not None else None
            rel = relative[i]
            converged = met[i] if met is not None else rel <= self.settings.check_tolerance
            rows[k] = {
                "id": record.id, "row": record.row,
                "input": record.input if record.kind != "molblock" else res.smiles[i],
                "status": "ok", "error": "", "smiles": res.smiles[i], "prediction": prediction,
                "probability": 1.0 / (1.0 + math.exp(-prediction)) if self.probability and math.isfinite(prediction)
                else None,
                "baseline_score": baseline_scores[i], "gap": gaps[i],
                "relative_gap": rel, "evaluations": None if evaluations is None else int(evaluations),
                "converged": bool(converged), "notes": "; ".join(str(n) for n in notes),
            }
            pictures.append((record.row, i))
        return rows, details, (res, task, pictures)

    def picture(self, extra, i: int) -> str:
        """SVG text of example ``i`` of a batch result (``extra`` from :meth:`attribute`)."""
        from sciattr.chem.draw import draw_attribution

        res, task, _ = extra
        picture = draw_attribution(res, i, target=task, title=self.name, image_format="svg")
        return picture if isinstance(picture, str) else picture.decode() if isinstance(picture, bytes) else str(picture)


def result_column(res, target):
    """The column of a molecule result that ``target`` (an index or a task name) picks; ``None`` for
    a single-target result."""
    if not res.multi_target:
        return None
    names = tuple(getattr(res, "target_names", None) or ())
    if isinstance(target, str) and target in names:
        return names.index(target)
    return target


def _column_values(values, task) -> list[float]:
    """One float per example of a per-example tensor (``task``: its column when multi-target)."""
    array = values.detach().double().cpu()
    if array.dim() > 1:
        array = array[:, 0] if task is None else array[:, task]
    return array.tolist()


def _molecule_details(res, task, rows: list[int], ids: list) -> Details:
    """The ``atoms`` and ``bonds`` tables of a batch result as columns (input numbering): example
    ``i`` of ``res`` is input row ``rows[i]`` with id ``ids[i]``. Numbers stay numpy arrays (no
    Python object per atom)."""
    atoms = res.atom_columns(task)
    bonds = res.bond_columns(task)
    row_of = np.asarray(rows, dtype=np.int64)
    id_of = np.asarray(ids, dtype=object)
    return {
        "atoms": {"row": row_of[atoms["molecule"]], "id": id_of[atoms["molecule"]],
                  "atom": atoms["atom"], "element": atoms["element"],
                  "attribution": atoms["feature_attribution"], "score": atoms["atom_score"]},
        "bonds": {"row": row_of[bonds["molecule"]], "id": id_of[bonds["molecule"]],
                  "begin": bonds["begin"], "end": bonds["end"], "bond_type": bonds["bond_type"],
                  "attribution": bonds["attribution"]},
    }


# ======================================================================================== texts
SHIPPED_TEXT_MODELS = ("topic-classifier", "lstm-lm")


class TextDomain(Domain):
    """Texts through the text adapters: the shipped ``topic-classifier`` and ``lstm-lm``, the
    ``g2p`` encoder--decoder, or a local Hugging Face model folder."""

    kind = "text"
    detail = "tokens"
    warm_up_input = "the"
    #: Set by :meth:`_load`, with :attr:`flavour` (``"shipped"``, ``"g2p"``, ``"hf"`` respectively).
    model: TextModel | G2PModel | _CliModel

    def __init__(self, model="topic-classifier", *, truncate: bool = False, **options):
        super().__init__(model, **options)
        self.truncate = truncate

    def _load(self) -> None:
        spec = self.model_spec
        if isinstance(spec, str) and spec in SHIPPED_TEXT_MODELS:
            from sciattr.zoo.text_models import load_text_model

            self.flavour, self.model = "shipped", load_text_model(spec)
            self._digest = _weights_digest(self.model.model)
            self._name = self._name or spec
        elif isinstance(spec, str) and spec == "g2p":
            from sciattr.text.seq2seq import load_g2p

            self.flavour, self.model = "g2p", load_g2p()
            self._digest = _weights_digest(self.model)
            self._name = self._name or "g2p"
        elif isinstance(spec, (str, os.PathLike)) and Path(spec).is_dir():
            from sciattr.text.hf_report import _CliModel

            self.flavour = "hf"
            self.model = _CliModel(spec, self.settings, self.truncate)
            self._digest = _weights_digest(self.model.model)
            self._name = self._name or Path(spec).name
        else:
            raise InputError(f"expected a text model among {list(SHIPPED_TEXT_MODELS) + ['g2p']} or a local "
                             f"Hugging Face model folder; got {describe(spec)}")

    def _call(self, texts: list[str], targets):
        if self.flavour == "shipped":
            from sciattr.text.report import attribute_texts

            return attribute_texts(texts, self.model_spec, targets, truncate=self.truncate, text_model=self.model,
                                   settings=self.settings)
        if self.flavour == "g2p":
            from sciattr.text.seq2seq import attribute_g2p

            return attribute_g2p(texts, targets, model=cast("G2PModel", self.model), truncate=self.truncate,
                                 settings=self.settings)
        from sciattr.text.huggingface import hf_integrated_gradients

        hf = cast("_CliModel", self.model)  # flavour "hf"
        options = {k: v for k, v in hf.options.items() if k in ("truncation", "split")}
        return hf_integrated_gradients(hf.model, hf.tokenizer, texts, target=targets, settings=self.settings, **options)

    def _attribute(self, records):
        from sciattr.text.report import _one_example, _summary

        rows: list[dict | None] = [None] * len(records)
        details: Details = {}
        groups: dict[bool, list[int]] = {}
        for k, r in enumerate(records):
            target = r.target if r.target is not None else self.target
            groups.setdefault(target is None, []).append(k)
        for predicted, members in groups.items():
            texts = [records[k].input for k in members]
            targets = None if predicted else [records[k].target if records[k].target is not None else self.target
                                              for k in members]
            if targets is not None and self.flavour == "hf" and self.model.kind == "seq2seq":
                targets = [str(t) for t in targets]
            res = self._call(texts, targets)
            for error in res.errors:
                k = members[error["row"]]
                rows[k] = self._error_row(records[k], error["message"])
            spent, met = _per_example_list(res, "evaluations"), _per_example_list(res, "converged")
            for i, position in enumerate(res.rows):
                k = members[position]
                record = records[k]
                summary = _summary(_one_example(res, i))
                tokens = [str(token) for token in summary["tokens"]]
                values = [float(value) for value in summary["attributions"]][:len(tokens)]
                tokens = tokens[:len(values)]
                extend_details(details, {"tokens": {"row": [record.row] * len(tokens), "id": [record.id] * len(tokens),
                                                    "position": list(range(len(tokens))), "token": tokens,
                                                    "attribution": values}})
                evaluations = spent[i] if spent is not None and i < len(spent) else summary.get("steps")
                converged = met[i] if met is not None and i < len(met) else \
                    summary["relative_gap"] <= self.settings.check_tolerance
                rows[k] = {
                    "id": record.id, "row": record.row, "input": record.input, "status": "ok", "error": "",
                    "target": str(summary.get("target", "")), "prediction": float(summary["forward_x"]),
                    "baseline_score": float(summary["forward_baseline"]), "gap": float(summary["gap"]),
                    "relative_gap": float(summary["relative_gap"]),
                    "evaluations": None if evaluations is None else int(evaluations),
                    "converged": bool(converged), "notes": "; ".join(str(n) for n in summary.get("notes", [])),
                }
        return rows, details, None


def make_domain(kind: str, model, **options) -> Domain:
    """The domain of ``kind`` (``"molecule"`` or ``"text"``)."""
    if kind == "molecule":
        return MoleculeDomain(model, **options)
    if kind == "text":
        options.pop("featurizer", None)
        return TextDomain(model, **options)
    raise InputError(f"expected kind='molecule' or 'text'; got {kind!r}")
