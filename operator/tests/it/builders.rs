//! The pure builders: spec in, objects out. Every object built here is also written to
//! `target/tmp/rendered-children/` so `scripts/k8s-checks.py` can validate it against the
//! Kubernetes 1.37 schemas.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use recsys_operator::builders::serving::{self, Arm};
use recsys_operator::builders::{index_job, router, scaling};
use recsys_operator::crd::v1alpha1::{ItemIndex, RecModel};
use serde::Serialize;

fn rec_model(yaml: &str) -> RecModel {
    let mut rm: RecModel = serde_yaml::from_str(yaml).unwrap();
    rm.meta_mut().uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
    rm
}

const STABLE_ONLY: &str = r#"
apiVersion: recsys.dev/v1alpha1
kind: RecModel
metadata: {name: movies, namespace: recsys}
spec:
  modelUri: s3://artifacts/movies/v1
  itemIndexRef: movies-ivf
  replicas: 3
"#;

const CANARY_GPU_AUTOSCALED: &str = r#"
apiVersion: recsys.dev/v1alpha1
kind: RecModel
metadata: {name: movies, namespace: recsys}
spec:
  modelUri: s3://artifacts/movies/v1
  itemIndexRef: movies-ivf
  storageSecretName: artifact-store
  autoscaling: {minReplicas: 4, maxReplicas: 20, targetCpuPercent: 60}
  resources: {cpu: "2", memory: 2Gi, gpus: 1}
  placement:
    nodeSelector: {accelerator: nvidia-h100}
  canary: {modelUri: s3://artifacts/movies/v2, weight: 10}
"#;

fn write_rendered<T: Serialize>(name: &str, objects: &[T]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rendered-children");
    std::fs::create_dir_all(&dir).unwrap();
    let docs: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    std::fs::write(dir.join(format!("{name}.yaml")), docs.join("---\n")).unwrap();
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.template.spec.as_ref().unwrap()
}

fn container(d: &Deployment) -> &Container {
    &pod(d).containers[0]
}

fn assert_restricted(pod: &PodSpec) {
    let p = pod.security_context.as_ref().unwrap();
    assert_eq!(p.run_as_non_root, Some(true));
    assert_eq!(p.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(pod.automount_service_account_token, Some(false));
    for c in &pod.containers {
        let s = c.security_context.as_ref().unwrap();
        assert_eq!(s.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(s.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            s.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        // A read-only root needs somewhere to write.
        assert!(c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/tmp"));
    }
}

#[test]
fn a_stable_only_model_gets_one_arm_a_router_and_restricted_pods() {
    let rm = rec_model(STABLE_ONLY);
    let arms = serving::arms(&rm);
    assert_eq!(arms, vec![(Arm::Stable, "s3://artifacts/movies/v1")]);
    let d = serving::deployment(&rm, Arm::Stable, arms[0].1, "s3://idx");
    assert_eq!(d.metadata.name.as_deref(), Some("movies-stable"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("recsys"));
    assert_eq!(d.spec.replicas, Some(3));
    // Arms run the lean server (no libtorch), with `recsys serve`'s flags.
    assert_eq!(
        container(&d).command.as_deref(),
        Some(&["/usr/local/bin/recsys-serve".to_owned()][..])
    );
    let args = container(&d).args.clone().unwrap();
    assert_eq!(args[0], "--model-dir");
    assert!(args
        .windows(2)
        .any(|w| w == ["--model-dir", "s3://artifacts/movies/v1"]));
    assert!(args.windows(2).any(|w| w == ["--variant", "stable"]));
    assert_restricted(pod(&d));
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("RecModel", Some(true))
    );
    assert!(container(&d).resources.as_ref().unwrap().limits.is_none());
    assert!(pod(&d).tolerations.is_none());

    let table = router::routing_table(&rm, &router::requested(&rm)).unwrap();
    assert_eq!(table.arms.len(), 1);
    assert_eq!(table.arms[0].endpoint, "http://movies-stable:50051");
    assert_eq!(
        (table.arms[0].bucket_start, table.arms[0].bucket_end),
        (0, 10_000)
    );
    let svc = router::service(&rm);
    assert_eq!(svc.metadata.name.as_deref(), Some("movies"));
    assert!(scaling::hpa(&rm).is_none());
    let pdbs = scaling::pdbs(&rm);
    assert_eq!(pdbs.len(), 2, "stable (3 replicas) and router");
    let router_deployment = router::deployment(&rm);
    assert_restricted(pod(&router_deployment));

    write_rendered("stable-deployments", &[d, router_deployment]);
    write_rendered(
        "stable-services",
        &[serving::service(&rm, Arm::Stable), svc],
    );
    write_rendered(
        "stable-configmap",
        &[router::configmap(&rm, &router::requested(&rm)).unwrap()],
    );
    write_rendered("stable-pdbs", &pdbs);
}

#[test]
fn canary_gpu_and_autoscaling_settings_reach_the_pods() {
    let rm = rec_model(CANARY_GPU_AUTOSCALED);
    let arms = serving::arms(&rm);
    assert_eq!(arms.len(), 2);
    let stable = serving::deployment(&rm, Arm::Stable, arms[0].1, "s3://idx");
    let canary = serving::deployment(&rm, Arm::Canary, arms[1].1, "s3://idx");
    // Under an HPA the operator leaves replicas alone; the canary gets 10 % of min 4, i.e. 1.
    assert_eq!(stable.spec.replicas, None);
    assert_eq!(canary.spec.replicas, Some(1));
    assert_eq!(canary.metadata.name.as_deref(), Some("movies-canary"));
    assert_eq!(
        canary.metadata.labels.as_ref().unwrap()["recsys.dev/model-version"],
        "v2"
    );
    for d in [&stable, &canary] {
        let limits = container(d).resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
        assert_eq!(limits["memory"].0, "2Gi");
        let tolerations = pod(d).tolerations.clone().unwrap();
        assert!(tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("nvidia.com/gpu")));
        assert_eq!(
            pod(d).node_selector.as_ref().unwrap()["accelerator"],
            "nvidia-h100"
        );
        let env_from = container(d).env_from.clone().unwrap();
        assert_eq!(
            env_from[0].secret_ref.as_ref().unwrap().name,
            "artifact-store"
        );
        assert_restricted(pod(d));
    }
    // Stable and canary select disjoint pods.
    assert_ne!(
        serving::selector(&rm, Arm::Stable),
        serving::selector(&rm, Arm::Canary)
    );

    let table = router::routing_table(&rm, &router::requested(&rm)).unwrap();
    let ranges: Vec<(String, u32, u32)> = table
        .arms
        .iter()
        .map(|a| (a.name.clone(), a.bucket_start, a.bucket_end))
        .collect();
    assert_eq!(
        ranges,
        vec![("stable".into(), 0, 9000), ("canary".into(), 9000, 10_000)]
    );
    assert_eq!(table.salt, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");

    let hpa = scaling::hpa(&rm).unwrap();
    assert_eq!(hpa.spec.min_replicas, Some(4));
    assert_eq!(hpa.spec.max_replicas, 20);
    assert_eq!(hpa.spec.scale_target_ref.name, "movies-stable");

    write_rendered("canary-deployments", &[stable, canary]);
    write_rendered("canary-hpa", &[hpa]);
    write_rendered(
        "canary-services",
        &[
            serving::service(&rm, Arm::Stable),
            serving::service(&rm, Arm::Canary),
        ],
    );
    write_rendered(
        "canary-configmap",
        &[router::configmap(&rm, &router::requested(&rm)).unwrap()],
    );
}

#[test]
fn a_canary_weight_change_moves_only_the_bucket_boundary() {
    let mut rm = rec_model(CANARY_GPU_AUTOSCALED);
    let before = router::routing_table(&rm, &router::requested(&rm)).unwrap();
    rm.spec.canary.as_mut().unwrap().weight = 50;
    let after = router::routing_table(&rm, &router::requested(&rm)).unwrap();
    assert_eq!(after.arms[1].bucket_start, 5000);
    assert_eq!(before.salt, after.salt, "users keep their buckets");
    // Users already on the canary stay there when its weight grows.
    for u in 0..2000 {
        let id = format!("u{u}");
        if before.assign(&id).name == "canary" {
            assert_eq!(after.assign(&id).name, "canary");
        }
    }
}

#[test]
fn a_single_replica_stable_arm_gets_no_pdb_that_would_block_drains() {
    let mut rm = rec_model(STABLE_ONLY);
    rm.spec.replicas = 1;
    let pdbs = scaling::pdbs(&rm);
    assert_eq!(pdbs.len(), 1);
    assert_eq!(pdbs[0].metadata.name.as_deref(), Some("movies-router"));
}

const INDEX: &str = r#"
apiVersion: recsys.dev/v1alpha1
kind: ItemIndex
metadata: {name: movies-ivf, namespace: recsys, uid: 7c9e6679-7425-40de-944b-e07fc1f90ae7}
spec:
  modelUri: s3://artifacts/movies/v1
  type: IVF
  nlist: 4096
  nprobe: 128
  recallTarget: 0.95
  recallK: 500
  resources: {cpu: "2", memory: 8Gi, gpus: 1}
"#;

#[test]
fn the_index_job_is_named_by_its_spec_and_runs_restricted() {
    let ii: ItemIndex = serde_yaml::from_str(INDEX).unwrap();
    let job = index_job::job(&ii, "ghcr.io/recsys/dataplane:0.1.0");
    let name = job.metadata.name.clone().unwrap();
    assert!(name.starts_with("movies-ivf-build-"), "{name}");
    assert_eq!(index_job::job_name(&ii), name, "same spec, same Job");
    let mut changed = ii.clone();
    changed.spec.nprobe = Some(256);
    assert_ne!(index_job::job_name(&changed), name, "new spec, new Job");

    let spec = job.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_restricted(pod);
    let args = pod.containers[0].args.clone().unwrap();
    for pair in [["--type", "ivf"], ["--nlist", "4096"], ["--nprobe", "128"]] {
        assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
    }
    let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "1");
    write_rendered("index-job", &[job]);
}

#[test]
fn build_results_are_parsed_and_nonsense_is_refused() {
    let ok = index_job::parse_result(
        "loading…\n{\"items\":1000000,\"recall\":0.962,\"artifactUri\":\"s3://a/i\",\"buildSeconds\":41.9}\n",
    )
    .unwrap();
    assert_eq!(ok.items, 1_000_000);
    assert!((ok.recall - 0.962).abs() < 1e-12);
    assert!(index_job::parse_result("OOMKilled").is_err());
    assert!(index_job::parse_result(
        "{\"items\":1,\"recall\":1.5,\"artifactUri\":\"x\",\"buildSeconds\":1}"
    )
    .is_err());
}

#[test]
fn feedback_and_redis_reach_the_pods_by_reference_only() {
    let rm = rec_model(
        r#"
apiVersion: recsys.dev/v1alpha1
kind: RecModel
metadata: {name: movies, namespace: recsys}
spec:
  modelUri: s3://artifacts/movies/v1
  itemIndexRef: movies-ivf
  storageSecretName: artifact-store
  feedback: {uri: s3://events/movies/feedback, flushSeconds: 30}
  redis:
    urlSecretRef: {name: redis, key: url}
    passwordSecretRef: {name: redis, key: password}
"#,
    );
    let d = serving::deployment(&rm, Arm::Stable, "s3://artifacts/movies/v1", "s3://idx");
    let c = container(&d);
    let args = c.args.clone().unwrap();
    for pair in [
        ["--feedback-sink", "s3://events/movies/feedback"],
        ["--feedback-wal-dir", serving::FEEDBACK_WAL_DIR],
        ["--feedback-flush-secs", "30"],
        ["--cache-dir", "/var/cache/recsys"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
    }
    assert!(
        serving::FEEDBACK_WAL_DIR.starts_with("/var/cache/recsys"),
        "the buffer lives on a volume, not the read-only root"
    );
    let env = c.env.clone().unwrap();
    let secret = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.secret_key_ref.clone())
            .map(|s| (s.name, s.key))
    };
    assert_eq!(
        secret("RECSYS_REDIS_URL"),
        Some(("redis".into(), "url".into()))
    );
    assert_eq!(
        secret("RECSYS_REDIS_PASSWORD"),
        Some(("redis".into(), "password".into()))
    );
    assert!(
        env.iter().all(|e| e.value.is_none()),
        "no literal values: {env:?}"
    );
    assert!(!args.iter().any(|a| a.contains("redis")), "{args:?}");
    write_rendered("feedback-deployment", &[d]);
}

#[test]
fn tls_mounts_the_certificate_probes_over_https_and_dials_arms_by_their_service_names() {
    let rm = rec_model(
        r#"
apiVersion: recsys.dev/v1alpha1
kind: RecModel
metadata: {name: movies, namespace: recsys}
spec:
  modelUri: s3://artifacts/movies/v1
  itemIndexRef: movies-ivf
  canary: {modelUri: s3://artifacts/movies/v2, weight: 10}
  tls: {secretName: movies-tls}
"#,
    );
    let arm = serving::deployment(&rm, Arm::Canary, "s3://artifacts/movies/v2", "s3://idx");
    let router_deployment = router::deployment(&rm);
    for d in [&arm, &router_deployment] {
        let volume = pod(d)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .unwrap();
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("movies-tls"));
        let keys: Vec<&str> = secret
            .items
            .iter()
            .flatten()
            .map(|i| i.key.as_str())
            .collect();
        assert_eq!(keys, ["tls.crt", "tls.key", "ca.crt"]);
        let c = container(d);
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "tls")
            .unwrap();
        assert_eq!(mount.read_only, Some(true));
        assert!(
            mount.sub_path.is_none(),
            "a subPath mount never sees a renewal"
        );
        let args = c.args.clone().unwrap();
        for flag in ["--tls-cert", "--tls-key"] {
            let file = &args[args.iter().position(|a| a == flag).unwrap() + 1];
            assert!(
                file.starts_with(&format!("{}/", mount.mount_path)),
                "{file}"
            );
        }
        // The kubelet's gRPC probe cannot speak TLS: HTTPS GETs of the HTTP port instead.
        let probes = [&c.readiness_probe, &c.liveness_probe, &c.startup_probe];
        for (i, p) in probes.into_iter().flatten().enumerate() {
            assert!(p.grpc.is_none(), "{}: {p:?}", c.name);
            let get = p.http_get.as_ref().unwrap();
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
            assert_eq!(get.port, IntOrString::String("http".into()));
            let want = if i == 1 { "/healthz" } else { "/readyz" };
            assert_eq!(get.path.as_deref(), Some(want), "{}", c.name);
        }
        let annotations = d
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref();
        assert_eq!(
            annotations
                .unwrap()
                .get("prometheus.io/scheme")
                .map(String::as_str),
            Some("https")
        );
        assert_restricted(pod(d));
    }
    let router_args = container(&router_deployment).args.clone().unwrap();
    assert!(router_args.windows(2).any(|w| w
        == [
            "--arm-ca-file".to_owned(),
            "/var/run/secrets/recsys/tls/ca.crt".to_owned()
        ]));
    let table = router::routing_table(&rm, &router::requested(&rm)).unwrap();
    let endpoints: Vec<&str> = table.arms.iter().map(|a| a.endpoint.as_str()).collect();
    assert_eq!(
        endpoints,
        ["https://movies-stable:50051", "https://movies-canary:50051"]
    );
    for svc in [serving::service(&rm, Arm::Canary), router::service(&rm)] {
        let grpc = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(grpc.app_protocol, None, "not h2c under TLS");
    }
    // Without TLS: the gRPC probe, plain-text endpoints marked h2c.
    let plain = rec_model(STABLE_ONLY);
    let d = serving::deployment(&plain, Arm::Stable, "s3://artifacts/movies/v1", "s3://idx");
    assert!(container(&d)
        .readiness_probe
        .as_ref()
        .unwrap()
        .grpc
        .is_some());
    let svc = serving::service(&plain, Arm::Stable);
    assert_eq!(
        svc.spec.unwrap().ports.unwrap()[0].app_protocol.as_deref(),
        Some("kubernetes.io/h2c")
    );
    write_rendered("tls-deployments", &[arm, router_deployment]);
}

/// Every label the selector matches on is on the pods, with the same value.
#[track_caller]
fn assert_selects(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    pod_labels: &std::collections::BTreeMap<String, String>,
) {
    for (k, v) in selector.match_labels.as_ref().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "{k}");
    }
}

#[test]
fn network_policies_admit_only_the_router_to_the_arms_and_the_scraper_to_metrics() {
    use recsys_operator::builders::network;
    let rm = rec_model(STABLE_ONLY);
    let policies = network::policies(&rm, "monitoring");
    let by_name = |n: &str| {
        policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .unwrap()
            .spec
            .clone()
            .unwrap()
    };
    let serving = by_name("movies-serving");
    // It selects exactly the pods the serving Deployments run.
    let d = serving::deployment(&rm, Arm::Stable, "s3://artifacts/movies/v1", "s3://idx");
    let pod_labels = d.spec.template.metadata.unwrap().labels.unwrap();
    assert_selects(serving.pod_selector.as_ref().unwrap(), &pod_labels);
    let rules = serving.ingress.unwrap();
    let grpc = &rules[0];
    assert_eq!(
        grpc.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(50051))
    );
    let from = grpc.from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    let router_pods = router::deployment(&rm)
        .spec
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert_selects(from[0].pod_selector.as_ref().unwrap(), &router_pods);
    assert_eq!(
        from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app.kubernetes.io/component"],
        "router"
    );
    let metrics = &rules[1];
    assert_eq!(
        metrics.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8080))
    );
    let ns = metrics.from.as_ref().unwrap()[0]
        .namespace_selector
        .as_ref()
        .unwrap();
    assert_eq!(
        ns.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "monitoring"
    );
    // The router's gRPC is the public entry; its metrics are the scraper's only.
    let router_rules = by_name("movies-router").ingress.unwrap();
    assert!(router_rules[0].from.is_none());
    assert!(router_rules[1].from.is_some());
    assert_eq!(
        policies.len(),
        2,
        "no Redis policy unless the spec names Redis's pods"
    );
    write_rendered("network-policies", &policies);

    // Redis's pods, named by the spec, admit only this RecModel's arms and router.
    let with_redis = rec_model(&format!(
        "{STABLE_ONLY}  redis:
    urlSecretRef: {{name: redis, key: url}}
    networkPolicy: {{podSelector: {{app.kubernetes.io/name: redis}}}}
"
    ));
    let policies = network::policies(&with_redis, "monitoring");
    let redis = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("movies-redis"))
        .unwrap()
        .spec
        .clone()
        .unwrap();
    assert_eq!(
        redis.pod_selector.unwrap().match_labels.unwrap(),
        std::collections::BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            "redis".to_owned()
        )])
    );
    assert_eq!(
        redis.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let rules = redis.ingress.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(6379))
    );
    let from = rules[0].from.as_ref().unwrap();
    assert_eq!(from.len(), 2);
    assert_selects(from[0].pod_selector.as_ref().unwrap(), &pod_labels);
    assert_selects(from[1].pod_selector.as_ref().unwrap(), &router_pods);
    assert!(
        from.iter().all(|p| p.namespace_selector.is_none()),
        "this namespace only"
    );
    write_rendered("network-policies-redis", &policies);
}

