# The two commands of the README: `make demo` (the main job on a bundled default) and `make test`.
# Both set the machine up first (tools/setup.sh: Debian packages + .venv), once.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint parity
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tools/setup.sh
	bash tools/setup.sh
	touch $@

demo: setup
	$(BIN)/wakeword demo --out out/demo

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check wakeword tools tests
	$(BIN)/ruff format --check wakeword tools tests

parity: setup
	$(BIN)/python tools/parity_report.py
