"""Forward hooks, only ever installed inside a ``with`` block so the model is always restored."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from sciattr.errors import InputError, describe

__all__ = ["capture_output", "replace_output"]


@contextlib.contextmanager
def replace_output(module: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Within the block, ``module``'s output ``y`` is replaced by ``fn(y)``.

    Used to feed scaled embeddings into models that accept only token ids. The hook is removed
    on exit, also when the block raises.
    """
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"replace_output needs a torch.nn.Module; got {describe(module)}")
    handle = module.register_forward_hook(lambda mod, args, out: fn(out))
    try:
        yield module
    finally:
        handle.remove()


@contextlib.contextmanager
def capture_output(module: torch.nn.Module):
    """Within the block, every output of ``module`` is appended to the yielded list."""
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"capture_output needs a torch.nn.Module; got {describe(module)}")
    outputs: list = []
    handle = module.register_forward_hook(lambda mod, args, out: outputs.append(out))
    try:
        yield outputs
    finally:
        handle.remove()
