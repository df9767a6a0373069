//! Host side of the WIT contract: generated bindings and the imports the
//! host implements (`log`, `content`, `cache`).
//!
//! The `content` import serves the blobs of the image being scanned, with
//! every check done on the host side (see [`crate::content`]); a plugin
//! scanning a host target has no image content and is answered `not-found`.

use wasmtime::component::Resource;

use super::state::ScanState;
use crate::content::{self, Digest, ReadAhead};
use crate::target::MAX_DOCUMENT;

wasmtime::component::bindgen!({
    world: "scanner",
    path: "../wit",
    with: {
        "scanhost:plugin/content.layer-reader": crate::content::ReadAhead,
    },
});

pub use self::scanhost::plugin::content::ContentError;
pub use self::scanhost::plugin::log::Level;
pub use self::scanhost::plugin::types::{
    Description, HostTarget, ImageTarget, OsInfo, Package, Platform, Report, ScanError, Target,
    TargetKind,
};

/// The semantic version of the contract this host implements.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// The interface every plugin exports, without its version.
pub const PLUGIN_INTERFACE: &str = "scanhost:plugin/plugin";

/// The most a plugin gets from one `read` of a layer: bounds the host's
/// buffer whatever length the plugin asks for.
const MAX_READ: u64 = 1 << 20;

impl self::scanhost::plugin::types::Host for ScanState {}

impl self::scanhost::plugin::log::Host for ScanState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl self::scanhost::plugin::content::Host for ScanState {
    fn read_blob(&mut self, digest: String, max_size: u64) -> Result<Vec<u8>, ContentError> {
        let store = self.store(&digest)?;
        let digest = parse(&digest)?;
        content::read_blob(store.as_ref(), &digest, max_size.min(MAX_DOCUMENT)).map_err(to_wit)
    }

    fn open_layer(
        &mut self,
        digest: String,
        diff_id: String,
    ) -> Result<Resource<ReadAhead>, ContentError> {
        let store = self.store(&digest)?;
        let (digest, diff_id) = (parse(&digest)?, parse(&diff_id)?);
        let stream = content::open_layer(store.as_ref(), &digest, &diff_id).map_err(to_wit)?;
        self.table
            .push(ReadAhead::start(stream, &self.read_ahead))
            .map_err(|err| ContentError::Io(format!("layer {digest}: {err}")))
    }
}

impl self::scanhost::plugin::cache::Host for ScanState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.cache.as_ref()?.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        if let Some(cache) = &self.cache {
            cache.set(&key, &value);
        }
    }
}

impl self::scanhost::plugin::content::HostLayerReader for ScanState {
    fn read(&mut self, reader: Resource<ReadAhead>, len: u64) -> Result<Vec<u8>, ContentError> {
        let len = usize::try_from(len.min(MAX_READ)).unwrap_or(0);
        self.stream(&reader)?.read_chunk(len).map_err(to_wit)
    }

    fn skip(&mut self, reader: Resource<ReadAhead>, len: u64) -> Result<u64, ContentError> {
        self.stream(&reader)?.skip(len).map_err(to_wit)
    }

    fn finish(&mut self, reader: Resource<ReadAhead>) -> Result<(), ContentError> {
        self.stream(&reader)?.finish().map_err(to_wit)
    }

    fn drop(&mut self, reader: Resource<ReadAhead>) -> wasmtime::Result<()> {
        self.table.delete(reader)?;
        Ok(())
    }
}

impl ScanState {
    fn store(&self, digest: &str) -> Result<std::sync::Arc<dyn content::BlobStore>, ContentError> {
        self.content.clone().ok_or_else(|| {
            ContentError::NotFound(format!("blob {digest}: this target has no image content"))
        })
    }

    fn stream(&mut self, reader: &Resource<ReadAhead>) -> Result<&mut ReadAhead, ContentError> {
        self.table
            .get_mut(reader)
            .map_err(|err| ContentError::Io(format!("layer reader: {err}")))
    }
}

fn parse(digest: &str) -> Result<Digest, ContentError> {
    Digest::parse(digest).map_err(|err| ContentError::Invalid(err.to_string()))
}

fn to_wit(err: content::ContentError) -> ContentError {
    let message = err.to_string();
    match err {
        content::ContentError::NotFound { .. } => ContentError::NotFound(message),
        content::ContentError::Invalid { .. } => ContentError::Invalid(message),
        content::ContentError::Io { .. } => ContentError::Io(message),
    }
}
