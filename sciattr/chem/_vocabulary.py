"""The words every chemistry entry point uses: ``target`` (a task index or a task name of the model
card), ``baselines``; older spellings raise an error naming the current one."""

from __future__ import annotations

import functools
import numbers

from sciattr.errors import InputError, TargetError
from sciattr.settings import RENAMED

__all__ = ["check_keywords", "renamed_keywords", "target_index", "task_names"]

_OLD = {"task": "target", "tasks": "target", "baseline": "baselines"}


def check_keywords(keywords) -> None:
    """Raise :class:`InputError` for an old spelling among ``keywords`` (a mapping or names)."""
    for key in keywords:
        new = _OLD.get(key) or (RENAMED.get(key) if key in ("task", "baseline") else None)
        if new is not None:
            why = "a task index or a task name is a target" if new == "target" else \
                "one word for every input's reference point"
            raise InputError(f"unknown option {key!r}: use {new!r} ({why})")


def renamed_keywords(func):
    """Decorator: old keyword spellings (``task=``, ``baseline=``) raise an error naming the new word."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        check_keywords(kwargs)
        return func(*args, **kwargs)

    return wrapper


def task_names(card) -> tuple[str, ...]:
    """Names of a model card's outputs, in order (``()`` when the card names none)."""
    if not isinstance(card, dict):
        return ()
    tasks = card.get("tasks")
    if isinstance(tasks, (list, tuple)) and all(isinstance(t, (str, dict)) for t in tasks):
        return tuple(t if isinstance(t, str) else str(t.get("name", "")) for t in tasks)
    task = card.get("task")
    if isinstance(task, dict) and isinstance(task.get("name"), str):
        return (task["name"],)
    return ()


def target_index(target, names: tuple[str, ...], n_targets: int | None = None):
    """A task name -> its index among ``names``; other targets are returned as they are."""
    if isinstance(target, str) and target != "all":
        if target in names:
            return names.index(target)
        if not names:
            raise TargetError(f"target {target!r} is a name, but the model has no card naming its outputs; "
                              f"give the output index")
        raise TargetError(f"expected a target among the model's tasks {list(names)} (or an index); got {target!r}")
    if n_targets is not None and isinstance(target, numbers.Integral) and not isinstance(target, bool) \
            and not 0 <= int(target) < n_targets:
        raise TargetError(f"expected a target index in [0, {n_targets - 1}]; got {target}")
    return target
