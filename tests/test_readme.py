"""The README's examples run as written.

Every fenced block opened with ```python (or ```py) is executed on its own, in a fresh namespace,
in a temporary working directory and offline, exactly as a reader would paste it. Blocks in other
languages (bash, plain output) are not run.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python / ```py block of a Markdown text."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
            if m.group(1).lower() in ("python", "py")]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_block_finder():
    text = "intro\n```python\na = 1\n```\n\n```bash\nmake\n```\n```py\nb = 2\n\nc = 3\n```\n```\nplain\n```\n"
    assert python_blocks(text) == [(2, "a = 1\n"), (9, "b = 2\n\nc = 3\n")]


def test_the_readme_has_runnable_examples():
    assert len(BLOCKS) >= 2, "expected the README to show python examples"
    code = "\n".join(block for _, block in BLOCKS)
    # the API the README teaches: the settings object, the vocabulary, tables, whole continuations
    for word in ("Settings(", "target=", "to_dataframe(", "continuation_integrated_gradients("):
        assert word in code, f"no README example uses {word}"


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_written(line, code, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    torch.manual_seed(0)
    namespace = {"__name__": "__main__"}
    # padded so that a traceback's line numbers are the README's own
    exec(compile("\n" * line + code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
