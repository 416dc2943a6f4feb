//! The error of the adapters: what Prometheus and the Kubernetes API answered, or did not. Each
//! variant names what it concerns (a query, a request, a setting) and keeps its cause as a typed
//! source.

/// Everything that can go wrong talking to Prometheus or Kubernetes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read that failed: the query, the endpoint that failed it ("Prometheus at http://…",
    /// "the long-term store at http://…"), and what it did.
    #[error("query {query:?}: {server} {source}")]
    Prometheus {
        query: String,
        server: String,
        #[source]
        source: crate::prometheus::QueryError,
    },

    /// A client setting, or a file it names, that cannot be used.
    #[error("{what}: {message}")]
    Config { what: String, message: String },

    #[error("Kubernetes API: {}", chain(&**.0))]
    Kube(#[source] Box<kube::Error>),

    /// A request that got no answer in time.
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },

    /// A write was due while this replica may no longer write (past its Lease's renew
    /// deadline): the new leader does it.
    #[error("this replica lost the Lease; the new leader acts")]
    NotLeader,

    /// A target whose names do not make a path to it alone (see `prescaler_api::names`), or
    /// whose `/scale` answered for another object: nothing is read or written.
    #[error("spec.scaleTargetRef {message}")]
    UnsafeTarget { message: String },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

impl Error {
    /// Whether the Kubernetes API answered 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if matches!(&**e, kube::Error::Api(s) if s.is_conflict()))
    }

    /// Whether the Kubernetes API refused the request for lack of permission (RBAC).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Kube(e) if matches!(&**e, kube::Error::Api(s) if s.is_forbidden()))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line (`client error (Connect): tcp connect error: Connection
/// refused (os error 111)`): a wrapper's own text often leaves out what went wrong. A cause whose
/// text the line already holds is not repeated.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
