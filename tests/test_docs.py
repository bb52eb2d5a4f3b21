"""The API reference: ``make docs`` builds it with pdoc from the docstrings of every public module.

The build runs here into a temporary folder (without the source view and the search index, which
only make it slower), so a module that no longer imports, a docstring pdoc cannot read or a name in
an ``__all__`` that does not resolve fails the suite.
"""

import html
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sciattr

ROOT = Path(__file__).resolve().parents[1]

# pdoc's warnings that do not mean a broken reference:
BENIGN = (
    # dataclass subclasses inherit __init__ annotations written as strings in sciattr.result; pdoc
    # evaluates them in the subclass's module and shows them as written
    "Error parsing type annotation",
    # a submodule named in its package's __all__ is reached twice (by the package and by the list)
    "but a module with this name has already been added",
)
UNRESOLVED = re.compile(r"Found '(\w+)' in ([\w.]+)\.__all__, but it does not resolve")


def public_modules() -> list[str]:
    """What ``make docs`` documents: sciattr and every module whose dotted name has no ``_`` part."""
    return ["sciattr"] + [m.name for m in pkgutil.walk_packages(sciattr.__path__, "sciattr.") if "._" not in m.name]


def page(out: Path, module: str) -> Path:
    return out.joinpath(*module.split(".")).with_suffix(".html")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    pytest.importorskip("pdoc")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("api")
    bin_dir = Path(sys.executable).parent
    # -o: take the installed environment as up to date (the suite runs inside it)
    proc = subprocess.run(
        ["make", "-s", "-o", ".venv/.sciattr-installed", "docs", f"BIN={bin_dir}", f"DOCS_OUT={out}",
         "PDOC_FLAGS=--no-show-source --no-search"],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    return out, proc


def test_make_docs_builds_a_page_for_every_public_module(reference):
    out, proc = reference
    assert proc.returncode == 0, proc.stderr[-4000:]
    modules = public_modules()
    assert {"sciattr.settings", "sciattr.text.continuation", "sciattr.chem", "sciattr.core.quadrature"} <= set(modules)
    missing = [m for m in modules if not page(out, m).is_file()]
    assert not missing, f"no page for {missing}"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "sciattr.text.continuation" in index and "sciattr.settings" in index


def test_pdoc_reports_no_broken_module_or_name(reference):
    _, proc = reference
    problems = []
    for line in proc.stderr.splitlines():
        if not line.startswith("Warn:") or any(b in line for b in BENIGN):
            continue
        unresolved = UNRESOLVED.search(line)
        if unresolved:
            # a name the module hands out lazily (a module __getattr__) is fine when it resolves
            name, module = unresolved.groups()
            if getattr(importlib.import_module(module), name, None) is not None:
                continue
        problems.append(line)
    assert not problems, "\n".join(problems)


def test_pages_carry_the_docstrings(reference):
    out, _ = reference
    from sciattr.settings import Settings
    from sciattr.text.continuation import continuation_integrated_gradients

    def text_of(module):
        return html.unescape(re.sub(r"<[^>]+>", "", page(out, module).read_text(encoding="utf-8")))

    settings_page = text_of("sciattr.settings")
    assert "How attributions are computed. Frozen: derive variants with" in settings_page
    assert Settings.__doc__.startswith("How attributions are computed.")
    for field in ("steps", "rule", "tolerance", "baselines", "max_steps"):
        assert re.search(rf"\b{field}\b", settings_page), field
    continuation = text_of("sciattr.text.continuation")
    assert "continuation_integrated_gradients" in continuation
    assert continuation_integrated_gradients.__doc__.strip().splitlines()[0] in continuation
    top = text_of("sciattr")
    assert "integrated_gradients" in top and "completeness" in top


def test_every_exported_name_has_an_entry(reference):
    """Each name of a public module's ``__all__`` is documented: on that module's page, or -- for a name
    the module hands out lazily -- on the page of the module that defines it."""
    out, _ = reference
    missing = []
    for name in public_modules():
        module = importlib.import_module(name)
        text = page(out, name).read_text(encoding="utf-8")
        for exported in getattr(module, "__all__", ()):
            if f'id="{exported}"' in text:
                continue
            home = getattr(getattr(module, exported, None), "__module__", None)
            if exported not in vars(module) and home and page(out, home).is_file() \
                    and f'id="{exported}"' in page(out, home).read_text(encoding="utf-8"):
                continue
            missing.append(f"{name}.{exported}")
    assert not missing, f"exported but not in the reference: {missing}"
