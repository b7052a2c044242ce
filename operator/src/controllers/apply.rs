//! Server-side apply of children and status, and deletion of children that should no longer
//! exist. Children are touched only when they carry the parent's controller owner reference:
//! an object of the same name made by someone else is a collision, reported and left alone.

use crate::builders::FIELD_MANAGER;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

fn params() -> PatchParams {
    // force: the operator owns these fields; another manager's stale claim must not block it.
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Whether `obj` names `owner_uid` as its controller.
pub fn is_controlled_by<K: Resource>(obj: &K, owner_uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

/// An object with a child's name that this parent does not own.
#[derive(Debug, Clone, PartialEq)]
pub struct Collision {
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} exists and is not owned by this resource",
            self.kind, self.name
        )
    }
}

/// What an ownership-checked write did.
#[derive(Debug)]
pub enum Owned<K> {
    /// Applied (or, for a delete, gone); the object as the server returned it.
    Done(Option<K>),
    Collision(Collision),
}

fn collision<K: Resource<DynamicType = ()>>(name: &str) -> Collision {
    Collision {
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
    }
}

/// The owner uid children must name; a parent without one (never stored) owns nothing.
fn owner_uid<K: Resource>(owner: &K) -> String {
    owner.meta().uid.clone().unwrap_or_default()
}

/// Applies `obj` (which carries its own namespace) with server-side apply.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &params(), &Patch::Apply(obj)).await
}

/// Applies `obj` unless an object of its name exists without `owner` as its controller.
pub async fn apply_owned<K, O>(api: &Api<K>, owner: &O, obj: &K) -> Result<Owned<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    O: Resource,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    if let Some(existing) = api.get_opt(&name).await? {
        if !is_controlled_by(&existing, &owner_uid(owner)) {
            return Ok(Owned::Collision(collision::<K>(&name)));
        }
    }
    Ok(Owned::Done(Some(apply(api, obj).await?)))
}

/// Deletes `name` if it exists and `owner` controls it; the delete carries the uid seen, so
/// an object recreated by someone else in between is never removed.
pub async fn delete_owned<K, O>(
    api: &Api<K>,
    owner: &O,
    name: &str,
) -> Result<Owned<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    O: Resource,
{
    let Some(existing) = api.get_opt(name).await? else {
        return Ok(Owned::Done(None));
    };
    if !is_controlled_by(&existing, &owner_uid(owner)) {
        return Ok(Owned::Collision(collision::<K>(name)));
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Owned::Done(None)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Owned::Done(None)),
        Err(e) => Err(e),
    }
}

/// Applies the status subresource of `name` of kind `K`.
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    status: serde_json::Value,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &params(), &Patch::Apply(&body))
        .await
}

/// Collects the collisions of a reconcile while it applies everything else.
#[derive(Debug, Default)]
pub struct Collisions(pub Vec<Collision>);

impl Collisions {
    /// The object of a write, or `None` (recording the collision) when it was not ours.
    pub fn take<K>(&mut self, result: Owned<K>) -> Option<K> {
        match result {
            Owned::Done(obj) => obj,
            Owned::Collision(c) => {
                self.0.push(c);
                None
            }
        }
    }

    pub fn message(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}
