//! The flags `serve` and `route` share: who may call which method, TLS, and the bounds of
//! their gRPC and HTTP fronts. Each default is documented in docs/security.md.

use crate::serving::auth::{Access, AuthPolicy, TokenFile};
use crate::serving::grpc::GrpcOptions;
use crate::serving::limits;
use crate::serving::listener::{ListenerOptions, MAX_CONNECTIONS, MAX_PENDING};
use crate::serving::tls::{self, CertFiles};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessArg {
    /// Anyone who can reach the port.
    Open,
    /// A bearer token from --auth-tokens-file.
    Token,
}

#[derive(Debug, clap::Args)]
pub struct FrontArgs {
    /// Bearer tokens this process accepts, one per line (a mounted Secret); re-read when it
    /// changes.
    #[arg(long, env = "RECSYS_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// Who may send Feedback (it changes shared state). `open` is for local runs only.
    #[arg(long, value_enum, default_value = "token")]
    pub feedback_auth: AccessArg,
    /// Who may call Recommend (and HTTP /recommend).
    #[arg(long, value_enum, default_value = "open")]
    pub recommend_auth: AccessArg,
    /// TLS certificate chain (PEM) for gRPC and HTTP; re-read when it changes.
    #[arg(long, env = "RECSYS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "RECSYS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections each front serves at once; a client that has spoken waits (pending) for
    /// a free one.
    #[arg(long, default_value_t = MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections each front holds before they are served (not yet spoken, or waiting for
    /// a slot); past this the oldest is closed, so silent connections cannot crowd out
    /// clients that talk. A client must speak within 10 s.
    #[arg(long, default_value_t = MAX_PENDING)]
    pub max_pending_connections: usize,
    /// Longest user, item, request id, placement or category accepted, bytes.
    #[arg(long, default_value_t = limits::MAX_ID_BYTES)]
    pub max_id_bytes: usize,
    /// Most items one Recommend may exclude (each widens the ANN search).
    #[arg(long, default_value_t = limits::MAX_EXCLUDED_ITEMS)]
    pub max_excluded_items: usize,
    /// Most categories in one Recommend's filter.
    #[arg(long, default_value_t = limits::MAX_CATEGORIES)]
    pub max_categories: usize,
    /// Most events in one Feedback call (keep a full batch below --max-message-bytes).
    #[arg(long, default_value_t = limits::MAX_FEEDBACK_EVENTS)]
    pub max_feedback_events: usize,
    /// Largest gRPC message accepted or sent, bytes.
    #[arg(long, default_value_t = limits::MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// HTTP/2 streams one gRPC connection may have open at once.
    #[arg(long, default_value_t = limits::MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,
    /// After SIGTERM: seconds between turning health NOT_SERVING and closing the listeners,
    /// so endpoints and clients stop sending first (keep it below the pod's grace period).
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
}

impl FrontArgs {
    /// A method that needs a token when no token file was given is closed: the process
    /// starts (it can still recommend) and says so once.
    fn access(arg: AccessArg, tokens: &Option<Arc<TokenFile>>, method: &str) -> Access {
        match (arg, tokens) {
            (AccessArg::Open, _) => Access::Open,
            (AccessArg::Token, Some(t)) => Access::Token(Arc::clone(t)),
            (AccessArg::Token, None) => {
                eprintln!(
                    "{method} is refused: it needs a token and no --auth-tokens-file (RECSYS_AUTH_TOKENS_FILE) was given; mount the tokens Secret, or pass --{}-auth open for a local run",
                    method.to_lowercase()
                );
                Access::Closed
            }
        }
    }

    /// The tokens file, read now so a missing one fails start-up.
    pub fn tokens(&self) -> anyhow::Result<Option<Arc<TokenFile>>> {
        self.auth_tokens_file
            .as_deref()
            .map(|p| TokenFile::open(p).map(Arc::new))
            .transpose()
    }

    pub fn auth(&self) -> anyhow::Result<AuthPolicy> {
        let tokens = self.tokens()?;
        Ok(AuthPolicy {
            recommend: Self::access(self.recommend_auth, &tokens, "Recommend"),
            feedback: Self::access(self.feedback_auth, &tokens, "Feedback"),
        })
    }

    fn cert_files(&self) -> anyhow::Result<Option<Arc<CertFiles>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Ok(Some(Arc::new(
                CertFiles::open(c, k).context("loading the TLS certificate")?,
            ))),
            _ => Ok(None),
        }
    }

    /// A listener speaking `alpn` (`h2`, `http/1.1`) with `files` when TLS is on.
    fn listener(
        &self,
        files: &Option<Arc<CertFiles>>,
        alpn: &[u8],
    ) -> anyhow::Result<ListenerOptions> {
        let tls = files
            .as_ref()
            .map(|f| tls::server_config(Arc::clone(f), &[alpn]))
            .transpose()?;
        Ok(ListenerOptions {
            max_connections: self.max_connections,
            max_pending: self.max_pending_connections,
            tls,
        })
    }

    fn grpc_with(&self, files: &Option<Arc<CertFiles>>) -> anyhow::Result<GrpcOptions> {
        Ok(GrpcOptions {
            listener: self.listener(files, b"h2")?,
            max_message_bytes: self.max_message_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
        })
    }

    /// The gRPC and HTTP fronts (the router's HTTP front serves only metrics and probes),
    /// sharing one certificate (read and reloaded once).
    pub fn fronts(&self) -> anyhow::Result<(GrpcOptions, ListenerOptions)> {
        let files = self.cert_files()?;
        Ok((self.grpc_with(&files)?, self.listener(&files, b"http/1.1")?))
    }

    /// Sets this process's request bounds from the flags; once, before serving.
    pub fn apply_request_limits(&self) -> anyhow::Result<()> {
        limits::configure(limits::RequestLimits {
            max_id_bytes: self.max_id_bytes,
            max_excluded_items: self.max_excluded_items,
            max_categories: self.max_categories,
            max_feedback_events: self.max_feedback_events,
        })
        .map_err(anyhow::Error::msg)
    }

    pub fn drain(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.drain_secs)
    }
}
