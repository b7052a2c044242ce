//! An in-process fake of the Kubernetes API server that fails where the real one fails, for
//! the behaviour the controllers depend on:
//!
//! - every write assigns a new `metadata.resourceVersion`; create assigns `uid`,
//!   `creationTimestamp` and `generation: 1`;
//! - `metadata.generation` moves only when `spec` changes, never on a status write;
//! - `status` is written only through the `/status` subresource, `spec` only through the
//!   object itself (a status in a spec write, or a spec in a status write, is ignored);
//! - a write that carries a stale `resourceVersion` (replace, apply) and a create of an
//!   existing name answer 409; a delete whose preconditions (uid, resourceVersion) do not
//!   match answers 409;
//! - lists honour `labelSelector` (equality, inequality and existence terms);
//! - server-side apply keeps what the server owns (uid, generation, status, and labels other
//!   managers set) and replaces what the applier sent;
//! - deleting an object deletes, transitively, every object whose owner references name its
//!   uid (the garbage collector's background cascade).
//!
//! Every request is recorded so tests can assert what a reconcile did.

use http::{HeaderMap, Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
    pub status: u16,
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
    /// The last resourceVersion handed out (cluster-wide, as etcd's revision).
    revision: u64,
    /// Answer the next write to this path with 409, as a racing writer would cause.
    pub conflict_next_write: Option<String>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

fn status_body(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(path: &str) -> (StatusCode, Value) {
    status_body(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{path} not found"),
    )
}

fn conflict(message: String) -> (StatusCode, Value) {
    status_body(StatusCode::CONFLICT, "Conflict", message)
}

/// Where a request path points.
#[derive(Debug, PartialEq)]
enum Target {
    /// A collection (list, create), e.g. `/apis/apps/v1/namespaces/x/deployments`.
    Collection(String),
    /// One object, optionally one of its subresources (`status`).
    Object {
        key: String,
        subresource: Option<String>,
    },
}

/// Splits a path into collection / object / subresource. Namespaced paths have the resource
/// plural right after `namespaces/<ns>`; cluster-scoped ones right after the group version.
fn target(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Index of the resource plural.
    let base = if parts.first() == Some(&"api") { 2 } else { 3 };
    let plural = if parts.get(base) == Some(&"namespaces") && parts.len() > base + 2 {
        base + 2
    } else {
        base
    };
    let prefix = |n: usize| format!("/{}", parts[..n].join("/"));
    match parts.len() - plural {
        1 => Target::Collection(prefix(plural + 1)),
        2 => Target::Object {
            key: prefix(plural + 2),
            subresource: None,
        },
        _ => Target::Object {
            key: prefix(plural + 2),
            subresource: Some(parts[plural + 2..].join("/")),
        },
    }
}

/// One term of a label selector.
fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        if let Some((k, v)) = term.split_once("!=") {
            label(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            label(k) == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            label(k).is_none()
        } else {
            label(term).is_some()
        }
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Deep-merges `patch` into `base` (JSON merge patch: objects merge, null deletes, everything
/// else replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl State {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// Fills in what the server assigns at creation.
    fn created(&mut self, mut object: Value, key: &str) -> Value {
        let revision = self.next_revision();
        let meta = &mut object["metadata"];
        if meta["name"].is_null() {
            meta["name"] = json!(key.rsplit('/').next().unwrap_or("unnamed"));
        }
        if meta["uid"].is_null() {
            meta["uid"] = json!(format!("uid-{revision}"));
        }
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(now());
        }
        if meta["generation"].is_null() {
            meta["generation"] = json!(1);
        }
        meta["resourceVersion"] = json!(revision);
        object
    }

    /// A spec write's result: `incoming` with the server's metadata and status kept, the
    /// generation bumped when the spec changed.
    fn updated(&mut self, old: &Value, mut incoming: Value) -> Value {
        if let Some(o) = incoming.as_object_mut() {
            o.remove("status");
        }
        let old_meta = &old["metadata"];
        let spec_changed = old.get("spec") != incoming.get("spec");
        let revision = self.next_revision();
        let meta = &mut incoming["metadata"];
        for server_owned in ["uid", "creationTimestamp", "deletionTimestamp"] {
            if !old_meta[server_owned].is_null() {
                meta[server_owned] = old_meta[server_owned].clone();
            }
        }
        let generation = old_meta["generation"].as_i64().unwrap_or(1);
        meta["generation"] = json!(if spec_changed {
            generation + 1
        } else {
            generation
        });
        meta["resourceVersion"] = json!(revision);
        if let Some(status) = old.get("status") {
            incoming["status"] = status.clone();
        }
        incoming
    }

    /// 409 when `body` names a resourceVersion other than the stored one.
    fn precondition(
        &self,
        stored: &Value,
        body: &Value,
        key: &str,
    ) -> Result<(), (StatusCode, Value)> {
        let wanted = &body["metadata"]["resourceVersion"];
        if !wanted.is_null() && *wanted != stored["metadata"]["resourceVersion"] {
            return Err(conflict(format!(
                "Operation cannot be fulfilled on {key}: the object has been modified; please apply your changes to the latest version and try again"
            )));
        }
        Ok(())
    }

    /// Removes `key` and, transitively, everything it owns.
    fn delete_cascading(&mut self, key: &str) {
        let Some(object) = self.objects.remove(key) else {
            return;
        };
        let Some(uid) = object["metadata"]["uid"].as_str() else {
            return;
        };
        let owned: Vec<String> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            self.delete_cascading(&k);
        }
    }
}

impl FakeApi {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = http_body_util::BodyExt::collect(body)
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Option<Value> = serde_json::from_slice(&bytes).ok();
                let query = parts.uri.query().unwrap_or("").to_owned();
                let (status, value) = fake.answer(
                    &parts.method,
                    parts.uri.path(),
                    &query,
                    &parts.headers,
                    body.clone(),
                );
                fake.state.lock().unwrap().requests.push(Recorded {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    query,
                    body,
                    status: status.as_u16(),
                });
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// Stores `object` at `path` as a create would (uid, resourceVersion, generation filled
    /// in where absent; status kept, as a test seeds whatever state it needs).
    pub fn put(&self, path: &str, object: Value) {
        let mut state = self.state.lock().unwrap();
        let mut object = state.created(object, path);
        if let Some(old) = state.objects.get(path) {
            // Re-seeding an existing object keeps its identity.
            object["metadata"]["uid"] = old["metadata"]["uid"].clone();
        }
        state.objects.insert(path.into(), object);
    }

    /// Writes `status` as the object's own controller would (a Deployment's rollout, a Job's
    /// completion): a new resourceVersion, the generation untouched.
    pub fn set_status(&self, path: &str, status: Value) {
        let mut state = self.state.lock().unwrap();
        let revision = state.next_revision();
        let object = state
            .objects
            .get_mut(path)
            .unwrap_or_else(|| panic!("{path} does not exist"));
        object["status"] = status;
        object["metadata"]["resourceVersion"] = json!(revision);
    }

    /// Deletes `path` as `kubectl delete` (or a Job's TTL controller) would, cascading.
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().delete_cascading(path);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// The next write to `path` answers 409, as if another writer got there first.
    pub fn conflict_next_write(&self, path: &str) {
        self.state.lock().unwrap().conflict_next_write = Some(path.into());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Paths written by server-side apply (PATCH), in order.
    pub fn applied(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::PATCH && !r.path.contains("/events"))
            .map(|r| r.path)
            .collect()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::DELETE)
            .map(|r| r.path)
            .collect()
    }

    /// Bodies of the Events published.
    pub fn events(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.path.ends_with("/events"))
            .filter_map(|r| r.body)
            .collect()
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut state = self.state.lock().unwrap();
        let target = target(path);
        if *method != Method::GET {
            let key = match &target {
                Target::Collection(k) | Target::Object { key: k, .. } => k,
            };
            if state.conflict_next_write.as_deref() == Some(key.as_str()) {
                state.conflict_next_write = None;
                return conflict(format!("{key}: modified by another writer"));
            }
        }
        match (method.clone(), target) {
            (Method::GET, Target::Collection(prefix)) => {
                let selector = query_param(query, "labelSelector").unwrap_or_default();
                let below = format!("{prefix}/");
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&below) && !k[below.len()..].contains('/'))
                    .filter(|(_, v)| selector_matches(&selector, &v["metadata"]["labels"]))
                    .map(|(_, v)| v.clone())
                    .collect();
                let revision = state.revision.to_string();
                (
                    StatusCode::OK,
                    json!({"kind": "List", "apiVersion": "v1",
                           "metadata": {"resourceVersion": revision}, "items": items}),
                )
            }
            (Method::GET, Target::Object { key, .. }) => match state.objects.get(&key) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(path),
            },
            (Method::POST, Target::Collection(prefix)) => {
                let mut object = body.unwrap_or(Value::Null);
                let name = match object["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => {
                        let stem = object["metadata"]["generateName"]
                            .as_str()
                            .unwrap_or("generated-")
                            .to_owned();
                        let n = format!("{stem}{}", state.revision + 1);
                        object["metadata"]["name"] = json!(n);
                        n
                    }
                };
                let key = format!("{prefix}/{name}");
                if state.objects.contains_key(&key) {
                    return status_body(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{key} already exists"),
                    );
                }
                if let Some(o) = object.as_object_mut() {
                    o.remove("status");
                }
                let object = state.created(object, &key);
                state.objects.insert(key, object.clone());
                (StatusCode::CREATED, object)
            }
            (Method::PUT, Target::Object { key, subresource }) => {
                let incoming = body.unwrap_or(Value::Null);
                let Some(stored) = state.objects.get(&key).cloned() else {
                    return not_found(path);
                };
                if let Err(e) = state.precondition(&stored, &incoming, &key) {
                    return e;
                }
                let object = match subresource.as_deref() {
                    Some("status") => {
                        let mut object = stored;
                        object["status"] = incoming["status"].clone();
                        object["metadata"]["resourceVersion"] = json!(state.next_revision());
                        object
                    }
                    Some(other) => return not_found(&format!("{path} ({other})")),
                    None => state.updated(&stored, incoming),
                };
                state.objects.insert(key, object.clone());
                (StatusCode::OK, object)
            }
            (Method::PATCH, Target::Object { key, subresource }) => {
                let patch = body.unwrap_or(Value::Null);
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let apply = content_type.starts_with("application/apply-patch");
                let merge_patch = content_type.starts_with("application/merge-patch")
                    || content_type.starts_with("application/strategic-merge-patch");
                if !apply && !merge_patch {
                    return status_body(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the fake does not speak {content_type:?}"),
                    );
                }
                if apply && query_param(query, "fieldManager").is_none() {
                    return status_body(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "PATCH with apply requires a fieldManager".into(),
                    );
                }
                let stored = state.objects.get(&key).cloned();
                if let Some(stored) = &stored {
                    if let Err(e) = state.precondition(stored, &patch, &key) {
                        return e;
                    }
                }
                let object = match (subresource.as_deref(), stored) {
                    (Some("status"), None) => return not_found(path),
                    (Some("status"), Some(mut object)) => {
                        if apply {
                            object["status"] = patch["status"].clone();
                        } else {
                            merge(&mut object["status"], &patch["status"]);
                        }
                        object["metadata"]["resourceVersion"] = json!(state.next_revision());
                        object
                    }
                    (Some(other), _) => return not_found(&format!("{path} ({other})")),
                    (None, None) if apply => {
                        let mut object = patch;
                        if let Some(o) = object.as_object_mut() {
                            o.remove("status");
                        }
                        state.created(object, &key)
                    }
                    (None, None) => return not_found(path),
                    (None, Some(stored)) => {
                        let mut incoming = if apply {
                            patch
                        } else {
                            let mut merged = stored.clone();
                            merge(&mut merged, &patch);
                            merged
                        };
                        // Labels and annotations other managers set survive an apply.
                        for map in ["labels", "annotations"] {
                            if let Some(old) = stored["metadata"][map].as_object() {
                                for (k, v) in old {
                                    if incoming["metadata"][map].get(k).is_none() {
                                        incoming["metadata"][map][k] = v.clone();
                                    }
                                }
                            }
                        }
                        state.updated(&stored, incoming)
                    }
                };
                state.objects.insert(key, object.clone());
                (StatusCode::OK, object)
            }
            (Method::DELETE, Target::Object { key, .. }) => {
                let Some(stored) = state.objects.get(&key).cloned() else {
                    return not_found(path);
                };
                let preconditions = body
                    .as_ref()
                    .map(|b| b["preconditions"].clone())
                    .unwrap_or(Value::Null);
                for field in ["uid", "resourceVersion"] {
                    let wanted = &preconditions[field];
                    if !wanted.is_null() && *wanted != stored["metadata"][field] {
                        return conflict(format!(
                            "Precondition failed for {key}: {field} in precondition: {wanted}, {field} in object meta: {}",
                            stored["metadata"][field]
                        ));
                    }
                }
                state.delete_cascading(&key);
                (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": 200}),
                )
            }
            _ => status_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} {path}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_collections_objects_and_subresources() {
        assert_eq!(
            target("/apis/apps/v1/namespaces/x/deployments"),
            Target::Collection("/apis/apps/v1/namespaces/x/deployments".into())
        );
        assert_eq!(
            target("/api/v1/namespaces/x/pods/p"),
            Target::Object {
                key: "/api/v1/namespaces/x/pods/p".into(),
                subresource: None
            }
        );
        assert_eq!(
            target("/apis/recsys.dev/v1alpha1/namespaces/x/recmodels/m/status"),
            Target::Object {
                key: "/apis/recsys.dev/v1alpha1/namespaces/x/recmodels/m".into(),
                subresource: Some("status".into())
            }
        );
        assert_eq!(
            target("/apis/apps/v1/deployments"),
            Target::Collection("/apis/apps/v1/deployments".into())
        );
    }

    #[test]
    fn selectors_match_equality_inequality_and_existence() {
        let labels = json!({"a": "1", "b": "2"});
        assert!(selector_matches("a=1,b==2", &labels));
        assert!(!selector_matches("a=2", &labels));
        assert!(selector_matches("a!=2,b", &labels));
        assert!(!selector_matches("c", &labels));
        assert!(selector_matches("!c", &labels));
        assert!(selector_matches("", &labels));
        assert_eq!(percent_decode("a%3D1%2Cb"), "a=1,b");
    }
}
