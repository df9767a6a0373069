//! A plugin's stdout and stderr, forwarded to the host log line by line.
//!
//! A plugin never inherits the host's standard streams: what it prints is
//! logged at info level with the plugin's name, so that a noisy plugin
//! cannot corrupt a document printed on stdout. Writes always succeed (a
//! failed write to stderr would make Rust's `eprintln!` panic in the
//! plugin); lines longer than `MAX_LINE` are cut.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

#[derive(Clone)]
pub struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
}

impl LogStream {
    pub fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        Self { plugin, stream }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            target: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    target: LogStream,
    /// The current, unfinished line; never longer than `MAX_LINE`.
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        tracing::info!(
            plugin = &*self.target.plugin,
            stream = self.target.stream,
            "{}",
            text.trim_end()
        );
        self.line.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        for &byte in buf {
            if byte == b'\n' {
                this.emit();
            } else if this.line.len() < MAX_LINE {
                this.line.push(byte);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.line.is_empty() {
            this.emit();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}
