//! A layer stream of the `content` import as `Read + Seek` for the tar
//! reader.
//!
//! Seeking forward skips on the host side, so the bytes of files nobody
//! needs are never copied into the plugin. Only forward relative seeks are
//! supported, which is all the tar reader asks for. The first content error
//! is kept, so that the caller can tell a missing or corrupt blob from a
//! corrupt tar.

use std::io::{self, Read, Seek, SeekFrom};

use crate::scanhost::plugin::content::{ContentError, LayerReader as Stream};

/// How much is asked of the host per read.
const CHUNK: u64 = 1 << 20;

pub struct LayerReader {
    stream: Stream,
    /// Unread bytes of the last chunk the host sent, from `pos` on.
    buffer: Vec<u8>,
    pos: usize,
    /// Bytes of the stream consumed so far: read or skipped. The tar
    /// reader takes its position from what `seek` returns.
    offset: u64,
    /// The first error the host answered.
    error: Option<ContentError>,
}

impl LayerReader {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            pos: 0,
            offset: 0,
            error: None,
        }
    }

    /// The content error that ended reading, if one did.
    pub fn take_error(&mut self) -> Option<ContentError> {
        self.error.take()
    }

    /// Reads the rest of the layer on the host and checks its digests.
    pub fn finish(&mut self) -> Result<(), ContentError> {
        self.stream.finish()
    }

    fn fail(&mut self, err: ContentError) -> io::Error {
        let message = match &err {
            ContentError::NotFound(m) | ContentError::Invalid(m) | ContentError::Io(m) => m.clone(),
        };
        self.error.get_or_insert(err);
        io::Error::other(message)
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buffer.len() {
            match self.stream.read(CHUNK) {
                Ok(chunk) => {
                    self.buffer = chunk;
                    self.pos = 0;
                }
                Err(err) => return Err(self.fail(err)),
            }
        }
        let n = buf.len().min(self.buffer.len() - self.pos);
        buf[..n].copy_from_slice(&self.buffer[self.pos..self.pos + n]);
        self.pos += n;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Seek for LayerReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(offset) = pos else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a layer stream only seeks forward",
            ));
        };
        let mut left = u64::try_from(offset).map_err(|_| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "a layer stream only seeks forward",
            )
        })?;

        self.offset += left;
        let buffered = (self.buffer.len() - self.pos) as u64;
        let from_buffer = left.min(buffered);
        self.pos += from_buffer as usize;
        left -= from_buffer;
        while left > 0 {
            match self.stream.skip(left) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => left -= n,
                Err(err) => return Err(self.fail(err)),
            }
        }
        Ok(self.offset)
    }
}
