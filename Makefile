# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create $(VENV) if needed and install from the lock (requirements/constraints.txt)
# with uv, which resolves this dependency set in seconds where pip backtracks for minutes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
UV_VERSION := 0.13.9
BIN := $(VENV)/bin
UV := $(BIN)/uv
# Extra wheel folders (a machine's local copies of torch and its CUDA wheels, say) are the
# machine's business, not this file's: uv reads them from UV_FIND_LINKS (see README.md).
UV_INSTALL = $(UV) pip install --python $(BIN)/python -c requirements/constraints.txt \
	--overrides requirements/overrides.txt
PYTEST_ARGS ?=

.PHONY: demo demo-camera test install-serve install-dev lock lint bench clean label-studio

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The serving install: no torch, no ultralytics; OpenVINO, the faster CPU engine (benchmarks/README.md).
install-serve: $(UV)
	$(UV_INSTALL) -e '.[openvino]'

# Everything the test suite needs: training extra (torch, ultralytics) and dev tools.
install-dev: $(UV)
	$(UV_INSTALL) -e '.[train,dev]'

# Label Studio for reviewers (`patrol review server`) and the `server` tests, in a virtualenv of its
# own outside the clone: its pins clash with ours, and uv installs it in minutes where pip's
# resolver takes half an hour. PATROL_LABEL_STUDIO_VENV moves it (service/review/settings.py).
LABEL_STUDIO_VERSION := 1.23.2
LABEL_STUDIO_VENV ?= $(or $(PATROL_LABEL_STUDIO_VENV),$(HOME)/.cache/patrol-vision/label-studio-$(LABEL_STUDIO_VERSION))

label-studio: $(UV)
	@test -x $(LABEL_STUDIO_VENV)/bin/label-studio || { \
		$(UV) venv --python $(PYTHON) $(LABEL_STUDIO_VENV) \
		&& $(UV) pip install --python $(LABEL_STUDIO_VENV)/bin/python label-studio==$(LABEL_STUDIO_VERSION); }
	@echo "label-studio $(LABEL_STUDIO_VERSION) in $(LABEL_STUDIO_VENV)"

demo: install-serve
	$(BIN)/patrol demo

# A bundled smoke photo replayed as a watchtower camera: the signed alert and the broadcast arrive.
demo-camera: install-serve
	$(BIN)/patrol demo-camera

# The layering contracts (pyproject.toml, [tool.importlinter]) first: a broken one fails the run.
# Then mypy ([tool.mypy]): a type error, or a `# type: ignore` that hides none, fails it too.
# Label Studio first too: the review tests start a throwaway one from its virtualenv, and without
# it the run stops and says so (installed once, outside the clone; a no-op once there).
# pytest runs as two processes at once, the `server` tests and the rest (tests/run_suite.py says
# why); PATROL_TEST_SPLIT=0 runs one.
test: install-dev label-studio
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy
	$(BIN)/python tests/run_suite.py $(PYTEST_ARGS)

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: $(UV)
	$(UV) pip compile -q pyproject.toml --extra train --extra dev --extra openvino \
		--overrides requirements/overrides.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements/constraints.txt

lint: install-dev
	$(BIN)/ruff check vision service training patrol_cli tests benchmarks
	$(BIN)/lint-imports --no-logo

bench: install-dev
	$(BIN)/python benchmarks/inference.py --quick

clean:
	rm -rf out var runs .pytest_cache
