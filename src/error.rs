//! Errors that cross module boundaries, each saying who caused it. Kafka error codes themselves come
//! from `kafka_protocol::error::ResponseError` (one source of truth: Kafka's Errors.java).
use kafka_protocol::messages::ApiKey;

/// Who caused a failure. Decides the log level and whether only the request or the whole
/// connection is affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    /// The client sent something invalid: logged at info, its connection is closed.
    Client,
    /// The backend (disk, upstream cluster) failed: logged at warn.
    Backend,
    /// A bug in kgate: logged at error.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Kafka closes the connection when a request body does not parse.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    MalformedRequest {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{api_key:?} is not served by this backend")]
    Unsupported { api_key: ApiKey },
    #[error("storage error: {0}")]
    Storage(String),
    /// The upstream cluster failed this request (connection lost, broker gone).
    #[error("{0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    pub fn culprit(&self) -> Culprit {
        match self {
            RequestError::MalformedRequest { .. } | RequestError::Unsupported { .. } => Culprit::Client,
            RequestError::Storage(_) | RequestError::Upstream(_) => Culprit::Backend,
            RequestError::Internal(_) => Culprit::Internal,
        }
    }
}

/// Start-up failures: the process exits with a non-zero code and this message.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Every problem found in the configuration, reported at once (exit code 64, EX_USAGE).
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    InvalidConfig(Vec<String>),
    #[error("cannot listen on {addr} (listener {listener}): {source}. Is another process using the port? Change `bind` in the config")]
    Bind {
        listener: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("upstream cluster: {0}")]
    Upstream(String),
    #[error("cannot open the data directory {dir}: {reason}")]
    Storage { dir: String, reason: String },
}

impl StartupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::InvalidConfig(_) => 64,
            StartupError::Bind { .. } => 69,
            StartupError::Storage { .. } => 74,
            StartupError::Upstream(_) => 69,
        }
    }
}
