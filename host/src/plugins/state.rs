//! The per-scan store data: WASI context, resource table and limits.
//!
//! A fresh `ScanState` is made for every call into a plugin and dropped
//! with its store, so nothing a plugin does survives one scan.

use std::path::Path;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::log_stream::LogStream;
use crate::content::{BlobStore, Threads};
use crate::plugin_cache::Scope;

/// Store data of one scan.
pub struct ScanState {
    /// Name of the plugin, for log lines.
    pub plugin: Arc<str>,
    pub table: ResourceTable,
    /// The blobs of the image being scanned; none for host targets.
    pub content: Option<Arc<dyn BlobStore>>,
    /// What the plugin kept across scans; none when nothing is kept.
    pub cache: Option<Scope>,
    /// The threads that read this scan's layers ahead.
    pub read_ahead: Threads,
    wasi: WasiCtx,
    limits: MemoryCap,
}

impl ScanState {
    /// A state with no filesystem access, for `describe`.
    pub fn bare(plugin: Arc<str>, max_memory: u64) -> Self {
        Self::build(plugin, max_memory, None).expect("no preopen cannot fail")
    }

    /// A state that sees `root` read-only at `/` and nothing else.
    pub fn with_root(plugin: Arc<str>, max_memory: u64, root: &Path) -> std::io::Result<Self> {
        Self::build(plugin, max_memory, Some(root))
    }

    /// A state with no filesystem that is served the blobs of `store`.
    pub fn with_content(plugin: Arc<str>, max_memory: u64, store: Arc<dyn BlobStore>) -> Self {
        let mut state = Self::bare(plugin, max_memory);
        state.content = Some(store);
        state
    }

    fn build(plugin: Arc<str>, max_memory: u64, root: Option<&Path>) -> std::io::Result<Self> {
        // No environment, no arguments, no stdin, no network (the builder
        // denies every socket address and name lookup by default); stdout
        // and stderr go to the host log.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogStream::new(plugin.clone(), "stdout"))
            .stderr(LogStream::new(plugin.clone(), "stderr"))
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(root) = root {
            wasi.preopened_dir(root, "/", FsPerms::ReadOnly)
                .map_err(|err| {
                    std::io::Error::other(format!("cannot open {}: {err}", root.display()))
                })?;
        }
        Ok(Self {
            plugin,
            table: ResourceTable::new(),
            content: None,
            cache: None,
            read_ahead: Threads::default(),
            wasi: wasi.build(),
            limits: MemoryCap {
                max_memory,
                hit: false,
            },
        })
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    pub fn max_memory(&self) -> u64 {
        self.limits.max_memory
    }

    /// Whether the plugin asked for more memory than its cap.
    pub fn memory_cap_hit(&self) -> bool {
        self.limits.hit
    }
}

impl WasiView for ScanState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the linear memory of one instance.
struct MemoryCap {
    max_memory: u64,
    /// Set when a grow was refused; the refusal itself traps.
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            self.hit = true;
            tracing::debug!(
                current,
                desired,
                limit = self.max_memory,
                "memory cap reached"
            );
            // Failing the grow instead of answering -1 makes the plugin trap
            // here, with the cause known, instead of in its allocator's
            // out-of-memory handler.
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes reached",
                self.max_memory
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
