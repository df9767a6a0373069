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
    /// A container image.
    Image {
        /// The reference shown as its name.
        name: String,
        references: Vec<String>,
        /// The manifest scanned, for the image's platform.
        manifest_digest: String,
        /// The image id: its config's digest.
        id: String,
    },
}

impl Subject {
    pub fn of(target: &crate::target::Target) -> Self {
        match target {
            crate::target::Target::Host { root } => Subject::RootFilesystem {
                path: root.display().to_string(),
            },
            crate::target::Target::Image(image) => Subject::Image {
                name: image.name(),
                references: image.references.clone(),
                manifest_digest: image.manifest_digest.to_string(),
                id: image.id.to_string(),
            },
        }
    }
}
