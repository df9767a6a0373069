//! Image content: blobs by digest, checked against their digest, and
//! layers as verified streams of their uncompressed tar.
//!
//! A [`BlobStore`] only finds blobs; everything that makes content
//! trustworthy (digest checks, size caps, decompression) happens here, once,
//! for every store: OCI layouts on disk, archives, and containerd.

pub mod containerd;
mod digest;
mod layer;
pub mod oci_layout;
mod read_ahead;

use std::io::{self, Read};

pub use digest::{Digest, InvalidDigest};
pub use layer::LayerStream;
pub use oci_layout::OciLayout;
pub use read_ahead::{ReadAhead, Threads};

/// Where blobs come from.
pub trait BlobStore: Send + Sync {
    /// The blob `digest`, or `ContentError::NotFound` when it is absent.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError>;
}

/// Why content could not be served. Every message names the digest.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The blob is not present (yet): a later attempt may succeed.
    #[error("blob {digest} not found")]
    NotFound { digest: String },
    /// The blob is there but wrong: retrying will not help.
    #[error("blob {digest}: {reason}")]
    Invalid { digest: String, reason: String },
    /// Reading failed.
    #[error("blob {digest}: {source}")]
    Io {
        digest: String,
        #[source]
        source: io::Error,
    },
}

// By hand: an `io::Error` is not `Clone`; its copy keeps its kind and words.
impl Clone for ContentError {
    fn clone(&self) -> Self {
        match self {
            ContentError::NotFound { digest } => ContentError::NotFound {
                digest: digest.clone(),
            },
            ContentError::Invalid { digest, reason } => ContentError::Invalid {
                digest: digest.clone(),
                reason: reason.clone(),
            },
            ContentError::Io { digest, source } => ContentError::Io {
                digest: digest.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
        }
    }
}

impl ContentError {
    pub fn invalid(digest: &impl ToString, reason: impl Into<String>) -> Self {
        ContentError::Invalid {
            digest: digest.to_string(),
            reason: reason.into(),
        }
    }

    pub fn io(digest: &impl ToString, source: io::Error) -> Self {
        ContentError::Io {
            digest: digest.to_string(),
            source,
        }
    }
}

/// Reads the whole blob `digest`, at most `max_size` bytes, and checks it.
pub fn read_blob(
    store: &dyn BlobStore,
    digest: &Digest,
    max_size: u64,
) -> Result<Vec<u8>, ContentError> {
    let reader = store.open(digest)?;
    let mut bytes = Vec::new();
    reader
        .take(max_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ContentError::io(digest, source))?;
    if bytes.len() as u64 > max_size {
        return Err(ContentError::invalid(
            digest,
            format!("larger than the cap of {max_size} bytes"),
        ));
    }
    let actual = digest.of_same_kind(&bytes);
    if &actual != digest {
        return Err(ContentError::invalid(
            digest,
            format!("the content has the digest {actual}"),
        ));
    }
    Ok(bytes)
}

/// Opens the layer `digest` as a verified uncompressed stream.
pub fn open_layer(
    store: &dyn BlobStore,
    digest: &Digest,
    diff_id: &Digest,
) -> Result<LayerStream, ContentError> {
    let reader = store.open(digest)?;
    LayerStream::new(digest.clone(), diff_id.clone(), reader)
}
