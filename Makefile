# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export BOT4_HOME ?= $(CURDIR)/.bot4
UI_PORT ?= 3000

.PHONY: run test lint ui bench status clean

# pip's full output goes to $(VENV)/install.log; tools/install_progress.py prints a line per phase
$(STAMP): pyproject.toml
	@start=$$(date +%s); \
	if test -x $(BIN)/python; then echo "[1/4] using the existing virtualenv $(VENV)"; \
	else echo "[1/4] creating the virtualenv $(VENV) with $$($(PYTHON) --version) ..."; \
		$(PYTHON) -m venv $(VENV) || exit 1; fi; \
	echo "[2/4] resolving and downloading the pinned dependencies of bot4_dagster[dev] (full log: $(VENV)/install.log) ..."; \
	{ $(BIN)/pip install --disable-pip-version-check -e '.[dev]' 2>&1; echo $$? > $(VENV)/install.status; } \
		| tee $(VENV)/install.log | $(BIN)/python -u tools/install_progress.py $(VENV); \
	if test "$$(cat $(VENV)/install.status)" != 0; then \
		echo "---- last 30 lines of $(VENV)/install.log ----"; tail -n 30 $(VENV)/install.log; \
		echo "pip install failed (exit $$(cat $(VENV)/install.status)): see $(VENV)/install.log"; exit 1; fi; \
	echo "[4/4] checking that bot4_dagster.definitions imports ..."; \
	$(BIN)/python -c "import bot4_dagster.definitions" >/dev/null \
		|| { echo "installed, but 'import bot4_dagster.definitions' failed (above)"; exit 1; }; \
	echo "installed in $$(( $$(date +%s) - start )) s; $(VENV) takes $$(du -sh $(VENV) | cut -f1)"
	@touch $(STAMP)

run: $(STAMP)  ## materialize every asset on the bundled data, then print a summary
	@$(BIN)/bot4 run

# one worker per core (pytest-xdist); a file's tests stay on one worker, so a module's shared
# fixture (test_cli's bundled run) runs once
TEST_WORKERS ?= 2

test: lint  ## make lint, then the whole test suite on $(TEST_WORKERS) workers
	@$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# the rules the README promises, enforced: CI runs them as the first step of `make test`
lint: $(STAMP)  ## ruff (E F W B I UP SIM RUF), mypy on kernels/ml/trading/serving/registry, import-linter layer contracts
	@echo "lint: ruff check ." && $(BIN)/ruff check --quiet .
	@echo "lint: mypy (kernels, ml, trading, serving, registry)" && $(BIN)/mypy --no-error-summary
	@echo "lint: import-linter (layer contracts)"; \
	out=$$($(BIN)/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; echo "$$out" | tail -n 1

# `dg dev` reads [tool.dg] in pyproject.toml and serves the code location bot4_dagster with this
# venv's interpreter; VIRTUAL_ENV tells dg that the venv it runs from is the project's .venv.
ui: $(STAMP)  ## Dagster UI (`dg dev`) on http://127.0.0.1:$(UI_PORT) over the instance `make run` wrote
	@DAGSTER_HOME=$$($(BIN)/bot4 home) VIRTUAL_ENV=$(abspath $(VENV)) \
		$(BIN)/dg dev -h 127.0.0.1 -p $(UI_PORT)

bench: $(STAMP)  ## benchmarks/ : p50/p95/p99 and ratios to references, then refresh perf/manifest
	@$(BIN)/python -m benchmarks
	@$(BIN)/bot4 run --select perf/manifest

status: $(STAMP)  ## rows and first/last timestamp per warehouse table and symbol
	@$(BIN)/bot4 status

clean:  ## remove generated state (warehouse, Dagster instance, caches), keep the virtualenv
	rm -rf $(BOT4_HOME)
