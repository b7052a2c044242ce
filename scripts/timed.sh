#!/usr/bin/env bash
# timed.sh <name> <command...>: runs the command and prints its wall time, so that the logs of
# `make demo` and `make test` say where the time went (setup, build, demo, tests, lints).
set -euo pipefail
name=$1
shift
start=$SECONDS
"$@"
printf '\033[1;34m[time]\033[0m %s: %d s\n' "$name" $((SECONDS - start))
