//! Where serving and the jobs get model versions and indexes: a local directory as it is, or
//! object storage (`s3://`, `file://`) copied into a local cache and verified whole before
//! anything uses it. Copies are content-addressed (by their manifest's digest), so a restart
//! reuses a verified copy and a changed upload is never confused with the old one.

use super::index_manifest::{self, INDEX_MANIFEST};
use super::{is_plain_name, Manifest, MANIFEST};
use anyhow::{bail, Context};
use recsys_data::remote;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The file in a model root that names the version to serve.
pub const CURRENT_FILE: &str = "CURRENT";

/// A version location and whether it came from a root's `CURRENT` (then hot reload watches
/// that root).
pub fn resolve(location: &str) -> anyhow::Result<(String, bool)> {
    if !remote::is_remote(location) {
        let dir = Path::new(location);
        if dir.join(MANIFEST).exists() {
            return Ok((location.to_owned(), false));
        }
        let current = std::fs::read_to_string(dir.join(CURRENT_FILE)).map_err(|e| {
            anyhow::anyhow!(
                "{location}: neither a model version (no {MANIFEST}) nor a model root (no {CURRENT_FILE}): {e}"
            )
        })?;
        let name = current_name(location, &current)?;
        return Ok((dir.join(name).display().to_string(), true));
    }
    if remote::get_bytes(&remote::join(location, MANIFEST))?.is_some() {
        return Ok((location.to_owned(), false));
    }
    match remote::get_bytes(&remote::join(location, CURRENT_FILE))? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let name = current_name(location, &text)?;
            Ok((remote::join(location, name), true))
        }
        None => bail!(
            "{location}: neither a model version (no {MANIFEST}) nor a model root (no {CURRENT_FILE})"
        ),
    }
}

/// The version name in a `CURRENT` file: one plain directory name.
fn current_name<'a>(root: &str, text: &'a str) -> anyhow::Result<&'a str> {
    let name = text.trim();
    if !is_plain_name(name) {
        bail!("{root}/{CURRENT_FILE} must name one version directory, not {name:?}");
    }
    Ok(name)
}

fn digest16(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Copies the files a manifest lists into `cache/<kind>/<digest>` unless a verified copy is
/// there already; `verify` must accept the copy before it is moved into place.
fn fetch_dir(
    location: &str,
    cache: &Path,
    kind: &str,
    manifest_name: &str,
    files_of: impl Fn(&[u8]) -> anyhow::Result<Vec<String>>,
    verify: impl Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let manifest = remote::get_bytes(&remote::join(location, manifest_name))?
        .with_context(|| format!("{location}: no {manifest_name}"))?;
    let target = cache.join(kind).join(digest16(&manifest));
    if target.join(manifest_name).exists() && verify(&target).is_ok() {
        tracing::info!(%location, copy = %target.display(), "verified local copy reused");
        return Ok(target);
    }
    let partial = cache.join(kind).join(format!(
        ".partial-{}-{}",
        digest16(&manifest),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let copied = (|| {
        let files = files_of(&manifest)?;
        for (i, file) in files.iter().enumerate() {
            if !is_plain_name(file) {
                bail!("{location}: {manifest_name} lists {file:?}, which leaves the directory");
            }
            tracing::info!(%location, file, n = i + 1, of = files.len(), "downloading");
            remote::download_to(&remote::join(location, file), &partial.join(file))?;
        }
        std::fs::write(partial.join(manifest_name), &manifest)?;
        verify(&partial).with_context(|| format!("refusing the copy of {location}"))
    })();
    if let Err(e) = copied {
        // A refused or half-downloaded copy must not fill the pod's scratch volume.
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving {} into place", target.display()))?;
    Ok(target)
}

/// A local, verified directory of the model version at `location` (a version, not a root).
pub fn fetch_version(location: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    if !remote::is_remote(location) {
        return Ok(PathBuf::from(location));
    }
    fetch_dir(
        location,
        cache,
        "models",
        MANIFEST,
        |bytes| {
            let m: Manifest = serde_json::from_slice(bytes)
                .with_context(|| format!("{location}/{MANIFEST} is not a manifest"))?;
            Ok(m.files.into_keys().collect())
        },
        |dir| super::verify(dir, None).map(drop).map_err(Into::into),
    )
}

/// A local directory of the index at `location`, its files verified against its manifest.
/// (Whether it belongs to the served version is checked when the version loads.)
pub fn fetch_index(location: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    if !remote::is_remote(location) {
        return Ok(PathBuf::from(location));
    }
    fetch_dir(
        location,
        cache,
        "indexes",
        INDEX_MANIFEST,
        |bytes| {
            let m: index_manifest::IndexManifest = serde_json::from_slice(bytes)
                .with_context(|| format!("{location}/{INDEX_MANIFEST} is not an index manifest"))?;
            Ok(m.files.into_keys().collect())
        },
        |dir| {
            let m = index_manifest::read(dir)?;
            super::verify_checksums(dir, &m.files).map_err(Into::into)
        },
    )
}

/// Removes cached copies of `kind` other than `keep` (after a hot swap: the old version is
/// no longer needed, and the pod's scratch volume is bounded).
pub fn prune(cache: &Path, kind: &str, keep: &[&Path]) {
    let Ok(entries) = std::fs::read_dir(cache.join(kind)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !keep.iter().any(|k| *k == path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
