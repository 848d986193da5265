# meshgen — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast venv bench clean prometheus fuzz

$(BIN)/meshgen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/meshgen

# The suite in parallel worker processes (pytest-xdist): most tests wait on git, Prometheus,
# Envoy or Chromium rather than compute, so more workers than cores finish sooner. Compiled
# modules are kept (__pycache__/, which git ignores) even where the environment sets
# PYTHONDONTWRITEBYTECODE: the suite starts hundreds of Python processes, and compiling
# meshgen's modules again in each one was a fifth of its CPU time.
TEST_WORKERS ?= 4
TEST_ENV := PYTHONDONTWRITEBYTECODE=
test: venv
	$(TEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS)

# The pure core alone (spec, routing, rollout decision, analysis: no IO), property tests capped
# at MESHGEN_FAST_EXAMPLES examples each; `make test` runs them in full.
CORE_TESTS := tests/test_analysis.py tests/test_conditions.py tests/test_decision.py tests/test_routing.py \
              tests/test_routing_properties.py tests/test_schema.py tests/test_yamlq.py
test-fast: venv
	$(TEST_ENV) MESHGEN_FAST_EXAMPLES=$${MESHGEN_FAST_EXAMPLES:-100} $(BIN)/python -m pytest -n 2 $(CORE_TESTS)

demo: venv prometheus
	$(BIN)/meshgen render --verbose
	$(BIN)/meshgen check
	for env in dev staging prod; do kubectl kustomize rendered/$$env > /dev/null && echo "kubectl kustomize rendered/$$env: ok"; done
	$(BIN)/python demo/canary.py

# The rollout demo and tests need Prometheus: Debian's package, installed when missing and possible.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "install Prometheus (apt-get install prometheus) to watch the rollout demo"; fi

# A longer run of the fuzz suite (tests/test_fuzz.py): MESHGEN_FUZZ_EXAMPLES per strategy, seeded.
fuzz: venv
	@seed=$${MESHGEN_FUZZ_SEED:-$$(date +%s)}; echo "fuzzing with MESHGEN_FUZZ_SEED=$$seed"; \
	  MESHGEN_FUZZ_SEED=$$seed MESHGEN_FUZZ_EXAMPLES=$${MESHGEN_FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest tests/test_fuzz.py -q -p no:cacheprovider

bench: venv prometheus
	$(BIN)/python bench/render.py 1000
	$(BIN)/python bench/render.py 1000 --target gateway-api
	$(BIN)/python bench/gitops.py 1000
	$(BIN)/python bench/import.py 1000
	$(BIN)/python bench/conditions.py
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/rollout.py 5000
	$(BIN)/python bench/promotion.py 500
	$(BIN)/python bench/history.py 10000
	$(BIN)/python bench/backtest.py 24

clean:
	rm -rf $(VENV) build *.egg-info
