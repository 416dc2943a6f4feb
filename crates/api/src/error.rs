//! The error of the API layer: a spec value the schema let through but prescaler cannot use.

/// A spec value the schema let through but prescaler cannot use; `field` is its path
/// (`spec.peakWindows[0].schedule`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    InvalidSpec { field: String, message: String },
}
