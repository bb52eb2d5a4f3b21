# Two entry points: `make demo` (set up, then explain the embedded default) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sciattr-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test bench bench-scale lint docs clean

setup: $(STAMP)

# torch is pinned here (a CPU wheel on this machine's disk); pyproject keeps a range for GPU users.
# g2p-en and rxnfp are installed without their dependencies: sciattr reads only their weight files.
# The `scale` extra (ray[data], ~600 MB) is installed too, so that the suite tests the Ray backend.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[all,scale]' torch==2.13.0
	$(BIN)/pip install -q --no-deps g2p-en==2.1.0 rxnfp==0.1.0
	touch $(STAMP)

demo: setup
	$(BIN)/sciattr demo --out reports --force  # the demo rewrites its own report

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_core.py

bench-scale: setup
	$(BIN)/python benchmarks/bench_scale.py

lint: setup
	$(BIN)/ruff check sciattr tests benchmarks tutorials
	$(BIN)/mypy sciattr

# The API reference (HTML, from the docstrings) in docs/api/; open docs/api/index.html.
# Every public module is listed, since a package's __all__ names only what it re-exports.
DOCS_OUT ?= docs/api
PDOC_FLAGS ?=
docs: setup
	$(BIN)/python -m pdoc --docformat numpy --template-directory docs/templates $(PDOC_FLAGS) -o $(DOCS_OUT) \
		$$($(BIN)/python -c "import pkgutil, sciattr; print(' '.join(['sciattr'] + [m.name for m in \
		pkgutil.walk_packages(sciattr.__path__, 'sciattr.') if '._' not in m.name]))")

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache docs/api
