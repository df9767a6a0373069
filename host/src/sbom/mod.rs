//! SBOM documents made from scan outcomes.
//!
//! Plugins report structured data; the documents are made here, so every
//! plugin gets every output format.

pub mod cyclonedx;

/// What was scanned, as a document's subject names it.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A root filesystem at this path.
    RootFilesystem { path: String },
}
