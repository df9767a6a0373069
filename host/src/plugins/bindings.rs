//! Host side of the WIT contract: generated bindings and the imports the
//! host implements (`log`, `content`).
//!
//! The `content` import serves image blobs. Host targets have no image
//! content, so for them every request is answered `not-found`; the image
//! content service replaces this when container images are scanned.

use wasmtime::component::Resource;

use super::state::ScanState;

wasmtime::component::bindgen!({
    world: "scanner",
    path: "../wit",
    with: {
        "scanhost:plugin/content.layer-reader": LayerReader,
    },
});

pub use self::scanhost::plugin::content::ContentError;
pub use self::scanhost::plugin::log::Level;
pub use self::scanhost::plugin::types::{
    Description, HostTarget, OsInfo, Package, Report, ScanError, Target, TargetKind,
};

/// The semantic version of the contract this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The interface every plugin exports, without its version.
pub const PLUGIN_INTERFACE: &str = "scanhost:plugin/plugin";

/// An open layer stream handed to a plugin.
pub struct LayerReader {
    _private: (),
}

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
    fn read_blob(&mut self, digest: String, _max_size: u64) -> Result<Vec<u8>, ContentError> {
        Err(ContentError::NotFound(format!(
            "blob {digest}: this target has no image content"
        )))
    }

    fn open_layer(
        &mut self,
        digest: String,
        _diff_id: String,
    ) -> Result<Resource<LayerReader>, ContentError> {
        Err(ContentError::NotFound(format!(
            "layer {digest}: this target has no image content"
        )))
    }
}

impl self::scanhost::plugin::content::HostLayerReader for ScanState {
    fn read(&mut self, reader: Resource<LayerReader>, _len: u64) -> Result<Vec<u8>, ContentError> {
        Err(ContentError::Io(format!(
            "layer reader {} is not open",
            reader.rep()
        )))
    }

    fn drop(&mut self, reader: Resource<LayerReader>) -> wasmtime::Result<()> {
        self.table.delete(reader)?;
        Ok(())
    }
}
