#!/usr/bin/env bash
# Screenshot of the MLflow UI showing a pipeline run's checkpoints, taken with headless Chromium.
#
#   scripts/mlflow_screenshot.sh --store outputs/demo/mlflow --out outputs/demo/mlflow_checkpoints.png
#   scripts/mlflow_screenshot.sh --tracking-uri http://127.0.0.1:5000 --out shot.png [--stage pretrain]
#
# --store DIR: the embedded store of `franca demo` (DIR/mlflow.db); a temporary `mlflow server` is
# started on 127.0.0.1 for the screenshot and stopped afterwards. --tracking-uri URI: a running
# server. The page is the artifact browser of the newest run of --stage (default: pretrain), opened
# on its checkpoints/ folder. Needs `chromium` (Debian: apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

store="" uri="" out="mlflow_checkpoints.png" stage="pretrain" budget_ms=60000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) store="$2"; shift 2 ;;
    --tracking-uri) uri="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --stage) stage="$2"; shift 2 ;;
    --budget-ms) budget_ms="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n "$browser" ]] || { echo "chromium not found (apt-get install -y chromium)" >&2; exit 3; }
[[ -n "$store" || -n "$uri" ]] || { echo "give --store DIR or --tracking-uri URI" >&2; exit 2; }
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

server_pid=""
profile=$(mktemp -d)
cleanup() {
  [[ -n "$server_pid" ]] && kill -- "-$server_pid" 2>/dev/null || true
  rm -rf "$profile"
}
trap cleanup EXIT

if [[ -n "$store" ]]; then
  db="$(cd "$store" && pwd)/mlflow.db"
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  uri="http://127.0.0.1:$port"
  setsid .venv/bin/mlflow server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$db" >"$profile/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 120); do curl -sf "$uri/health" >/dev/null && break; sleep 0.5; done
  curl -sf "$uri/health" >/dev/null || { cat "$profile/server.log" >&2; exit 4; }
fi

# Experiment id, run id and first checkpoint of the newest run of the stage.
read -r exp run ckpt < <(.venv/bin/python - "$uri" "$stage" <<'PY'
import sys
from mlflow import MlflowClient

client = MlflowClient(sys.argv[1])
runs = client.search_runs(
    [e.experiment_id for e in client.search_experiments()],
    filter_string=f"tags.`franca.stage` = '{sys.argv[2]}'",
    order_by=["start_time DESC"],
    max_results=1,
)
if not runs:
    sys.exit(f"no run with franca.stage = {sys.argv[2]}")
run = runs[0].info
files = [f.path for f in client.list_artifacts(run.run_id, "checkpoints") if f.path.endswith(".json")]
print(run.experiment_id, run.run_id, "checkpoints")
PY
)
page="$uri/#/experiments/$exp/runs/$run/artifacts/$ckpt"
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile/chrome" --window-size=1400,900 --virtual-time-budget="$budget_ms" \
  --screenshot="$out" "$page" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "no screenshot written" >&2; exit 5; }
echo "$out: $page"
