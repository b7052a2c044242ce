#!/usr/bin/env bash
# The 1M-item serving benchmark of docs/benchmarks.md, end to end: 10M generated events with
# profiles and metadata → validate → the last 5 days → train-events (3 days train, 2 days label
# the ranker) → an IVF4096 index tuned to recall@500 ≥ 0.95 → serve (every request computed)
# → bench-serve closed loop and fixed rate. About 20 minutes of both cores; nothing else
# should run meanwhile.
#
# Usage: scripts/bench-1m.sh [work dir (default /tmp/big)] [recsys binary] [server binary]
# EVENTS (default 10000000) sets how many events are generated; the catalog is 1M items either
# way, and fewer events only make the model's training shorter (a before/after comparison of
# two servers on one version does not depend on it).
# The server defaults to `<recsys binary> serve`; name target/release/recsys-serve (the lean
# server serving pods run) or another build's recsys to compare servers on the same version.
set -euo pipefail
work=${1:-/tmp/big}
bin=$(realpath "${2:-target/release/recsys}")
if [ -n "${3:-}" ]; then
  server_bin=$(realpath "$3")
  case "$(basename "$server_bin")" in
    recsys-serve) serve_cmd=("$server_bin") ;;
    *) serve_cmd=("$server_bin" serve) ;;
  esac
else
  serve_cmd=("$bin" serve)
fi
mkdir -p "$work"
cd "$work"
if [ ! -f val/clean.csv ]; then
  "$bin" generate --events "${EVENTS:-10000000}" --items 1000000 --out ev10m.csv \
    --users-out users.csv --items-out items.csv
  "$bin" validate --input ev10m.csv --out-dir val >/dev/null || true
fi
if [ ! -f last5d.csv ]; then
  # Rows of the clean file within 5 days of its last timestamp (column 4, unix seconds).
  last=$(tail -n +2 val/clean.csv | cut -d, -f4 | sort -n | tail -1)
  awk -F, -v cut=$((last - 5 * 86400)) 'NR == 1 || $4 >= cut' val/clean.csv > last5d.csv
fi
if [ ! -d models/v1 ]; then
  /usr/bin/time -v "$bin" train-events --input last5d.csv --out models --users users.csv \
    --items items.csv --labels 'purchase,add_to_cart,rating>=4' --holdout-days 2 \
    --ranker-users 2000 2> train.time
fi
if [ ! -d idx_tuned ]; then
  "$bin" build-index --model-dir models/v1 --output idx_tuned --type ivf --nlist 4096 \
    --recall-target 0.95 --sample-queries 500
fi
"${serve_cmd[@]}" --model-dir models/v1 --index-dir idx_tuned --addr 127.0.0.1:50851 \
  --http-addr 127.0.0.1:50852 --prediction-ttl-secs 0 > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf http://127.0.0.1:50852/readyz >/dev/null && break
  sleep 1
done
echo "RSS ready: $(grep VmRSS /proc/$server/status)"
"$bin" bench-serve --target http://127.0.0.1:50851 --users-from models/v1 \
  --concurrency 1,2,4,8,16 --duration-secs 12
"$bin" bench-serve --target http://127.0.0.1:50851 --users-from models/v1 \
  --concurrency 32 --rate 2100 --duration-secs 15
echo "RSS after: $(grep -E 'VmRSS|VmHWM' /proc/$server/status | tr '\n' ' ')"
