"""Everything a tutorial imports from the chemistry modules is public at ``sciattr.chem``."""

import ast
from pathlib import Path

import sciattr.chem

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


def _chem_imports() -> set[str]:
    names = set()
    for path in TUTORIALS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sciattr.chem"):
                names.update(alias.name for alias in node.names)
    return names


def test_tutorial_helpers_are_exported():
    used = _chem_imports()
    assert {"draw_attribution", "aggregate_attribution", "explain_molecules"} <= used
    missing = sorted(n for n in used if n not in sciattr.chem.__all__ or not hasattr(sciattr.chem, n))
    assert missing == []


def test_every_exported_name_exists():
    assert [n for n in sciattr.chem.__all__ if not hasattr(sciattr.chem, n)] == []
    assert sciattr.chem.train_model.__module__ == "sciattr.chem.training"