#[test]
fn the_training_job_is_restricted_and_its_experiment_names_the_version() {
    use recsys_operator::builders::training_job::{self, Run, TrainResult};
    use recsys_operator::crd::v1alpha1::RetrainSchedule;
    let mut rts: RetrainSchedule = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/manifests/retrainschedule.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    rts.metadata.uid = Some("rts-uid".into());
    let run = Run {
        at: "2026-05-01T00:00:00Z".parse().unwrap(),
        trigger: "schedule",
    };
    let job = training_job::job(
        &rts,
        &run,
        Some("s3://recsys-artifacts/movies/v1"),
        Some("s3://recsys-events/movies/feedback"),
        "img",
    );
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_restricted(pod);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/recsys/dataplane:0.1.0"));
    let args = c.args.clone().unwrap();
    let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("--version"), "v20260501T0000Z");
    assert_eq!(after("--compare-to"), "s3://recsys-artifacts/movies/v1");
    assert_eq!(after("--window-days"), "90");
    assert_eq!(after("--max-epochs"), "20");
    assert_eq!(after("--feedback"), "s3://recsys-events/movies/feedback");
    assert_eq!(run.job_name(&rts), "movies-nightly-20260501t0000z");
    // A long name is cut so the Job's pods still get valid names.
    let mut long = rts.clone();
    long.metadata.name = Some("x".repeat(70));
    assert!(run.job_name(&long).len() <= 57);
    let result = TrainResult {
        version: run.version(),
        model_uri: "s3://recsys-artifacts/movies/v20260501T0000Z".into(),
        ndcg_at10: 0.3,
        ranker_auc: Some(0.8),
        live_version: Some("v1".into()),
        live_ndcg_at10: Some(0.29),
        versus_live: None,
        common_users: 0,
        live_saw_test_window: None,
        rows: 1,
    };
    let exp = training_job::experiment_for(&rts, &result);
    assert_eq!(exp.spec.treatment.model_uri, result.model_uri);
    assert_eq!(exp.spec.traffic_percent, 10);
    write_rendered("training", &[job]);
}
