#!/usr/bin/env python3
"""Offline Kubernetes checks, run by scripts/test.sh after the Rust tests:

1. `helm lint --strict` of the chart (Helm 4's library, from the helm-python-sdk wheel);
2. the chart rendered (default values, and with the ServiceMonitor on) and every object
   validated against the Kubernetes 1.37 schemas (kubernetes-validate, strict);
3. the chart's CRDs validated as CustomResourceDefinitions;
4. the objects the operator's builders produce (written by operator/tests/it/builders.rs to
   target/tmp/rendered-children/) validated the same way;
5. every example manifest validated against our generated CRD schemas, unknown fields
   rejected — and a broken copy of one example must fail, so the check itself is checked.
"""

import copy
import glob
import os
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml


class KubeLoader(yaml.SafeLoader):
    """YAML as the API server reads it: an unquoted RFC 3339 time stays a string."""


KubeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "recsys-operator")
K8S = "1.37.0"
failures = []


def check(what, fn):
    try:
        fn()
        print(f"ok    {what}")
    except jsonschema.ValidationError as e:
        failures.append(what)
        print(f"FAIL  {what}: {e.message} at {'.'.join(map(str, e.absolute_path))}")
    except Exception as e:  # noqa: BLE001 — every failure is reported, then the script fails
        failures.append(what)
        print(f"FAIL  {what}: {e}")


def validate_k8s(doc, where):
    kind = doc.get("kind")
    if kind == "ServiceMonitor":
        # prometheus-operator's CRD, not part of the Kubernetes schemas: check its shape.
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
        assert doc["spec"]["endpoints"][0]["port"], where
        return
    kubernetes_validate.validate(doc, K8S, strict=True)


def lint():
    report = helm.lint(CHART, strict=True, kube_version="v" + K8S)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def render(values):
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name="recsys", namespace="recsys-system", is_install=True)
    docs = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        docs += [(path, d) for d in yaml.safe_load_all(text) if d]
    assert docs, "nothing rendered"
    for path, doc in docs:
        validate_k8s(doc, path)
    return docs


def rendered_chart(values, expect_kinds):
    def run():
        kinds = {d["kind"] for _, d in render(values)}
        missing = set(expect_kinds) - kinds
        assert not missing, f"missing {missing}"

    return run


def chart_crds():
    files = sorted(glob.glob(os.path.join(CHART, "crds", "*.yaml")))
    assert len(files) == 4, files
    for f in files:
        validate_k8s(yaml.safe_load(open(f)), f)


def children():
    files = sorted(glob.glob(os.path.join(ROOT, "target", "tmp", "rendered-children", "*.yaml")))
    assert files, "no rendered children: run the operator tests first"
    n = 0
    for f in files:
        for doc in yaml.load_all(open(f), Loader=KubeLoader):
            if doc:
                validate_k8s(doc, f)
                n += 1
    print(f"      {n} objects from {len(files)} files")


def strict(schema):
    """Structural schemas prune unknown fields; reject them instead, to catch typos."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def crd_schemas():
    out = {}
    for f in glob.glob(os.path.join(ROOT, "crds", "*.yaml")):
        crd = yaml.safe_load(open(f))
        kind = crd["spec"]["names"]["kind"]
        version = crd["spec"]["versions"][0]
        schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        # metadata is validated by the API server, not the CRD schema.
        schema["properties"]["metadata"] = {"type": "object"}
        schema["properties"]["apiVersion"] = {"type": "string"}
        schema["properties"]["kind"] = {"type": "string"}
        out[(crd["spec"]["group"] + "/" + version["name"], kind)] = schema
    return out


def examples():
    schemas = crd_schemas()
    files = sorted(glob.glob(os.path.join(ROOT, "examples", "manifests", "*.yaml")))
    kinds = set()
    for f in files:
        for doc in yaml.load_all(open(f), Loader=KubeLoader):
            if not doc:
                continue
            schema = schemas[(doc["apiVersion"], doc["kind"])]
            jsonschema.validate(doc, schema)
            kinds.add(doc["kind"])
    assert kinds == {"RecModel", "ItemIndex", "Experiment", "RetrainSchedule"}, kinds


def broken_example_is_rejected():
    schemas = crd_schemas()
    doc = yaml.safe_load(open(os.path.join(ROOT, "examples", "manifests", "recmodel.yaml")))
    for mutate in (
        lambda d: d["spec"]["canary"].__setitem__("weight", 150),
        lambda d: d["spec"].__setitem__("replicaCount", 3),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        try:
            jsonschema.validate(bad, schemas[(bad["apiVersion"], bad["kind"])])
        except jsonschema.ValidationError:
            continue
        raise AssertionError("a broken RecModel passed validation")


check("helm lint --strict", lint)
check(
    "chart renders and validates against Kubernetes 1.37 (default values)",
    rendered_chart({}, ["Deployment", "ClusterRole", "ClusterRoleBinding", "Role", "Service"]),
)
check(
    "chart renders and validates with the ServiceMonitor",
    rendered_chart({"metrics": {"serviceMonitor": {"enabled": True}}}, ["ServiceMonitor"]),
)
check(
    "chart renders with one watched namespace (Role and RoleBinding, no ClusterRole)",
    rendered_chart({"watchNamespace": "shop"}, ["Role", "RoleBinding", "Deployment"]),
)
check("chart CRDs validate as CustomResourceDefinitions", chart_crds)
check("operator-built children validate against Kubernetes 1.37", children)
check("example manifests validate against the generated CRD schemas", examples)
check("a broken example is rejected", broken_example_is_rejected)

if failures:
    print(f"{len(failures)} Kubernetes check(s) failed")
    sys.exit(1)
