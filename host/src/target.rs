//! What can be scanned.

use std::path::PathBuf;

use crate::plugins::TargetKind;

/// One thing to scan, as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A root filesystem: the host's own `/`, or a directory holding one.
    Host { root: PathBuf },
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Host { .. } => TargetKind::Host,
        }
    }
}
