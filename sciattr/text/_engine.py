"""The one place where the text adapters call the attribution engine, and how their inputs are read.

:func:`run_engine` hands a :class:`~sciattr.settings.Settings` to
:func:`sciattr.core.engine.attribute`. :func:`as_list` reads the rows a user gives (a string, any
sequence, a pandas Series or Index, a numpy array) and :func:`row_ids` keeps a Series' index as the
id of each row.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from sciattr.core import engine
from sciattr.errors import InputError, describe
from sciattr.settings import Settings

__all__ = ["as_list", "row_ids", "run_engine"]


def _takes_settings() -> bool:
    try:
        return "settings" in inspect.signature(engine.attribute).parameters
    except (TypeError, ValueError):
        return False


def run_engine(model, inputs, *, settings: Settings, target=None, forward_kwargs: Mapping | None = None,
               example_names: Sequence | None = None):
    """``engine.attribute`` with ``settings`` (``settings.baselines`` already in the engine's form)."""
    if _takes_settings():
        return engine.attribute(model, inputs, target=target, settings=settings, forward_kwargs=forward_kwargs,
                                example_names=None if example_names is None else list(example_names))
    s = settings
    steps, tolerance = s.steps, s.tolerance
    if s.method == "integrated_gradients" and steps is None:
        steps, tolerance = s.first_steps, s.check_tolerance
    elif steps is None:
        steps = 1
    return engine.attribute(model, inputs, method=s.method, baselines=s.baselines, target=target, steps=steps,
                            rule=s.rule or "trapezoid", path=s.path, tolerance=tolerance, max_steps=s.max_steps,
                            batch_size=s.batch_size, memory_budget=s.memory_budget, store_path=s.store_path,
                            forward_kwargs=forward_kwargs)


def as_list(values, what: str = "texts", *, scalar=str) -> list:
    """``values`` as a list of rows: one ``scalar`` becomes ``[value]``; a sequence, a pandas Series or
    Index, a numpy array or a 1-D tensor gives its elements in order."""
    if scalar is not None and isinstance(values, scalar):
        return [values]
    if hasattr(values, "tolist") and not isinstance(values, (str, bytes)):
        out = values.tolist()
        return out if isinstance(out, list) else [out]
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        return list(values)
    raise InputError(f"expected {what} as a list, a tuple or a pandas Series; got {describe(values)}")


def row_ids(values) -> list:
    """The caller's id of every row: a pandas Series' (or DataFrame column's) index, else ``[]``."""
    index = getattr(values, "index", None)
    if index is None or callable(index) or not hasattr(index, "tolist"):
        return []
    return list(index.tolist())
