//! Object storage for pipeline inputs and outputs: `s3://bucket/key` (credentials, region and
//! endpoint from the standard `AWS_*` environment variables, as a Kubernetes Secret would
//! provide them) and `file:///absolute/path`. Inputs are streamed to a local scratch file so
//! the readers stay synchronous and memory stays flat; outputs are written locally, then
//! uploaded.

use anyhow::{bail, Context};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether `location` names object storage rather than a local path.
pub fn is_remote(location: &str) -> bool {
    location.contains("://")
}

fn store_for(uri: &str) -> anyhow::Result<(Arc<dyn ObjectStore>, StorePath)> {
    let url = url::Url::parse(uri).with_context(|| format!("{uri}: not a valid URI"))?;
    match url.scheme() {
        "s3" => {
            // The HTTP client's TLS uses the process's default crypto provider, which a
            // library caller may not have installed yet (the binaries install the same one).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let store = AmazonS3Builder::from_env()
                .with_url(uri)
                .build()
                .with_context(|| format!("{uri}: configuring S3 from the AWS_* environment"))?;
            let key = url.path().trim_start_matches('/');
            Ok((Arc::new(store), StorePath::parse(key)?))
        }
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("{uri}: not an absolute file path"))?;
            Ok((
                Arc::new(LocalFileSystem::new()),
                StorePath::from_absolute_path(&path)?,
            ))
        }
        other => {
            bail!("{uri}: object storage scheme `{other}` is not supported (s3:// or file://)")
        }
    }
}

/// Runs `f` on a private single-threaded runtime: callers are synchronous pipeline code that
/// may itself run inside the CLI's runtime, where blocking on it would panic.
fn block_on<T: Send>(
    f: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the object-storage runtime")?
                .block_on(f)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the object-storage thread panicked"))?
    })
}

/// The local path of `location`: itself when local, else a copy streamed into `scratch` (with
/// the object's file name, so its format is still known by extension).
pub fn fetch(location: &str, scratch: &Path) -> anyhow::Result<PathBuf> {
    if !is_remote(location) {
        return Ok(PathBuf::from(location));
    }
    // A prefix (`…/feedback/`): every object under it, as a local directory tree.
    if location.ends_with('/') {
        let local = scratch.join("prefix");
        let n = download_prefix(location.trim_end_matches('/'), &local)?;
        anyhow::ensure!(n > 0, "{location}: no objects under this prefix");
        return Ok(local);
    }
    let (store, key) = store_for(location)?;
    let name = key
        .filename()
        .with_context(|| format!("{location}: names no object"))?
        .to_owned();
    std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let local = scratch.join(name);
    let file =
        std::fs::File::create(&local).with_context(|| format!("creating {}", local.display()))?;
    block_on(async {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut stream = store
            .get(&key)
            .await
            .with_context(|| format!("reading {location}"))?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.with_context(|| format!("reading {location}"))?)?;
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(local)
}

/// Uploads every file under `dir` to `prefix` (an object-storage URI), keeping relative paths.
pub fn upload_dir(dir: &Path, prefix: &str) -> anyhow::Result<usize> {
    let (store, base) = store_for(prefix)?;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    // Manifests last: a reader that sees one sees the files it describes.
    files.sort_by_key(|p| {
        (
            p.file_name().is_some_and(|n| n == "manifest.json"),
            p.clone(),
        )
    });
    block_on(async {
        for file in &files {
            let relative = file.strip_prefix(dir)?;
            let mut key = base.clone();
            for part in relative.iter() {
                key = key.join(part.to_string_lossy().as_ref());
            }
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            store
                .put(&key, PutPayload::from(bytes))
                .await
                .with_context(|| format!("uploading {} to {prefix}", file.display()))?;
        }
        Ok(files.len())
    })
}

/// The `date=…` partitions directly under `prefix` that have a manifest, ascending.
pub fn complete_partitions(prefix: &str) -> anyhow::Result<Vec<String>> {
    let (store, base) = store_for(prefix)?;
    block_on(async {
        let listing = store
            .list_with_delimiter(Some(&base))
            .await
            .with_context(|| format!("listing {prefix}"))?;
        let mut dates = Vec::new();
        for dir in listing.common_prefixes {
            let Some(name) = dir.filename() else { continue };
            if name.starts_with("date=")
                && store.head(&dir.clone().join("manifest.json")).await.is_ok()
            {
                dates.push(name.to_owned());
            }
        }
        dates.sort();
        Ok(dates)
    })
}

/// Downloads every object under `prefix` into `local`, keeping relative paths.
pub fn download_prefix(prefix: &str, local: &Path) -> anyhow::Result<usize> {
    let (store, base) = store_for(prefix)?;
    block_on(async {
        let mut listing = store.list(Some(&base));
        let mut n = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| format!("listing {prefix}"))?;
            let relative: Vec<_> = meta
                .location
                .prefix_match(&base)
                .into_iter()
                .flatten()
                .collect();
            let mut target = local.to_path_buf();
            for part in &relative {
                target.push(part.as_ref());
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let bytes = store.get(&meta.location).await?.bytes().await?;
            std::fs::write(&target, &bytes)
                .with_context(|| format!("writing {}", target.display()))?;
            n += 1;
        }
        Ok(n)
    })
}

