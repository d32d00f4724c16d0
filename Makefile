# grove-py: everything a developer or CI needs, from a fresh clone.
#   make demo   local cluster (built on first use) + CRDs + samples, left running
#   make test   all test tiers: unit, integration (real kube-apiserver), e2e (scheduler + KWOK nodes)
#   make bench  benchmarks: print numbers and write JSON to bench-results/
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
export GROVE_STATE_DIR ?= $(CURDIR)/.grove/cluster

.PHONY: all demo test unit integration e2e chaos bench bench-cluster bench-webhook bench-scale bench-gang lint format crds clean down venv image lock release helm

all: lint test

LOCK := deploy/image/requirements.lock

# The runtime packages at the image's pinned versions (the lock), so tests run what the image ships.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c $(LOCK)
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" hack/demo.sh

down: $(STAMP)
	$(VENV)/bin/grove-cluster down

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# The chaos suite's full profile (docs/chaos.md): faults on a 1,000-pod PodCliqueSet, a scoreboard table and
# bench-results/chaos.json; CHAOS_ARGS e.g. --seed 123 --only "etcd" (make test runs the short profile).
CHAOS_ARGS ?=
chaos: $(STAMP)
	$(PY) -m tools.chaos --out bench-results/chaos.json $(CHAOS_ARGS)

bench: bench-cluster bench-webhook bench-scale bench-gang

bench-cluster: $(STAMP)
	$(PY) -m tools.bench_cluster --out bench-results/cluster.json

bench-webhook: $(STAMP)
	$(PY) -m tools.bench_webhook --out bench-results/webhook.json $(BENCH_WEBHOOK_ARGS)

bench-scale: $(STAMP)
	$(PY) -m tools.bench_scale --out bench-results/scale.json

bench-gang: $(STAMP)
	$(PY) -m tools.bench_gang core --out bench-results/gang-core.json
	$(PY) -m tools.bench_gang e2e --out bench-results/gang-e2e.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy grove_api kube certs localcluster webhook grove_operator reconciler admitter initc tools/image.py tools/release.py
	$(PY) -m grove_api.crdgen --check

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

crds: $(STAMP)
	$(PY) -m grove_api.crdgen

# One container image for grove-operator and grove-initc (docs/image.md); IMAGE_ARGS e.g. --save image.tar
IMAGE_ARGS ?=
image: $(STAMP)
	$(PY) -m tools.image build $(IMAGE_ARGS)

# Re-pin deploy/image/requirements.lock from pyproject.toml's [project].dependencies
lock: $(STAMP)
	$(PY) -m tools.image lock

# The release manifest deploy/release/grove-py.yaml: the chart rendered with its defaults (pinned helm,
# built from the Go module proxy on first use)
release: $(STAMP)
	$(PY) -m tools.release

# Print the path of the pinned helm (building it on first use), e.g. `$$(make -s helm) install …`
helm: $(STAMP)
	@$(PY) -c 'from localcluster.binaries import ensure_helm; import sys; print(ensure_helm(lambda m: print(m, file=sys.stderr)))'

clean:
	-[ -x $(VENV)/bin/grove-cluster ] && $(VENV)/bin/grove-cluster down
	rm -rf .grove $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis bench-results .ci/junit.xml
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
