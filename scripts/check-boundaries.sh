#!/usr/bin/env bash
# The crate graph's rules, read from `cargo tree`, and the one import rule inside `recsys`.
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

for crate in recsys-data recsys-version recsys-scoring; do
  echo "$crate: no libtorch, no serving, no training code"
  if deps_of "$crate" | grep -xE 'tch|torch-sys|recsys-two-tower|recsys|recsys-serving'; then
    fail "$crate must not depend on libtorch, the server or the training crates"
  fi
done

echo "training: the pipeline does not import serving"
pipeline=dataplane/recsys/src/pipeline
if grep -rnE 'recsys_serving|crate::(demo|live_version|commands)' "$pipeline"; then
  fail "the pipeline reads and writes versions through recsys-version and scores through recsys-scoring; only commands, the demo and live_version start or load a server"
fi
echo "boundaries hold"
