//! Bearer-token authentication for the data plane's methods. Tokens live in a file (a mounted
//! Secret: one token per line, `#` comments allowed), re-read when it changes so a rotation
//! needs no restart, and only their SHA-256 digests are kept in memory. Each call presents
//! `authorization: Bearer <token>`; the comparison takes the same time whichever byte differs.

use super::errors::ServingError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the token file is looked at again, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// Who may call a method.
#[derive(Clone)]
pub enum Access {
    /// Anyone who can reach the port (Recommend's default: NetworkPolicies decide who can).
    Open,
    /// Only callers presenting one of the file's tokens.
    Token(Arc<TokenFile>),
    /// Nobody: the method needs a token and the process was given none to check against.
    Closed,
}

/// Access per method: Feedback changes shared state, Recommend only reads it.
#[derive(Clone)]
pub struct AuthPolicy {
    pub recommend: Access,
    pub feedback: Access,
}

impl AuthPolicy {
    /// Everything open: in-process tests and local runs that asked for it explicitly.
    pub fn open() -> Self {
        Self {
            recommend: Access::Open,
            feedback: Access::Open,
        }
    }
}

impl Access {
    /// Checks the value of a request's `authorization` header.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ServingError> {
        let file = match self {
            Access::Open => return Ok(()),
            Access::Closed => {
                return Err(ServingError::Unauthenticated(
                    "this server was started without --auth-tokens-file, so it accepts no credentials for this method".into(),
                ))
            }
            Access::Token(file) => file,
        };
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ServingError::Unauthenticated(
                    "this method needs `authorization: Bearer <token>`".into(),
                )
            })?;
        if file.accepts(presented) {
            Ok(())
        } else {
            Err(ServingError::Unauthenticated(
                "the bearer token is not accepted".into(),
            ))
        }
    }
}

struct Loaded {
    checked: Instant,
    raw: Vec<u8>,
    digests: Vec<[u8; 32]>,
    /// The first token, for a client that presents this file's token.
    first: String,
}

pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The digests of the file's tokens, and its first token.
fn parse(raw: &[u8]) -> Result<(Vec<[u8; 32]>, String), String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the token file is not UTF-8".to_owned())?;
    let tokens: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let first = tokens
        .first()
        .ok_or_else(|| "the token file holds no token".to_owned())?
        .to_string();
    Ok((tokens.into_iter().map(digest).collect(), first))
}

/// Equal digests, compared without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenFile {
    /// Reads the file now: a missing or empty one is an error at start-up, not at the first
    /// call.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let raw = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", path.display()))?;
        let (digests, first) =
            parse(&raw).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                checked: Instant::now(),
                raw,
                digests,
                first,
            }),
        })
    }

    /// The first token, for a client that authenticates with this file (the router to its
    /// arms); a rotation reaches it within the recheck period, without a read per call.
    pub fn first_token(&self) -> String {
        self.current().first.clone()
    }

    fn accepts(&self, token: &str) -> bool {
        let presented = digest(token);
        // Every digest is compared, so the time says nothing about which one matched.
        self.current()
            .digests
            .iter()
            .fold(false, |hit, d| same(d, &presented) | hit)
    }

    /// The loaded tokens, re-read first once the recheck period has passed.
    fn current(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            // A file that vanished or went bad mid-rotation keeps the last good tokens.
            match std::fs::read(&self.path) {
                Ok(raw) if raw != loaded.raw => match parse(&raw) {
                    Ok((digests, first)) => {
                        tracing::info!(path = %self.path.display(), tokens = digests.len(), "token file reloaded");
                        loaded.digests = digests;
                        loaded.first = first;
                        loaded.raw = raw;
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "token file refused; the previous tokens stay")
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "token file unreadable; the previous tokens stay")
                }
            }
        }
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_rotations_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# feedback writers\nalpha\n\nbeta\n").unwrap();
        let access = Access::Token(Arc::new(TokenFile::open(&path).unwrap()));
        assert!(access.check(Some("Bearer alpha")).is_ok());
        assert!(access.check(Some("Bearer beta")).is_ok());
        let Access::Token(file) = &access else {
            unreachable!()
        };
        assert_eq!(file.first_token(), "alpha");
        for bad in [None, Some("alpha"), Some("Bearer "), Some("Bearer gamma")] {
            let e = access.check(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
        std::fs::write(&path, "gamma\n").unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert!(access.check(Some("Bearer gamma")).is_ok());
        assert!(access.check(Some("Bearer alpha")).is_err());
        // An empty file mid-rotation does not lock everyone out.
        std::fs::write(&path, "").unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert!(access.check(Some("Bearer gamma")).is_ok());
        assert!(Access::Open.check(None).is_ok());
        assert!(Access::Closed.check(Some("Bearer gamma")).is_err());
        assert!(TokenFile::open(&path).is_err());
    }
}
