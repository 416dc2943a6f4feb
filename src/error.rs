//! The application's error type. Each variant names what it concerns (a spec field, a file, a
//! query) and keeps its cause as a typed source; the layers' own errors are wrapped whole
//! (`Api`, `Adapters`), their text unchanged.

/// Everything that can go wrong, with the field, file or query it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec value the command line or a manifest file gets wrong (a missing flag, an unknown
    /// field); `field` is its path. What the spec's validation refuses is `Api`.
    #[error("invalid {field}: {message}")]
    InvalidSpec { field: String, message: String },

    /// A read of one metric of a spec that lists its metrics (`spec.metrics[i].query`) that
    /// failed: the field first, so that the metric is known whatever the cause says.
    #[error("{field}: {source}")]
    Metric {
        field: String,
        #[source]
        source: Box<Error>,
    },

    /// A load trace that cannot be replayed.
    #[error("{path}: {message}")]
    Trace { path: String, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Csv {
        context: String,
        #[source]
        source: csv::Error,
    },

    #[error("{context}: {source}")]
    Yaml {
        context: String,
        #[source]
        source: serde_yaml_ng::Error,
    },

    /// A command-line setting or a file it names that cannot be used.
    #[error("{what}: {message}")]
    Config { what: String, message: String },

    /// A spec that fails validation (prescaler-api's error).
    #[error(transparent)]
    Api(#[from] crate::api::Error),

    /// What Prometheus or the Kubernetes API answered, or did not (prescaler-adapters' error:
    /// `Prometheus`, `Kube`, `Timeout`, `NotLeader`, `Config`).
    #[error(transparent)]
    Adapters(#[from] crate::adapters::Error),

    /// A reconcile panicked; the process carries on (see `operator::controller`).
    #[error("internal error while reconciling: {0}")]
    Panicked(String),

    /// The SVG chart could not be drawn.
    #[error("drawing {path}: {message}")]
    Chart { path: String, message: String },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Adapters(e.into())
    }
}

impl Error {
    /// Whether the Kubernetes API answered 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Adapters(e) if e.is_conflict())
    }

    /// Whether the Kubernetes API refused the request for lack of permission (RBAC).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Adapters(e) if e.is_forbidden())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line (prescaler-adapters' `chain`, which its `Kube` variant
/// prints with).
pub use crate::adapters::chain;

/// A command's exit: success, also when the reader of its output went away (`… | head`);
/// otherwise the error on stderr and `failure` as the exit code.
pub fn exit_code(result: Result<()>, failure: u8) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(failure)
        }
    }
}
