# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export BOT4_HOME ?= $(CURDIR)/.bot4

.PHONY: run test ui bench status clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing bot4_dagster and its pinned dependencies into $(VENV) (about a minute) ..."
	@$(BIN)/pip install --disable-pip-version-check -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@$(BIN)/python -c "import bot4_dagster.definitions" >/dev/null
	@touch $(STAMP)

run: $(STAMP)  ## materialize every asset on the bundled data, then print a summary
	@$(BIN)/bot4 run

test: $(STAMP)  ## the whole test suite
	@$(BIN)/pytest

ui: $(STAMP)  ## Dagster UI on http://127.0.0.1:3000 over the same instance `make run` wrote
	@DAGSTER_HOME=$$($(BIN)/bot4 home) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)  ## benchmarks/ : p50/p95/p99 and ratios to references, JSON in .bot4/bench/
	@$(BIN)/python -m benchmarks

status: $(STAMP)  ## rows per warehouse table
	@$(BIN)/bot4 status

clean:  ## remove generated state (warehouse, Dagster instance, caches), keep the virtualenv
	rm -rf $(BOT4_HOME)
