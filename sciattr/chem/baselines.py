"""Baselines for molecules beyond one point: reference samples (expected gradients) and a search
for a baseline that is neutral for the explained target.

Public API
----------
``ReferenceBaselines(reference, k=8, seed=0)``
    Pass as ``baselines=`` to :func:`~sciattr.chem.explain_molecules`: every molecule gets K
    baselines whose atom rows are atom feature rows drawn (with replacement) from the reference
    molecules' atoms, and whose pair/edge rows are drawn from the reference links of the same
    graph distance (the distance columns of a pair are kept; edges are all bonds). The
    attributions are averaged over the K baselines (expected gradients, Erion et al. 2021): each
    (molecule, baseline) is an example of one flattened grid with its own completeness check, and
    the average adds up to ``F(x) - mean_k F(x'_k)`` (``result.forward_baseline``).
``neutral_baseline(model, molecules, *, featurizer=None, target=None, threshold=None, ...)``
    Evaluates the featurization's baseline options (``zeros``, ``dummy``, ``skeleton`` where the
    atom featurization is element-only, the per-feature
    ``mean`` of the molecules, the mean of reference molecules, blends between a pair of them
    that lie on both sides of the decision threshold, and -- by default -- a blend per molecule
    whose weight puts that molecule's F(x') at the threshold) and returns the one whose scores are
    nearest the threshold: a baseline that predicts "undecided", so that the attributions explain
    the decision rather than a difference between two predictions of the same class.
    ``crossed`` says whether any option reached the other side of the threshold.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sciattr.chem._vocabulary import renamed_keywords, target_index, task_names
from sciattr.chem.adapter import (
    ATOMS,
    _card,
    _default_featurizer,
    _resolved,
    decision_threshold,
    ragged_graphs,
)
from sciattr.chem.featurize import MoleculeGraph, as_items, featurize_batch
from sciattr.errors import BaselineWarning, InputError, describe

__all__ = ["NeutralBaseline", "ReferenceBaselines", "neutral_baseline"]


def _graphs_of(molecules, featurizer) -> tuple[list[MoleculeGraph], list[dict]]:
    """The featurized molecules and the rows that could not be featurized (``{"row", "input",
    "message"}``); an error when none can."""
    items = as_items(molecules)
    if items and all(isinstance(g, MoleculeGraph) for g in items):
        return items, []
    graphs, _, errors = featurize_batch(featurizer, items)
    if not graphs:
        raise InputError(f"expected at least one valid reference molecule; got none of {len(items)}"
                         + (f" ({errors[0]['message']})" if errors else ""))
    return graphs, errors


def _rows(errors: list[dict]) -> str:
    return "; ".join(f"row {e['row']}: {e['message']}" for e in errors[:3]) + ("; ..." if len(errors) > 3 else "")


def _warn_skipped(errors: list[dict], n_ok: int, what: str) -> None:
    warnings.warn(f"{len(errors)} of {len(errors) + n_ok} reference molecules could not be featurized and {what} "
                  f"({_rows(errors)})", BaselineWarning, stacklevel=4)


def _item_text(item) -> str:
    """A stable text of one reference item for :meth:`ReferenceBaselines.describe`."""
    if isinstance(item, str):
        return item
    if isinstance(item, MoleculeGraph):
        digest = hashlib.sha256()
        for tensor in (item.atoms, item.links):
            digest.update(tensor.detach().cpu().double().contiguous().numpy().tobytes())
        return f"graph:{digest.hexdigest()}"
    from rdkit import Chem

    return Chem.MolToSmiles(item) if isinstance(item, Chem.Mol) else repr(item)


def _distance_codes(links: torch.Tensor, names: Sequence[str]) -> torch.Tensor | None:
    """Graph-distance class of every link row (argmax of the ``distance=`` columns), or None."""
    cols = [k for k, name in enumerate(names) if name.startswith("distance=")]
    if not cols or links.shape[0] == 0:
        return None
    return links[:, cols].argmax(1)


@dataclass
class ReferenceBaselines:
    """K baselines per molecule drawn from reference molecules' feature rows (expected gradients).

    Parameters
    ----------
    reference:
        SMILES, RDKit molecules or :class:`~sciattr.chem.featurize.MoleculeGraph` objects (e.g. a
        sample of inactive training molecules); featurized with the explained model's featurizer.
    k:
        Baselines per molecule (the attributions' Monte Carlo average has error ~ 1/sqrt(k)).
    seed:
        Seed of the draws: the same seed gives the same baselines.

    Reference molecules the featurizer refuses are not drawn from; a :class:`BaselineWarning`
    names their rows when they are first featurized, and ``skipped`` lists them
    (``{"row", "input", "message"}``). None that can be featurized is an :class:`InputError`.
    """

    reference: Sequence
    k: int = 8
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)
    skipped: list = field(default_factory=list, repr=False, compare=False)

    def describe(self) -> str:
        """What decides the baselines, for run manifests: the number of reference molecules, a
        digest of them (SMILES as given, RDKit molecules as canonical SMILES, graphs by their
        features), ``k`` and ``seed``."""
        digest = hashlib.sha256("\n".join(_item_text(m) for m in as_items(self.reference)).encode()).hexdigest()
        return f"ReferenceBaselines(n={len(as_items(self.reference))}, sha256={digest[:16]}, k={self.k}, seed={self.seed})"

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"expected k to be a positive integer; got {describe(self.k)}")

    def _pool(self, featurizer, dtype, device):
        key = (type(featurizer).__name__, repr(featurizer), dtype, str(device))  # the configuration, not id()
        if key not in self._cache:
            if featurizer is None:
                raise InputError("expected featurizer= to featurize the reference molecules")
            graphs, errors = _graphs_of(self.reference, featurizer)
            if errors and not self.skipped:
                self.skipped[:] = errors
                _warn_skipped(errors, len(graphs), "are not drawn from")
            atoms = torch.cat([g.atoms for g in graphs]).to(device=device, dtype=dtype)
            links = torch.cat([g.links for g in graphs]).to(device=device, dtype=dtype)
            self._cache[key] = (atoms, links)
        return self._cache[key]

    def sample(self, graphs, *, data, link_name: str, featurizer) -> list[dict]:
        """``k`` baselines ``{"atoms": (N, F_atom), link_name: (L, F_link)}`` for the union ``data``
        of ``graphs`` (what :func:`~sciattr.chem.explain_graphs` asks for)."""
        atoms_ref, links_ref = self._pool(featurizer, data.atoms.dtype, data.atoms.device)
        if atoms_ref.shape[1] != data.atoms.shape[1] or links_ref.shape[1] != data.links.shape[1]:
            raise InputError(f"expected reference features of widths ({data.atoms.shape[1]}, {data.links.shape[1]}); "
                             f"got ({atoms_ref.shape[1]}, {links_ref.shape[1]})")
        names = tuple(getattr(featurizer, "link_feature_names", ()))
        gen = torch.Generator().manual_seed(int(self.seed))
        target_codes = _distance_codes(data.links, names)
        ref_codes = _distance_codes(links_ref, names)
        out = []
        for _ in range(self.k):
            pick = torch.randint(atoms_ref.shape[0], (data.atoms.shape[0],), generator=gen)
            atoms = atoms_ref[pick.to(atoms_ref.device)]
            links = torch.zeros_like(data.links)
            if data.links.shape[0] and links_ref.shape[0]:
                draw = torch.randint(links_ref.shape[0], (data.links.shape[0],), generator=gen).to(links_ref.device)
                links = links_ref[draw].clone()
                if target_codes is not None and ref_codes is not None:
                    for code in target_codes.unique().tolist():
                        rows = (target_codes == code).nonzero().flatten()
                        pool = (ref_codes == code).nonzero().flatten()
                        if pool.numel() == 0:  # no reference pair at this distance: keep the distance only
                            links[rows] = 0
                            cols = [k for k, nm in enumerate(names) if nm.startswith("distance=")]
                            links[rows.unsqueeze(1), torch.tensor(cols)] = data.links[rows][:, cols]
                            continue
                        choice = torch.randint(pool.numel(), (rows.numel(),), generator=gen).to(pool.device)
                        links[rows] = links_ref[pool[choice]]
            out.append({ATOMS: atoms, link_name: links})
        return out


@dataclass
class NeutralBaseline:
    """What :func:`neutral_baseline` found.

    Attributes
    ----------
    name:
        The chosen candidate (``"zeros"``, ``"dummy"``, ``"skeleton"``, ``"mean"``, ``"reference mean"`` or a
        blend ``"0.37 zeros + 0.63 dummy"``).
    baselines:
        The baseline to pass as ``baselines=``: a name, or a dict of per-feature rows
        ``{"atoms": (F_atom,), link: (F_link,)}`` broadcast to every molecule (a blend involving
        ``dummy`` keeps each pair's distance columns, so it is a dict of tensors for exactly the
        molecules searched).
    threshold:
        The decision threshold searched for.
    scores:
        Candidate name -> ``(n_molecules,)`` baseline scores F(x').
    distance:
        Candidate name -> mean ``|F(x') - threshold|`` over the molecules.
    crossed:
        Whether two candidates lie on both sides of the threshold (so a blend of them reaches it).
        When ``False`` every option predicts the same class and the chosen one is only the nearest:
        try reference molecules of the other class (``reference=``, or expected gradients with
        :class:`ReferenceBaselines`).
    """

    name: str
    baselines: object
    threshold: float
    scores: dict
    distance: dict
    crossed: bool = False

    def summary(self) -> str:
        lines = [f"baseline nearest the decision threshold {self.threshold:g}: {self.name}"]
        if not self.crossed:
            lines.append("  no option lies on the other side of the threshold: the chosen one is only the nearest "
                         "(try reference= molecules of the other class)")
        for name, d in sorted(self.distance.items(), key=lambda kv: kv[1]):
            lines.append(f"  {name:<28} mean |F(x') - threshold| = {d:.4g}")
        return "\n".join(lines)


@renamed_keywords
def neutral_baseline(model, molecules, *, featurizer=None, target=None, threshold: float | None = None,
                     reference=None, blend_steps: int = 20, per_molecule: bool = True) -> NeutralBaseline:
    """Search the featurization's baseline options for the one whose score is nearest the threshold.

    Parameters
    ----------
    model, molecules, featurizer, target:
        As in :func:`~sciattr.chem.explain_molecules` (the card decides the featurizer).
    threshold:
        The decision threshold (default from the card: 0 for a logit, 0.5 for a probability; 0
        when the card says nothing).
    reference:
        Optional reference molecules: their per-feature mean is one more candidate.
    blend_steps:
        Bisection steps along the blend of two candidates whose mean scores lie on both sides of
        the threshold.
    per_molecule:
        Also blend per molecule: each molecule gets its own weight along the first pair of
        candidates whose scores *for that molecule* lie on both sides of the threshold (and the
        nearest candidate where no pair does), so that every F(x') lands at the threshold, not
        only their mean. The result's ``baselines`` then fit exactly the molecules searched, in
        their order (pass the same molecules to :func:`~sciattr.chem.explain_molecules`).
    """
    featurizer = _default_featurizer(model) if featurizer is None else featurizer
    graphs, errors = _graphs_of(molecules, featurizer)
    if errors:  # the per-molecule baselines must fit the molecules one for one, in order
        raise InputError(f"expected every molecule to be featurized (the baselines fit them in order); "
                         f"{len(errors)} of {len(errors) + len(graphs)} could not be ({_rows(errors)})")
    if threshold is None:
        threshold = decision_threshold(model)
    threshold = 0.0 if threshold is None else float(threshold)
    target = target_index(target, task_names(_card(model)))
    ragged = ragged_graphs(model, graphs, attribute_links=True if graphs[0].kind == "pairs" else None)
    data, link = ragged.data, ragged.link_name
    candidates = {"zeros": "zeros", "mean": {ATOMS: data.atoms.mean(0), link: data.links.mean(0)
                                             if data.links.shape[0] else 0.0}}
    if hasattr(featurizer, "dummy_atoms"):
        candidates["dummy"] = "dummy"
    if getattr(featurizer, "has_skeleton", False):
        candidates["skeleton"] = "skeleton"
    if reference is not None:
        ref, skipped = _graphs_of(reference, featurizer)
        if skipped:
            _warn_skipped(skipped, len(ref), "are left out of the reference mean")
        ra = torch.cat([g.atoms for g in ref]).to(data.atoms)
        rl = torch.cat([g.links for g in ref]).to(data.links)
        candidates["reference mean"] = {ATOMS: ra.mean(0), link: rl.mean(0) if rl.shape[0] else 0.0}

    def tensors(spec):
        from sciattr.chem.adapter import _baselines

        return _resolved(_baselines(spec, featurizer, link, data), data, link)

    def score(rows) -> torch.Tensor:
        out = ragged.scores(model, rows[ATOMS], rows[link])
        if target is None:
            if out.shape[1] != 1:
                raise InputError(f"expected target= for a model with {out.shape[1]} outputs")
            return out[:, 0].double().cpu()
        if not isinstance(target, int):
            raise InputError(f"expected target to be an output index or a task name; got {describe(target)}")
        return out[:, target].double().cpu()

    resolved = {name: tensors(spec) for name, spec in candidates.items()}
    scores = {name: score(rows) for name, rows in resolved.items()}
    names = list(scores)
    crossed = False
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            sa, sb = float(scores[a].mean()) - threshold, float(scores[b].mean()) - threshold
            if sa * sb >= 0:
                continue
            crossed = True
            lo, hi = 0.0, 1.0  # weight of b; mean score - threshold has the sign of sa at 0, of sb at 1
            for _ in range(int(blend_steps)):
                mid = (lo + hi) / 2
                rows = {k: (1 - mid) * resolved[a][k] + mid * resolved[b][k] for k in resolved[a]}
                value = float(score(rows).mean()) - threshold
                if value * sa > 0:
                    lo = mid
                else:
                    hi = mid
            w = (lo + hi) / 2
            blend = f"{1 - w:.3g} {a} + {w:.3g} {b}"
            rows = {k: (1 - w) * resolved[a][k] + w * resolved[b][k] for k in resolved[a]}
            resolved[blend] = rows
            scores[blend] = score(rows)
            candidates[blend] = rows
    if per_molecule:
        rows, chosen = _per_molecule(resolved, scores, score, threshold, data, link, int(blend_steps))
        if chosen:
            crossed = True
            name = f"per molecule ({chosen})"
            resolved[name], scores[name], candidates[name] = rows, score(rows), rows
    distance = {name: float((s - threshold).abs().mean()) for name, s in scores.items()}
    best = min(distance, key=lambda name: (distance[name], name))
    return NeutralBaseline(name=best, baselines=candidates[best], threshold=threshold,
                           scores={k: v.tolist() for k, v in scores.items()}, distance=distance, crossed=crossed)


def _per_molecule(resolved: dict, scores: dict, score, threshold: float, data, link: str, steps: int):
    """Baseline rows with a blend weight per molecule: ``(rows, description)``; description is ""
    when no molecule has a pair of candidates on both sides of the threshold."""
    names = [n for n in resolved if " + " not in n]  # the plain candidates
    n = len(scores[names[0]])
    pair_of: list[tuple[str, str] | None] = [None] * n
    for i in range(n):
        for a_i, a in enumerate(names):
            hit = next((b for b in names[a_i + 1:]
                        if (float(scores[a][i]) - threshold) * (float(scores[b][i]) - threshold) < 0), None)
            if hit is not None:
                pair_of[i] = (a, hit)
                break
    if not any(pair_of):
        return None, ""
    nearest = [min(names, key=lambda c: (abs(float(scores[c][i]) - threshold), c)) for i in range(n)]
    segs = {ATOMS: data.atom_segments.cpu(), link: data.link_segments.cpu()}
    rows = {k: resolved[nearest[0]][k].clone() for k in resolved[names[0]]}
    for i in range(n):  # molecules without a crossing pair: their nearest candidate
        if pair_of[i] is None:
            for k, values in rows.items():
                mask = (segs[k] == i).to(values.device)
                values[mask] = resolved[nearest[i]][k][mask]

    def blended(w, a, b):
        return {k: (1 - w[segs[k]].to(values).unsqueeze(1)) * resolved[a][k]
                + w[segs[k]].to(values).unsqueeze(1) * resolved[b][k] for k, values in rows.items()}

    for pair in dict.fromkeys(p for p in pair_of if p is not None):
        a, b = pair
        members = torch.tensor([p == pair for p in pair_of])
        lo, hi = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
        side = torch.sign(torch.as_tensor(scores[a], dtype=torch.float64) - threshold)
        for _ in range(steps):  # bisection of every molecule's weight at once: one forward per step
            mid = (lo + hi) / 2
            same = torch.sign(score(blended(mid, a, b)) - threshold) == side
            lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
        final = blended((lo + hi) / 2, a, b)
        for k, values in rows.items():
            mask = members[segs[k]].to(values.device)
            values[mask] = final[k][mask]
    counts: dict[str, int] = {}
    for p in pair_of:
        if p is not None:
            counts[f"{p[0]} / {p[1]}"] = counts.get(f"{p[0]} / {p[1]}", 0) + 1
    crossing = ", ".join(f"{k}: {v}" for k, v in counts.items())
    missing = sum(p is None for p in pair_of)
    return rows, crossing + (f"; nearest option for {missing}" if missing else "")
