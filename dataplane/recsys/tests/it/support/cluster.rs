//! A stand-in for the kubelet and the cluster around it, since no API server runs here: it
//! runs a container the operator's builders produced as a local process of the real `recsys`
//! binary, with exactly its args and env, its Secrets from fixtures, its volumes as temporary
//! directories (mount paths in args rewritten to them), cluster DNS and container ports mapped
//! to loopback ports, and its probes (gRPC, HTTP, HTTPS without verifying the certificate)
//! checked as the kubelet would.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Secrets of the namespace: name → key → value.
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// A running "pod".
pub struct Pod {
    pub name: String,
    pub child: Child,
    /// Container port → loopback address.
    pub ports: BTreeMap<i32, SocketAddr>,
    /// Named container ports (what probes and Services may refer to).
    pub port_names: BTreeMap<String, i32>,
    /// Volume name → directory standing for it.
    pub volumes: BTreeMap<String, PathBuf>,
    pub log: PathBuf,
    /// Where the kubelet would read the termination message.
    pub termination_log: PathBuf,
}

impl Pod {
    pub fn addr(&self, port: i32) -> SocketAddr {
        self.ports[&port]
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as the kubelet starts stopping a pod.
    pub fn sigterm(&self) {
        unsafe_kill(self.child.id(), "TERM");
    }

    /// SIGTERM; waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.child.wait().unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs the first container of `spec` as the kubelet would start it.
///
/// `secrets` supply `envFrom` and `secretKeyRef` values (a missing one fails, as a pod would
/// not start); `files` are written into volumes (volume name → relative path → content, e.g.
/// a ConfigMap); `pod_name` fills `fieldRef: metadata.name`.
pub fn run_pod(
    pod_name: &str,
    spec: &PodSpec,
    secrets: &Secrets,
    files: &BTreeMap<String, Vec<(String, String)>>,
    work: &Path,
) -> Pod {
    let container: &Container = &spec.containers[0];
    let root = work.join(pod_name);
    std::fs::create_dir_all(&root).unwrap();
    // Volumes: every declared one is a fresh directory.
    let mut volumes = BTreeMap::new();
    for v in spec.volumes.iter().flatten() {
        let dir = root.join("volumes").join(&v.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, content) in files.get(&v.name).into_iter().flatten() {
            std::fs::write(dir.join(path), content).unwrap();
        }
        // A Secret volume holds the listed keys (all of them without a list); a missing
        // Secret or key keeps the pod from starting, as the kubelet would.
        if let Some(source) = &v.secret {
            let name = source
                .secret_name
                .as_deref()
                .expect("a Secret volume names its Secret");
            let secret = secrets
                .get(name)
                .unwrap_or_else(|| panic!("{pod_name}: Secret {name} does not exist"));
            let keys: Vec<(String, String)> = match &source.items {
                Some(items) => items
                    .iter()
                    .map(|i| (i.key.clone(), i.path.clone()))
                    .collect(),
                None => secret.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in keys {
                let value = secret
                    .get(&key)
                    .unwrap_or_else(|| panic!("{pod_name}: Secret {name} has no key {key}"));
                std::fs::write(dir.join(path), value).unwrap();
            }
        }
        volumes.insert(v.name.clone(), dir);
    }
    let mut mounts: Vec<(String, PathBuf)> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let dir = volumes
                .get(&m.name)
                .unwrap_or_else(|| panic!("{pod_name}: mount of undeclared volume {}", m.name));
            (m.mount_path.clone(), dir.clone())
        })
        .collect();
    // Longest mount path first, so /var/cache/recsys/x maps through its own mount.
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let termination_log = root.join("termination-log");
    std::fs::write(&termination_log, "").unwrap();
    let ports: BTreeMap<i32, SocketAddr> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.container_port, free_addr()))
        .collect();
    let port_names: BTreeMap<String, i32> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone()?, p.container_port)))
        .collect();
    let rewrite = |arg: &str| -> String {
        if arg == "/dev/termination-log" {
            return termination_log.display().to_string();
        }
        for (port, addr) in &ports {
            if arg == format!("0.0.0.0:{port}") {
                return addr.to_string();
            }
        }
        for (mount, dir) in &mounts {
            if arg == mount {
                return dir.display().to_string();
            }
            if let Some(rest) = arg.strip_prefix(&format!("{mount}/")) {
                return dir.join(rest).display().to_string();
            }
        }
        assert!(
            !arg.starts_with('/'),
            "{pod_name}: argument {arg} is a path outside every mounted volume, which the read-only root filesystem would refuse"
        );
        arg.to_owned()
    };
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| rewrite(a))
        .collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let name = &from.secret_ref.as_ref().expect("envFrom a Secret").name;
        let secret = secrets
            .get(name)
            .unwrap_or_else(|| panic!("{pod_name}: Secret {name} does not exist"));
        env.extend(secret.clone());
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                if let Some(r) = &from.secret_key_ref {
                    secrets
                        .get(&r.name)
                        .and_then(|s| s.get(&r.key))
                        .unwrap_or_else(|| {
                            panic!("{pod_name}: Secret {}/{} does not exist", r.name, r.key)
                        })
                        .clone()
                } else if let Some(f) = &from.field_ref {
                    assert_eq!(
                        f.field_path, "metadata.name",
                        "{pod_name}: unsupported fieldRef"
                    );
                    pod_name.to_owned()
                } else {
                    panic!("{pod_name}: unsupported env source for {}", var.name)
                }
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    // The read-only root filesystem leaves only mounted volumes writable; /tmp is one.
    let tmp = mounts
        .iter()
        .find(|(m, _)| m == "/tmp")
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("{pod_name}: no /tmp volume"));
    let log = root.join("log");
    // The image's entrypoint is `recsys`; serving pods name the lean server instead.
    let binary = match container.command.as_deref() {
        None => std::path::PathBuf::from(env!("CARGO_BIN_EXE_recsys")),
        Some([one]) if one == "/usr/local/bin/recsys-serve" => {
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_recsys-serve"))
        }
        Some(other) => panic!("{pod_name}: the image has no command {other:?}"),
    };
    let child = Command::new(binary)
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", &tmp)
        .env("RUST_LOG", "info")
        .envs(&env)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap();
    Pod {
        name: pod_name.to_owned(),
        child,
        ports,
        port_names,
        volumes,
        log,
        termination_log,
    }
}

