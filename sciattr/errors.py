"""The one exception family of sciattr.

Every error raised on bad user input derives from :class:`SciAttrError`. Messages say what was
expected and what was got, so a caller scripting thousands of molecules or sentences can log them
as they are.
"""

from __future__ import annotations

__all__ = [
    "BaselineWarning",
    "ConvergenceWarning",
    "InputError",
    "MissingDependencyError",
    "ModelOutputError",
    "SciAttrError",
    "TargetError",
    "describe",
]


class SciAttrError(Exception):
    """Base class of every error sciattr raises on purpose."""


class InputError(SciAttrError, ValueError):
    """An input, baseline or option does not have the expected type, shape or value."""


class TargetError(SciAttrError, IndexError):
    """The requested target does not exist in the model output."""


class ModelOutputError(SciAttrError, RuntimeError):
    """The model returned something attributions cannot be computed from (non-finite, wrong shape)."""


class MissingDependencyError(SciAttrError, ImportError):
    """An optional dependency needed by a domain adapter is not installed."""


class ConvergenceWarning(UserWarning):
    """Attributions did not reach the requested completeness tolerance."""


class BaselineWarning(UserWarning):
    """The baseline is not neutral for the explained target (the attributions explain little)."""


def describe(value) -> str:
    """Short human description of a value for error messages: type, shape and dtype of tensors."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return f"{type(value).__name__} {value!r}"[:200]


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingDependencyError` with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            f"{module} is needed here but is not installed; install it with "
            f"`pip install 'sciattr[{extra}]'`"
        ) from exc
