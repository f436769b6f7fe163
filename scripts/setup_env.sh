#!/usr/bin/env bash
# Create .venv in the repo root and install the project with every extra needed here.
# Idempotent: a stamp file records the hash of pyproject.toml, so reruns are instant.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.installed
want=$(sha256sum pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [[ -f $stamp && "$(cat $stamp)" == "$want" ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
export NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on the project's machines these two come from local disk.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[cpu,curate,pipeline,dev]" "torch==2.14.1" "torchvision==0.29.1"
# img2dataset pulls the `dataclasses` 0.6 backport, whose top-level dataclasses.py shadows
# the standard library and breaks Prefect's temporary server. Python 3.11 has the real one.
.venv/bin/python -m pip uninstall -q -y dataclasses || true
echo "$want" > "$stamp"
