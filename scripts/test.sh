#!/usr/bin/env bash
# The whole suite: unit and integration tests against the real native libraries, then format,
# lint and generated-file drift checks. Assumes scripts/setup.sh and fetch-data.sh have run.
# Each step prints its wall time, and a summary closes the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

times=()
step() { # step <name> <command...>: runs it, records its wall time
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@"
  times+=("$(printf '%-44s %4d s' "$name" $((SECONDS - start)))")
}

# One profile for everything: the demo's release build is the tests' build, and clippy reuses
# its build-script outputs (FAISS, LightGBM). `--tests` builds each crate's unit tests and
# its one integration-test binary; the examples are compiled by clippy (check mode) only.
step "cargo test (release, shared with the demo)" cargo test --release --workspace --tests
step "Kubernetes: chart, 1.37 schemas, examples" .venv/bin/python scripts/k8s-checks.py
step "e2e against KUBECONFIG's cluster (skips without one)" env PY=.venv/bin/python tests/e2e/run.sh
step "rustfmt" cargo fmt --all -- --check
step "clippy (release profile, all targets)" cargo clippy --release --workspace --all-targets -- -D warnings
step "crate boundaries" bash scripts/check-boundaries.sh
step "every declared dependency used" python3 scripts/check-unused-deps.py
step "paths named in docs exist" .venv/bin/python scripts/check-doc-paths.py

echo "== step times"
printf '  %s\n' "${times[@]}"
echo "all checks passed (CRD drift is checked by the operator's crd_drift tests)"
