#!/usr/bin/env bash
# Builds the two images the chart and the operator name by default:
#   $REGISTRY/operator:$TAG   (operator/Dockerfile)
#   $REGISTRY/dataplane:$TAG  (dataplane/Dockerfile)
# REGISTRY defaults to ghcr.io/recsys and TAG to the workspace version, which are the chart's
# defaults (values.yaml: image.repository, dataplaneImage; RecModel.spec.image). To use your
# own registry: REGISTRY=registry.example.com/platform make images, push both, and install the
# chart with --set image.repository=$REGISTRY/operator --set dataplaneImage=$REGISTRY/dataplane:$TAG.
# Uses Docker when an engine answers, else buildah (rootless, chroot isolation).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REGISTRY="${REGISTRY:-ghcr.io/recsys}"
TAG="${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}"
if docker info >/dev/null 2>&1; then
  build() { docker build -f "$1" -t "$2" .; }
elif command -v buildah >/dev/null; then
  build() { buildah bud --isolation chroot --layers -f "$1" -t "$2" .; }
else
  echo "make images: no Docker engine answers and buildah is not installed; nothing built." >&2
  echo "  (install Docker, or: apt-get install buildah)" >&2
  exit 1
fi
build operator/Dockerfile "$REGISTRY/operator:$TAG"
build dataplane/Dockerfile "$REGISTRY/dataplane:$TAG"
echo "built $REGISTRY/operator:$TAG and $REGISTRY/dataplane:$TAG"
