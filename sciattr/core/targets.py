"""Targets: which scalar(s) of the model output are attributed.

``target`` may be

* ``None`` -- the output has one value per example (shape ``(n,)`` or ``(n, 1)``);
* an ``int`` (or a tuple of ints for outputs with several trailing dimensions) -- the same
  output unit for every example;
* a sequence or ``(n,)`` integer tensor -- one output unit per example;
* an ``(n, T)`` integer tensor -- ``T`` units per example, attributed together (one forward);
* ``"all"`` -- every output unit (all tasks of a multi-task model);
* a callable ``fn(output) -> (rows,)`` or ``(rows, T)`` tensor, e.g. a log-probability.

A single target gives attributions shaped like the inputs; several targets add a leading
``T`` dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sciattr.errors import ModelOutputError, TargetError, describe

__all__ = ["TargetSelector", "model_output_tensor", "resolve_target"]


def model_output_tensor(output) -> torch.Tensor:
    """Tensor view of a model output: tensors as they are, ``.logits`` of Hugging Face outputs,
    the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModelOutputError(
        f"expected the model to return a tensor (or an object with .logits); got {describe(output)}; "
        f"pass target=callable(output) -> tensor to select the score"
    )


@dataclass
class TargetSelector:
    """Maps the output of a batch of replicas to a ``(rows, T)`` score matrix."""

    kind: str
    n_targets: int
    multi: bool | None
    units: torch.Tensor | None = None  # (n_examples, T) long, for index targets
    fn: Callable | None = None
    description: str = ""

    def __call__(self, output, example_ids: torch.Tensor) -> torch.Tensor:
        if self.kind == "callable" and self.fn is not None:
            scores = self.fn(output)
            if not isinstance(scores, torch.Tensor):
                raise ModelOutputError(f"target callable must return a tensor; got {describe(scores)}")
            if scores.dim() == 1:
                scores = scores[:, None]
            if scores.dim() != 2 or scores.shape[0] != example_ids.shape[0]:
                raise ModelOutputError(
                    f"target callable must return shape (rows,) or (rows, T) with rows={example_ids.shape[0]}; "
                    f"got {tuple(scores.shape)}"
                )
            return scores
        out = model_output_tensor(output)
        rows = example_ids.shape[0]
        if out.shape[0] != rows:
            raise ModelOutputError(
                f"expected the model output to have one row per input row ({rows}); got shape {tuple(out.shape)}"
            )
        if self.kind == "scalar":
            flat = out.reshape(rows, -1)
            if flat.shape[1] != 1:
                raise TargetError(
                    f"target=None needs one output value per example; got output of shape {tuple(out.shape)}; "
                    f"pass target=<class index>"
                )
            return flat
        flat = out.reshape(rows, -1)
        if self.kind == "all":
            return flat
        if self.units is None:
            raise TargetError(f"target of kind {self.kind!r} has no output indices")
        units = self.units.to(out.device)[example_ids]  # (rows, T)
        n_units = flat.shape[1]
        if int(units.max()) >= n_units or int(units.min()) < 0:
            bad = units[(units >= n_units) | (units < 0)].unique().tolist()
            raise TargetError(
                f"target {bad if len(bad) > 1 else bad[0]} is out of range: the model output has shape "
                f"{tuple(out.shape)}, so targets must lie in [0, {n_units - 1}]"
            )
        return flat.gather(1, units)


def _units_from_int(t, out_shape_hint=None) -> int:
    return int(t)


def resolve_target(target, n_examples: int) -> TargetSelector:
    """Validate a target spec (independently of the model output) and build its selector."""
    if target is None:
        return TargetSelector("scalar", 1, False, description="output")
    if isinstance(target, str):
        if target != "all":
            raise TargetError(f"target string must be 'all'; got {target!r}")
        return TargetSelector("all", -1, True, description="all outputs")
    if callable(target) and not isinstance(target, torch.Tensor):
        return TargetSelector("callable", -1, None, fn=target,
                              description=getattr(target, "__name__", "callable"))
    if isinstance(target, bool):
        raise TargetError(f"target must be an int, a sequence of ints, a tensor or a callable; got {target!r}")
    if isinstance(target, int):
        if target < 0:
            raise TargetError(f"target must be a non-negative output index; got {target}")
        units = torch.full((n_examples, 1), target, dtype=torch.long)
        return TargetSelector("index", 1, False, units=units, description=f"output[{target}]")
    if isinstance(target, tuple) and all(isinstance(t, int) for t in target):
        raise TargetError(
            "tuple targets are ambiguous; flatten the output in the model or pass a callable target"
        )
    try:
        units = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        raise TargetError(
            f"target must be an int, a sequence of ints, a tensor or a callable; got {describe(target)}"
        ) from None
    if units.is_floating_point() or units.dtype == torch.bool:
        raise TargetError(f"target indices must be integers; got dtype {units.dtype}")
    units = units.long().cpu()
    if units.dim() == 1:
        if units.shape[0] != n_examples:
            raise TargetError(
                f"per-example target must have one entry per example ({n_examples}); got {units.shape[0]}"
            )
        units = units[:, None]
        multi = False
    elif units.dim() == 2:
        if units.shape[0] != n_examples:
            raise TargetError(
                f"multi-target tensor must have shape ({n_examples}, T); got {tuple(units.shape)}"
            )
        multi = True
    else:
        raise TargetError(f"target tensor must be 1-D or 2-D; got shape {tuple(units.shape)}")
    if (units < 0).any():
        raise TargetError(f"target indices must be non-negative; got {units.min().item()}")
    return TargetSelector("index", units.shape[1], multi, units=units, description="per-example units")
