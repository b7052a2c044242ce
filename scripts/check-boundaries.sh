#!/usr/bin/env bash
# The crate graph's rules, read from `cargo tree`, and the data plane's import layers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "boundary: $*" >&2; exit 1; }

deps_of() { cargo tree -p "$1" --prefix none -e normal,build | awk '{print $1}' | sort -u; }

echo "operator: no native ML library"
if deps_of recsys-operator | grep -xE 'faiss|faiss-sys|tch|torch-sys|lightgbm3|lightgbm3-sys'; then
  fail "the operator crate must not depend on native ML libraries"
fi

echo "serving: no libtorch, no training code"
if deps_of recsys-serving | grep -xE 'tch|torch-sys|recsys-two-tower|recsys'; then
  fail "recsys-serving must not depend on libtorch or on the training crates"
fi

echo "data plane layers: serving and the pipeline do not import each other"
serving=dataplane/serving/src
pipeline=dataplane/recsys/src/pipeline
if grep -rnE 'crate::(serving|demo|live_version)|recsys_serving::serving' "$pipeline" \
  || grep -rnE 'crate::serving' "$serving/artifacts" "$serving/scoring.rs" "$serving/features" "$serving/data"; then
  fail "serving ↛ pipeline (a crate boundary), pipeline ↛ serving; both read and write versions through artifacts/"
fi
echo "boundaries hold"
