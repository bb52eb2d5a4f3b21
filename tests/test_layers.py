"""The package's layers: the domains (sciattr.chem, sciattr.text) and the core never import the zoo of
shipped models; the zoo imports the domains. Checked on the source (every import statement, also
those inside functions), so that an import made only on some path is caught too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sciattr"
LOWER_LAYERS = ("core", "chem", "text")


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module an import in ``path`` (a file of the package at
    ``root``) may load, relative imports resolved."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (for __init__.py: its own)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            out.append((node.lineno, source))
            # `from sciattr import zoo` loads the submodule sciattr.zoo
            out += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
    return out


def is_zoo(name: str) -> bool:
    return name == "sciattr.zoo" or name.startswith("sciattr.zoo.")


def test_every_spelling_of_an_import_is_seen(tmp_path):
    probe = tmp_path / "sciattr" / "text" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import sciattr.zoo\nfrom sciattr import zoo\nfrom .. import zoo\nfrom ..zoo import text_models\n"
                     "def later():\n    from sciattr.zoo.text_models import load_lstm_lm\n"
                     "from . import corpus\nfrom .corpus import Vocabulary\nimport sciattr.zoology_not\n")
    found = imported_modules(probe, tmp_path / "sciattr")
    assert {line for line, name in found if is_zoo(name)} == {1, 2, 3, 4, 6}
    assert (7, "sciattr.text.corpus") in found and (8, "sciattr.text.corpus") in found
    init = tmp_path / "sciattr" / "text" / "__init__.py"
    init.write_text("from .corpus import Vocabulary\nfrom ..zoo import load_model\n")
    assert [name for _, name in imported_modules(init, tmp_path / "sciattr")][::2] == ["sciattr.text.corpus",
                                                                                     "sciattr.zoo"]


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_lower_layers_never_import_the_zoo(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    offending = [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}"
                 for path in files for line, name in imported_modules(path) if is_zoo(name)]
    assert not offending, "\n".join(offending)


def test_text_language_model_and_the_text_zoo_have_no_cycle():
    text_lm = {name for _, name in imported_modules(PACKAGE / "text" / "lstm_lm.py")}
    zoo_text = {name for _, name in imported_modules(PACKAGE / "zoo" / "text_models.py")}
    assert "sciattr.text.lstm_lm" in zoo_text  # the zoo builds on the domain ...
    assert not any(is_zoo(n) for n in text_lm)  # ... and the domain stands alone
