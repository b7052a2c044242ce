//! What serving reads from Redis: the user-embedding cache (TTL 1 h, the seed's; in-process
//! when no Redis is configured), the prediction cache, the popular list's sorted sets and the
//! online feature store (written by `recsys materialize`). Redis failing never fails a
//! request: an embedding lookup reports an error and the caller computes the embedding (an
//! in-process copy serves until Redis is back); a feature read reports None and the caller uses
//! the version's own values; the popular list falls back to this process's own counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const USER_EMBEDDING_TTL: Duration = Duration::from_secs(3600);
/// The seed's TTL for a computed answer.
pub const PREDICTION_TTL: Duration = Duration::from_secs(1800);
const IN_PROCESS_CAPACITY: usize = 100_000;
/// How long a request may wait on a Redis command before it is treated as down.
const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// How long opening a connection may take: TCP, a TLS handshake and AUTH are several round
/// trips, which a loaded node does not finish in `REDIS_TIMEOUT`. Only the request that opens
/// a pooled connection pays it, and after a failure none does for `RECONNECT_AFTER`.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, how long before the next reconnection attempt.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(Vec<f32>),
    Miss,
    /// The store is unreachable; treated as a miss.
    Error,
}

impl Lookup {
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Hit(_) => "hit",
            Lookup::Miss => "miss",
            Lookup::Error => "error",
        }
    }
}

pub trait CacheStore: Send + Sync {
    fn get(&self, key: &str) -> Lookup;
    /// Stores `vector` for `ttl`.
    fn put_for(&self, key: &str, vector: &[f32], ttl: Duration);

    /// Stores a user embedding (the seed's 1 h).
    fn put(&self, key: &str, vector: &[f32]) {
        self.put_for(key, vector, USER_EMBEDDING_TTL);
    }

    /// The raw values of `keys` in one round trip; None when there is no shared store behind
    /// this one (in-process) or it is unreachable.
    fn get_many(&self, _keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        None
    }

    /// Whether other processes (`recsys materialize`, other replicas) share this store.
    fn shared(&self) -> bool {
        false
    }

    /// Adds each (member, weight) to the sorted set `key`, which then expires after `ttl`.
    /// False when there is no shared store or it is unreachable.
    fn add_scores(&self, _key: &str, _members: &[(&str, f64)], _ttl: Duration) -> bool {
        false
    }

    /// The top `n` of the sorted set `dest`, first made (and kept for `ttl`) as the union of
    /// `sources` when it does not exist yet; best first. None without a reachable shared store.
    fn top_of_union(
        &self,
        _dest: &str,
        _sources: &[String],
        _n: usize,
        _ttl: Duration,
    ) -> Option<Vec<(String, f64)>> {
        None
    }
}

/// A bounded map with expiry; cleared wholesale when full (cheap, and misses only cost an
/// embedding).
#[derive(Default)]
pub struct InProcessStore {
    /// Value and when it expires.
    map: Mutex<HashMap<String, (Vec<f32>, Instant)>>,
}

impl CacheStore for InProcessStore {
    fn get(&self, key: &str) -> Lookup {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((v, expires)) if Instant::now() < *expires => Lookup::Hit(v.clone()),
            _ => Lookup::Miss,
        }
    }

    fn put_for(&self, key: &str, vector: &[f32], ttl: Duration) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= IN_PROCESS_CAPACITY {
            map.clear();
        }
        map.insert(key.to_owned(), (vector.to_vec(), Instant::now() + ttl));
    }
}

/// Connections kept open to Redis: concurrent requests each get their own instead of queueing
/// behind one socket's round trips.
const POOL: usize = 8;

pub struct RedisStore {
    client: redis::Client,
    slots: Vec<Mutex<Option<redis::Connection>>>,
    next: AtomicUsize,
    /// When Redis last failed; no reconnection is tried for `RECONNECT_AFTER` after it.
    failed_at: Mutex<Option<Instant>>,
    fallback: InProcessStore,
}

