//! One layer of an image, as the host streams it through the `content`
//! import, made into the `Read + Seek` that [`Overlay::apply_layer`]
//! takes.
//!
//! The overlay only ever seeks forward from where it is, to pass over the
//! data of files it does not keep; those bytes are skipped on the host's
//! side and never copied into the plugin. Any other seek is refused.
//!
//! A failure of the host (a blob missing, a digest that does not match)
//! reaches the overlay as an I/O error, which loses its kind. The first
//! one is therefore kept here, so that the scan can still tell a retryable
//! failure from a fatal one.
//!
//! [`Overlay::apply_layer`]: scanhost_image::overlay::Overlay::apply_layer

use std::io::{self, Read, Seek, SeekFrom};

use crate::scanhost::plugin::content::{ContentError, LayerReader as HostStream};

/// The most bytes asked of the host at once.
const CHUNK: u64 = 1 << 20;

pub struct LayerReader {
    stream: HostStream,
    /// The last bytes the host sent; those before `next` have been used.
    chunk: Vec<u8>,
    /// Invariant: `next <= chunk.len()`.
    next: usize,
    /// How far into the stream the overlay is: bytes read and skipped.
    position: u64,
    /// The first failure the host reported, if any.
    failure: Option<ContentError>,
}

impl LayerReader {
    pub fn new(stream: HostStream) -> Self {
        LayerReader {
            stream,
            chunk: Vec::new(),
            next: 0,
            position: 0,
            failure: None,
        }
    }

    /// The first failure the host reported, if reading met one.
    pub fn take_failure(&mut self) -> Option<ContentError> {
        self.failure.take()
    }

    /// Has the host read the rest of the layer and check its digests.
    pub fn finish(&self) -> Result<(), ContentError> {
        self.stream.finish()
    }

    /// Keeps the host's failure and turns it into an I/O error.
    fn failed(&mut self, failure: ContentError) -> io::Error {
        let error = io::Error::other(failure.to_string());
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        error
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.next == self.chunk.len() {
            // An empty chunk is the end of the stream, and reads as 0.
            self.chunk = self.stream.read(CHUNK).map_err(|f| self.failed(f))?;
            self.next = 0;
        }

        let available = &self.chunk[self.next..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.next += n;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for LayerReader {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let forward = match target {
            SeekFrom::Current(offset) => u64::try_from(offset).ok(),
            _ => None,
        };
        let Some(forward) = forward else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a layer from the host can only be skipped forward",
            ));
        };

        // What is left of the chunk already here is passed over first.
        let buffered = forward.min((self.chunk.len() - self.next) as u64);
        self.next += buffered as usize;
        self.position += buffered;

        let mut remaining = forward - buffered;
        while remaining > 0 {
            let skipped = self.stream.skip(remaining).map_err(|f| self.failed(f))?;
            if skipped == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // The contract says no more than asked; a host that passed over
            // more must not make the count wrap.
            let skipped = skipped.min(remaining);
            remaining -= skipped;
            self.position += skipped;
        }
        Ok(self.position)
    }
}
