//! Blobs read through containerd's content service, in one namespace.
//!
//! Blobs stream in containerd's chunks (1 MiB) and are verified by the
//! callers in [`super`], as for any store. The scan side is synchronous
//! (plugins read through host calls on a blocking thread): each chunk is
//! awaited on the runtime the client belongs to. A blob containerd does
//! not have is [`ContentError::NotFound`], so that the scan is retried.

use std::io::{self, Read};
use std::time::Duration;

use tonic::codec::Streaming;

use super::{BlobStore, ContentError, Digest};
use crate::containerd::{self, Client, ReadContentResponse};

/// The longest wait for the next chunk of a blob: a containerd that stops
/// answering mid-blob fails the read instead of holding the scan.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);

/// The content of one containerd namespace.
pub struct ContainerdContent {
    client: Client,
    namespace: String,
}

impl ContainerdContent {
    /// Reads the content of `namespace` through `client`. Must not be
    /// read from within the client's runtime's async tasks (use a
    /// blocking thread).
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
        }
    }
}

impl BlobStore for ContainerdContent {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError> {
        let name = digest.to_string();
        let mut stream = self
            .client
            .runtime()
            .block_on(self.client.read(&self.namespace, &name))
            .map_err(|err| self.content_error(digest, err))?;
        // containerd may also say NotFound in place of the first chunk.
        let first = self
            .client
            .runtime()
            .block_on(next_chunk(&mut stream))
            .map_err(|status| {
                self.content_error(digest, self.client.error(self.call(&name), status))
            })?;
        Ok(Box::new(ChunkReader {
            client: self.client.clone(),
            call: self.call(&name),
            stream,
            chunk: first.map(|c| c.data).unwrap_or_default(),
            done: false,
        }))
    }
}

impl ContainerdContent {
    fn call(&self, digest: &str) -> String {
        format!("read blob {digest} of namespace {}", self.namespace)
    }

    /// A blob containerd does not have may come later (a pull): NotFound.
    fn content_error(&self, digest: &Digest, err: containerd::Error) -> ContentError {
        if err.is_not_found() {
            ContentError::NotFound {
                digest: format!("{digest} in containerd namespace {}", self.namespace),
            }
        } else {
            ContentError::io(digest, io::Error::other(err.to_string()))
        }
    }
}

async fn next_chunk(
    stream: &mut Streaming<ReadContentResponse>,
) -> Result<Option<ReadContentResponse>, tonic::Status> {
    match tokio::time::timeout(CHUNK_TIMEOUT, stream.message()).await {
        Ok(chunk) => chunk,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "no data in {}s",
            CHUNK_TIMEOUT.as_secs()
        ))),
    }
}

/// A blob as a reader over the stream of its chunks.
struct ChunkReader {
    client: Client,
    call: String,
    stream: Streaming<ReadContentResponse>,
    /// What is left of the current chunk.
    chunk: bytes::Bytes,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.client.runtime().block_on(next_chunk(&mut self.stream)) {
                Ok(Some(chunk)) => self.chunk = chunk.data,
                Ok(None) => self.done = true,
                Err(status) => {
                    let err = self.client.error(self.call.clone(), status);
                    return Err(io::Error::other(err.to_string()));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}
