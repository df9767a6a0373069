//! What can be scanned, and how an image is identified before its scan.
//!
//! An image is known by its id, the digest of its config, as container
//! runtimes know it. The host resolves it natively (index, platform,
//! manifest, config: a few small JSON documents) before handing the image
//! to plugins, which read the layers themselves.

use std::path::PathBuf;
use std::sync::Arc;

use scanhost_image::oci::Platform;
use scanhost_image::{ResolveError, resolve};

use crate::content::{self, BlobStore, ContentError, Digest};
use crate::plugins::TargetKind;

/// The largest index, manifest or config the host reads: the plugins'
/// limit too.
pub use scanhost_image::MAX_DOCUMENT;

/// One thing to scan, as the host knows it.
#[derive(Clone)]
pub enum Target {
    /// A root filesystem: the host's own `/`, or a directory holding one.
    Host { root: PathBuf },
    /// A container image, read through a blob store.
    Image(ImageTarget),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Host { .. } => TargetKind::Host,
            Target::Image(_) => TargetKind::ContainerImage,
        }
    }
}

/// A container image, resolved for one platform.
#[derive(Clone)]
pub struct ImageTarget {
    pub store: Arc<dyn BlobStore>,
    /// The names the image is known by, e.g. `docker.io/library/debian:12`.
    pub references: Vec<String>,
    /// The index or manifest the image was named by.
    pub digest: Digest,
    pub platform: Platform,
    /// The manifest chosen for `platform`.
    pub manifest_digest: Digest,
    /// The image id: the digest of its config.
    pub id: Digest,
}

impl std::fmt::Debug for ImageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTarget")
            .field("references", &self.references)
            .field("digest", &self.digest.to_string())
            .field("id", &self.id.to_string())
            .finish_non_exhaustive()
    }
}

impl ImageTarget {
    /// Resolves the image `digest` of `store` for `platform`.
    pub fn identify(
        store: Arc<dyn BlobStore>,
        digest: Digest,
        references: Vec<String>,
        platform: Platform,
    ) -> Result<Self, ContentError> {
        let resolved = resolve(&digest.to_string(), &platform, |d| {
            let d = Digest::parse(d).map_err(|err| ContentError::invalid(&d, err.to_string()))?;
            content::read_blob(store.as_ref(), &d, MAX_DOCUMENT)
        })
        .map_err(|err| match err {
            ResolveError::Fetch { source, .. } => source,
            // Named by the blob at fault (the index, a manifest or the
            // config), which the message does not repeat.
            other => {
                let blob = other.digest().to_owned();
                let text = other.to_string();
                let reason = text.strip_prefix(&format!("{blob}: ")).unwrap_or(&text);
                ContentError::invalid(&blob, reason)
            }
        })?;
        let parse = |d: &str| {
            Digest::parse(d).map_err(|err| ContentError::invalid(&digest, err.to_string()))
        };
        Ok(Self {
            manifest_digest: parse(&resolved.manifest_digest)?,
            id: parse(&resolved.config_digest)?,
            store,
            references,
            digest,
            platform,
        })
    }

    /// The reference to show first: the first name, else the id.
    pub fn name(&self) -> String {
        self.references
            .first()
            .cloned()
            .unwrap_or_else(|| self.id.to_string())
    }
}

/// The platform of the machine scanhost runs on, as OCI names it.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    Platform {
        os: "linux".to_string(),
        architecture: architecture.to_string(),
        variant: None,
    }
}