impl RedisStore {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Self::with_password(url, None)
    }

    /// Connects to `url` with `password` (from a Secret, kept out of the URL and so out of
    /// every log line and process listing) replacing any password in the URL.
    pub fn with_password(url: &str, password: Option<&str>) -> anyhow::Result<Self> {
        Self::with_tls(url, password, None)
    }

    /// [`Self::with_password`]; a `rediss://` URL verifies the server against `ca_file`
    /// (PEM) when given, else the system's roots.
    pub fn with_tls(
        url: &str,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: Self::tls_client(url, password, ca_file)?,
            slots: (0..POOL).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            failed_at: Mutex::new(None),
            fallback: InProcessStore::default(),
        })
    }

    /// A Redis client for `url` with `password` replacing any in the URL; errors never
    /// repeat the URL.
    pub fn client(url: &str, password: Option<&str>) -> anyhow::Result<redis::Client> {
        Self::tls_client(url, password, None)
    }

    /// [`Self::client`] with a private CA for `rediss://`.
    pub fn tls_client(
        url: &str,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<redis::Client> {
        use redis::IntoConnectionInfo;
        // The error names the problem, never the URL (it may hold credentials).
        let mut info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("the Redis URL is not valid ({:?})", e.kind()))?;
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            info.redis.password = Some(p.to_owned());
        }
        match ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading the Redis CA {}: {e}", path.display()))?;
                Ok(redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )?)
            }
            None => Ok(redis::Client::open(info)?),
        }
    }

    fn mark_failed(&self, error: &redis::RedisError, what: &str) {
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        if failed_at.is_none() {
            tracing::warn!(%error, "redis {what}; using in-process data until it is back");
        }
        *failed_at = Some(Instant::now());
    }

    /// Runs `f` on a live connection (a free one if any, else the next in turn); on any
    /// failure drops it and reports the error.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut connection = self
            .slots
            .iter()
            .find_map(|slot| slot.try_lock().ok())
            .unwrap_or_else(|| {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
            });
        if connection.is_none() {
            let failed_at = *self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
            if failed_at.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
                return None;
            }
            match self.client.get_connection_with_timeout(CONNECT_TIMEOUT) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(REDIS_TIMEOUT));
                    let _ = c.set_write_timeout(Some(REDIS_TIMEOUT));
                    *connection = Some(c);
                }
                Err(e) => {
                    self.mark_failed(&e, "unreachable");
                    return None;
                }
            }
        }
        match f(connection.as_mut().expect("connected above")) {
            Ok(v) => {
                let mut failed_at = self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
                *failed_at = None;
                Some(v)
            }
            Err(e) => {
                *connection = None;
                self.mark_failed(&e, "call failed");
                None
            }
        }
    }
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

impl CacheStore for RedisStore {
    fn get(&self, key: &str) -> Lookup {
        let found =
            self.with_connection(|c| redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(c));
        match found {
            Some(Some(bytes)) => from_bytes(&bytes).map_or(Lookup::Miss, Lookup::Hit),
            Some(None) => Lookup::Miss,
            None => match self.fallback.get(key) {
                Lookup::Hit(v) => Lookup::Hit(v),
                _ => Lookup::Error,
            },
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn get_many(&self, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        self.with_connection(|c| redis::cmd("MGET").arg(keys).query(c))
    }

    fn put_for(&self, key: &str, vector: &[f32], ttl: Duration) {
        let bytes = to_bytes(vector);
        let stored = self.with_connection(|c| {
            redis::cmd("SET")
                .arg(key)
                .arg(bytes.as_slice())
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query::<()>(c)
        });
        if stored.is_none() {
            self.fallback.put_for(key, vector, ttl);
        }
    }

    fn add_scores(&self, key: &str, members: &[(&str, f64)], ttl: Duration) -> bool {
        self.with_connection(|c| {
            let mut pipe = redis::pipe();
            for &(member, weight) in members {
                pipe.cmd("ZINCRBY")
                    .arg(key)
                    .arg(weight)
                    .arg(member)
                    .ignore();
            }
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(ttl.as_secs().max(1))
                .ignore();
            pipe.query::<()>(c)
        })
        .is_some()
    }

    fn top_of_union(
        &self,
        dest: &str,
        sources: &[String],
        n: usize,
        ttl: Duration,
    ) -> Option<Vec<(String, f64)>> {
        if n == 0 {
            return Some(Vec::new());
        }
        self.with_connection(|c| {
            let exists: bool = redis::cmd("EXISTS").arg(dest).query(c)?;
            if !exists {
                // Two replicas may both merge at a period's start; the results are equal.
                redis::pipe()
                    .cmd("ZUNIONSTORE")
                    .arg(dest)
                    .arg(sources.len())
                    .arg(sources)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(dest)
                    .arg(ttl.as_secs().max(1))
                    .ignore()
                    .query::<()>(c)?;
            }
            redis::cmd("ZRANGE")
                .arg(dest)
                .arg(0)
                .arg(n - 1)
                .arg("REV")
                .arg("WITHSCORES")
                .query::<Vec<(String, f64)>>(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_process_store_round_trips_and_bytes_are_exact() {
        let s = InProcessStore::default();
        assert_eq!(s.get("k"), Lookup::Miss);
        s.put("k", &[0.5, -1.25]);
        assert_eq!(s.get("k"), Lookup::Hit(vec![0.5, -1.25]));
        // Each value keeps its own time to live.
        s.put_for("gone", &[1.0], Duration::ZERO);
        assert_eq!(s.get("gone"), Lookup::Miss);
        assert_eq!(
            from_bytes(&to_bytes(&[1.0, f32::MIN_POSITIVE])),
            Some(vec![1.0, f32::MIN_POSITIVE])
        );
        assert_eq!(from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn an_unreachable_redis_is_an_error_lookup_not_a_failure() {
        // Port 1 on loopback: nothing listens there.
        let s = RedisStore::new("redis://127.0.0.1:1/").unwrap();
        assert_eq!(s.get("k"), Lookup::Error);
        s.put("k", &[1.0]);
        // The in-process copy answers while Redis is down.
        assert_eq!(s.get("k"), Lookup::Hit(vec![1.0]));
        // Feature reads say "nothing" rather than fail.
        assert_eq!(s.get_many(&["k".to_owned()]), None);
        assert_eq!(InProcessStore::default().get_many(&["k".to_owned()]), None);
    }
}