/// A private temporary directory, removed when dropped (pods mount an emptyDir at /tmp).
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(what: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("recsys-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local directory standing for `location`: itself when local, else a scratch directory
/// whose contents [`Output::publish`] uploads.
pub struct Output<'a> {
    location: &'a str,
    local: PathBuf,
}

impl<'a> Output<'a> {
    pub fn new(location: &'a str, scratch: &Scratch) -> Self {
        let local = if is_remote(location) {
            scratch.path().join("output")
        } else {
            PathBuf::from(location)
        };
        Self { location, local }
    }

    pub fn local(&self) -> &Path {
        &self.local
    }

    /// Uploads `sub` (relative to the local directory, "" for all) to the same place under
    /// the remote location; nothing to do for a local one.
    pub fn publish(&self, sub: &str) -> anyhow::Result<()> {
        if is_remote(self.location) {
            let target = if sub.is_empty() {
                self.location.trim_end_matches('/').to_owned()
            } else {
                format!("{}/{sub}", self.location.trim_end_matches('/'))
            };
            upload_dir(&self.local.join(sub), &target)?;
        }
        Ok(())
    }
}

/// Every object under the prefix `location` (local: the directory) as a local tree, or
/// `None` when there is none yet (a sink that has not flushed).
pub fn fetch_prefix(location: &str, scratch: &Path) -> anyhow::Result<Option<PathBuf>> {
    if !is_remote(location) {
        let dir = PathBuf::from(location);
        return Ok(dir.exists().then_some(dir));
    }
    let local = scratch.join("prefix");
    let n = download_prefix(location.trim_end_matches('/'), &local)?;
    Ok((n > 0).then_some(local))
}

/// The bytes of the object at `uri`, or `None` when there is no such object.
pub fn get_bytes(uri: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let (store, key) = store_for(uri)?;
    block_on(async {
        match store.get(&key).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .with_context(|| format!("reading {uri}"))?
                    .to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {uri}"))),
        }
    })
}

/// Streams the object at `uri` into the local file `path` (created or truncated).
pub fn download_to(uri: &str, path: &Path) -> anyhow::Result<()> {
    let (store, key) = store_for(uri)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    block_on(async {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut stream = store
            .get(&key)
            .await
            .with_context(|| format!("reading {uri}"))?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.with_context(|| format!("reading {uri}"))?)?;
        }
        out.flush()?;
        Ok(())
    })
}

/// Writes `bytes` to the object at `uri`.
pub fn put_bytes(uri: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    let (store, key) = store_for(uri)?;
    block_on(async {
        store
            .put(&key, PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing {uri}"))?;
        Ok(())
    })
}

/// `base` joined with a relative `name`, for URIs and local paths alike.
pub fn join(base: &str, name: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        name.trim_start_matches('/')
    )
}
