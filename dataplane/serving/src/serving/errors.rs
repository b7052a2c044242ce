//! Every way a serving request can fail, and the one place each becomes a gRPC status (and,
//! through the status, an HTTP one). The matches are exhaustive: a new failure cannot reach a
//! caller without someone choosing its code.

use super::engine::EngineError;
use hyper::StatusCode;
use recsys_version::ArtifactError;
use std::time::Duration;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The request itself is wrong; the message names the field or bound.
    #[error("{0}")]
    InvalidArgument(String),
    /// No credentials, or ones this server does not accept.
    #[error("{0}")]
    Unauthenticated(String),
    /// The queue in front of the compute permits is full: shed now rather than answer late.
    #[error("the server is at capacity ({0} requests already waiting); retry with backoff")]
    Overloaded(usize),
    /// The request's deadline (the caller's or the server's) passed before an answer.
    #[error("no answer within the deadline of {} ms", .0.as_millis())]
    DeadlineExceeded(Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A worker thread panicked or was cancelled.
    #[error("worker failed: {0}")]
    Worker(String),
    /// Accepted feedback could not be made durable; the caller should retry.
    #[error("event log: {0}")]
    EventLog(std::io::Error),
}

impl ServingError {
    pub fn code(&self) -> Code {
        match self {
            ServingError::InvalidArgument(_) => Code::InvalidArgument,
            ServingError::Unauthenticated(_) => Code::Unauthenticated,
            ServingError::Overloaded(_) => Code::ResourceExhausted,
            ServingError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServingError::ShuttingDown => Code::Unavailable,
            ServingError::Engine(e) => engine_code(e),
            ServingError::Worker(_) => Code::Internal,
            ServingError::EventLog(_) => Code::Unavailable,
        }
    }
}

/// A version that cannot be read is the deployment's problem (retry elsewhere); a file whose
/// contents contradict themselves is lost data; a model failing on good input is a bug.
fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::Artifact(a) => match a {
            ArtifactError::Io { .. } => Code::Unavailable,
            ArtifactError::BadManifest { .. }
            | ArtifactError::Checksum { .. }
            | ArtifactError::WrongModel { .. }
            | ArtifactError::Schema { .. } => Code::DataLoss,
        },
        EngineError::BadFile { .. } => Code::DataLoss,
        EngineError::Model(_) => Code::Internal,
    }
}

impl From<ServingError> for Status {
    fn from(e: ServingError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// The HTTP status of a failed request's gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_own_code() {
        let cases = [
            (
                ServingError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (
                ServingError::Unauthenticated("x".into()),
                Code::Unauthenticated,
            ),
            (ServingError::Overloaded(7), Code::ResourceExhausted),
            (
                ServingError::DeadlineExceeded(Duration::from_millis(5)),
                Code::DeadlineExceeded,
            ),
            (ServingError::ShuttingDown, Code::Unavailable),
            (
                ServingError::Engine(EngineError::BadFile {
                    file: "catalog.json".into(),
                    message: "item 9 of 3".into(),
                }),
                Code::DataLoss,
            ),
            (ServingError::Worker("panic".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let status = Status::from(e);
            assert_eq!(status.code(), code, "{}", status.message());
        }
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(
            http_status(Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
