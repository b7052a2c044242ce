//! An in-process fake of the Kubernetes API server, enough for controller tests: it stores
//! objects by path, answers GET/LIST/PATCH (server-side apply)/DELETE/POST, and records every
//! request so tests can assert what a reconcile did.

use http::{Method, Request, Response, StatusCode};
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
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
    )
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
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
                let (status, value) = fake.answer(&parts.method, parts.uri.path(), body.clone());
                fake.state.lock().unwrap().requests.push(Recorded {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or("").to_owned(),
                    body,
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

    pub fn put(&self, path: &str, object: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(path.into(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
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
            .filter(|r| r.method == Method::PATCH)
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

    fn answer(&self, method: &Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut state = self.state.lock().unwrap();
        match *method {
            Method::GET => {
                if let Some(object) = state.objects.get(path) {
                    return (StatusCode::OK, object.clone());
                }
                // A collection: list what lies directly below it.
                let prefix = format!("{path}/");
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                if path.ends_with('s') && !items.is_empty() || path.ends_with("/pods") {
                    return (
                        StatusCode::OK,
                        json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}),
                    );
                }
                not_found(path)
            }
            Method::PATCH => {
                let patch = body.unwrap_or(Value::Null);
                let (key, is_status) = match path.strip_suffix("/status") {
                    Some(base) => (base.to_owned(), true),
                    None => (path.to_owned(), false),
                };
                if is_status && !state.objects.contains_key(&key) {
                    return not_found(path);
                }
                let entry = state.objects.entry(key).or_insert_with(|| json!({}));
                if is_status {
                    entry["status"] = patch["status"].clone();
                } else {
                    // Server-side apply replaces the applied fields; status is the server's.
                    let status = entry.get("status").cloned();
                    *entry = json!({});
                    merge(entry, &patch);
                    if let Some(s) = status {
                        entry["status"] = s;
                    }
                }
                (StatusCode::OK, entry.clone())
            }
            Method::DELETE => match state.objects.remove(path) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
                ),
                None => not_found(path),
            },
            Method::POST => {
                let mut object = body.unwrap_or(Value::Null);
                if object["metadata"]["name"].is_null() {
                    object["metadata"]["name"] = json!("generated");
                }
                (StatusCode::CREATED, object)
            }
            _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
        }
    }
}