/// The kubelet's gRPC probe: `grpc.health.v1.Health/Check` for the empty service.
pub async fn grpc_probe(addr: SocketAddr) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

/// The kubelet's HTTP(S) probe: a GET whose status is 200–399. Over HTTPS it does not verify
/// the certificate (the kubelet does not either).
pub async fn http_probe(addr: SocketAddr, https: bool, path: &str) -> bool {
    if https {
        return super::tls::https_get(addr, super::tls::Trust::Anyone, path)
            .await
            .is_ok_and(|(status, _)| (200..400).contains(&status));
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        addr.ip()
    );
    if s.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text).await;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// One run of `probe` against `pod`, as the kubelet makes it (gRPC or HTTP(S) GET).
pub async fn probe_passes(pod: &Pod, probe: &k8s_openapi::api::core::v1::Probe) -> bool {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    if let Some(grpc) = &probe.grpc {
        return grpc_probe(pod.addr(grpc.port)).await;
    }
    let get = probe
        .http_get
        .as_ref()
        .unwrap_or_else(|| panic!("{}: a probe the stand-in kubelet cannot run", pod.name));
    let port = match &get.port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => *pod
            .port_names
            .get(name)
            .unwrap_or_else(|| panic!("{}: the probe names no container port {name}", pod.name)),
    };
    let https = match get.scheme.as_deref() {
        None | Some("HTTP") => false,
        Some("HTTPS") => true,
        Some(other) => panic!("{}: probe scheme {other} is not HTTP or HTTPS", pod.name),
    };
    http_probe(pod.addr(port), https, get.path.as_deref().unwrap_or("/")).await
}

/// Waits as the kubelet would for a probe: `period × failureThreshold` seconds (at least
/// `floor`), failing if the process exits first.
pub async fn wait_ready(pod: &mut Pod, probe: &k8s_openapi::api::core::v1::Probe, floor: Duration) {
    let budget = Duration::from_secs(
        (probe.period_seconds.unwrap_or(10) * probe.failure_threshold.unwrap_or(3)) as u64,
    )
    .max(floor);
    let deadline = Instant::now() + budget;
    loop {
        if let Some(status) = pod.child.try_wait().unwrap() {
            panic!(
                "{} exited with {status} before its probe passed:\n{}",
                pod.name,
                pod.logs()
            );
        }
        if probe_passes(pod, probe).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: probe did not pass within {budget:?}:\n{}",
            pod.name,
            pod.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An example manifest of `examples/manifests`, as a platform team would apply it.
pub fn example<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/manifests")
        .join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}
