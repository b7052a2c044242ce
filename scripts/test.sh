#!/usr/bin/env bash
# The whole suite: unit and integration tests against the real native libraries, then format,
# lint and generated-file drift checks. Assumes scripts/setup.sh and fetch-data.sh have run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== cargo test (release profile, shared with the demo build)"
cargo test --release --workspace
echo "== Kubernetes: chart lint/render, 1.37 schemas, example manifests"
.venv/bin/python scripts/k8s-checks.py
echo "== e2e against KUBECONFIG's cluster (skips without one)"
PY=.venv/bin/python tests/e2e/run.sh
echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== operator dependency boundary"
if cargo tree -p recsys-operator --prefix none -e normal,build | grep -E '^(faiss|faiss-sys|tch|torch-sys|lightgbm3|lightgbm3-sys) '; then
  echo "the operator crate must not depend on native ML libraries" >&2
  exit 1
fi
echo "== serving dependency boundary: recsys-serve links no libtorch and no training code"
if cargo tree -p recsys-serving --prefix none -e normal,build | grep -E '^(tch|torch-sys|recsys-two-tower|recsys) '; then
  echo "recsys-serving must not depend on libtorch or on the training crates" >&2
  exit 1
fi
echo "== data-plane layers: serving and training do not import each other"
serving=dataplane/serving/src
pipeline=dataplane/recsys/src/pipeline
if grep -rnE 'crate::(serving|demo|live_version)|recsys_serving::serving' "$pipeline" \
  || grep -rnE 'crate::serving' "$serving/artifacts" "$serving/scoring.rs" "$serving/features" "$serving/data"; then
  echo "serving ↛ pipeline (a crate boundary), pipeline ↛ serving; both read and write versions through artifacts/" >&2
  exit 1
fi
echo "all checks passed (CRD drift is checked by operator/tests/crd_drift.rs)"
