// SPDX-License-Identifier: GPL-2.0-only
//! The usage error: a bad argument, found before anything is built or written. A leaf of its own
//! so that the tables that validate arguments (`kernels`, `doctor`) need not name the run's
//! aggregate error (`error::RunError`, which names `kernel` and `image`, which name `kernels`);
//! `error` re-exports it.

/// A bad argument or combination of arguments, found before anything is built or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// A usage error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError(message.into())
    }
}
