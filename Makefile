# meshgen — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv bench clean

$(BIN)/meshgen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/meshgen

test: venv
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/meshgen render --verbose
	$(BIN)/meshgen check
	for env in dev staging prod; do kubectl kustomize rendered/$$env > /dev/null && echo "kubectl kustomize rendered/$$env: ok"; done

bench: venv
	$(BIN)/python bench/render.py 1000
	$(BIN)/python bench/conditions.py

clean:
	rm -rf $(VENV) build *.egg-info
