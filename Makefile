# Every target creates .venv on first use (scripts/setup_env.sh is idempotent).
VENV := .venv
PY := $(VENV)/bin/python
export NO_ALBUMENTATIONS_UPDATE=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1

.PHONY: setup lint type test test-fast demo pipeline clean

setup:
	bash scripts/setup_env.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

type: setup
	$(VENV)/bin/mypy franca_core data_filters tasks flows

test: lint type
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not integration"

demo: setup
	$(VENV)/bin/franca demo --out outputs/demo

clean:
	rm -rf outputs .pytest_cache .mypy_cache .ruff_cache
