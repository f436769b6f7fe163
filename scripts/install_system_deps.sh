#!/usr/bin/env bash
# Debian packages used by the integration tests: slurm-wlm + munge (a real single-node SLURM for
# the launcher test) and chromium (the MLflow UI screenshot). Needs root; skips what is present.
set -euo pipefail
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
command -v chromium >/dev/null || need+=(chromium)
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "not root: cannot install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
timeout 300 apt-get update -qq
timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
