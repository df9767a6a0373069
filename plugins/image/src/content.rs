//! Where the blobs of an image come from, and one layer of it as the
//! `Read + Seek` that [`Overlay::apply_layer`] takes.
//!
//! [`Content`] and [`LayerStream`] are the image's content as a plugin
//! gets it through the `content` import of the scanner contract: a blob by
//! digest, and each layer as an uncompressed stream that reads, skips
//! forward and, at its end, checks the layer's digests. A plugin
//! implements them for its own bindings of that import with
//! [`contract_content!`](crate::contract_content); [`read_image`] does the
//! rest.
//!
//! [`StreamReader`] turns a [`LayerStream`] into the reader the overlay
//! needs. A forward seek becomes [`LayerStream::skip`], so the bytes of
//! files nobody keeps are never copied into the plugin; any other seek is
//! refused, and the overlay makes none. An error of the stream reaches the
//! tar reader as an `io::Error`, which loses what it was, so the first one
//! is also kept whole: [`read_image`] reports it rather than the tar fault
//! it caused.
//!
//! This module neither checks digests nor decompresses: both are the
//! stream's work, done by the host.
//!
//! [`Overlay::apply_layer`]: crate::overlay::Overlay::apply_layer
//! [`read_image`]: crate::read_image

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

/// The blobs of an image, by digest.
///
/// `read_blob` serves the documents (indexes, manifests, configs) and
/// `open_layer` the layers. An error should say whether a retry can help
/// (the blob is not there yet) or not (it is there but wrong); only the
/// implementation knows, so [`read_image`](crate::read_image) hands its
/// errors back unchanged.
///
/// The example of [`read_image`](crate::read_image) implements it over
/// blobs held in memory.
pub trait Content {
    /// Why a blob could not be served.
    type Error: fmt::Display;
    /// A layer being read.
    type Layer: LayerStream<Error = Self::Error>;

    /// The bytes of the blob `digest`, failing when it has more than
    /// `max`.
    fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, Self::Error>;

    /// The uncompressed tar of the layer `digest`, whose digest once
    /// uncompressed is `diff_id` (from the image config).
    fn open_layer(&self, digest: &str, diff_id: &str) -> Result<Self::Layer, Self::Error>;

    /// A value an earlier scan kept under `key` with [`Content::keep`], if
    /// it is still there. By default nothing is kept.
    fn cached(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }

    /// Keeps `value` under `key` for later scans, which may or may not
    /// find it. By default nothing is kept.
    fn keep(&self, _key: &str, _value: &[u8]) {}
}

/// The uncompressed tar of one layer, read once from its start.
pub trait LayerStream {
    /// Why the layer could not be read.
    type Error: fmt::Display;

    /// The next bytes, at most `len` of them; none at the end of the
    /// stream.
    fn read(&mut self, len: u64) -> Result<Vec<u8>, Self::Error>;

    /// Passes over the next bytes, at most `len` of them, without handing
    /// them over; returns how many were passed over, 0 at the end.
    fn skip(&mut self, len: u64) -> Result<u64, Self::Error>;

    /// Reads what is left of the layer and checks it against its digests.
    /// What was read from a layer can only be trusted once this succeeds.
    fn finish(&mut self) -> Result<(), Self::Error>;
}

/// The most bytes asked of a stream at once.
const CHUNK: u64 = 1 << 20;

/// A [`LayerStream`] as `Read + Seek`, seeking forward only, keeping the
/// first error of the stream.
pub(crate) struct StreamReader<S: LayerStream> {
    stream: S,
    /// The last bytes the stream gave; those before `next` have been used.
    chunk: Vec<u8>,
    /// Invariant: `next <= chunk.len()`.
    next: usize,
    /// Bytes of the stream consumed, read or passed over: what `seek`
    /// returns.
    position: u64,
    /// The first error the stream returned, until taken.
    error: Option<S::Error>,
}

impl<S: LayerStream> StreamReader<S> {
    pub(crate) fn new(stream: S) -> Self {
        StreamReader {
            stream,
            chunk: Vec::new(),
            next: 0,
            position: 0,
            error: None,
        }
    }

    /// The first error the stream returned, if reading met one.
    pub(crate) fn take_error(&mut self) -> Option<S::Error> {
        self.error.take()
    }

    /// Has the stream read the rest of the layer and check its digests.
    pub(crate) fn finish(&mut self) -> Result<(), S::Error> {
        self.stream.finish()
    }

    /// Keeps the stream's error, if it is the first, and gives the
    /// `io::Error` that carries its message through the tar reader.
    fn failed(&mut self, err: S::Error) -> io::Error {
        let io_error = io::Error::other(err.to_string());
        self.error.get_or_insert(err);
        io_error
    }
}

impl<S: LayerStream> Read for StreamReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.next == self.chunk.len() {
            // An empty chunk is the end of the stream, and reads as 0.
            self.chunk = self.stream.read(CHUNK).map_err(|err| self.failed(err))?;
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

impl<S: LayerStream> Seek for StreamReader<S> {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let forward = match target {
            SeekFrom::Current(offset) => u64::try_from(offset).ok(),
            _ => None,
        };
        let Some(forward) = forward else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{target:?}: a layer stream only seeks forward"),
            ));
        };

        // What is left of the chunk already here is passed over first.
        let buffered = forward.min((self.chunk.len() - self.next) as u64);
        self.next += buffered as usize;
        self.position += buffered;

        let mut remaining = forward - buffered;
        while remaining > 0 {
            let skipped = self
                .stream
                .skip(remaining)
                .map_err(|err| self.failed(err))?;
            if skipped == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // A stream must pass over no more than asked; one that says it
            // did must not make the count wrap.
            let skipped = skipped.min(remaining);
            remaining -= skipped;
            self.position += skipped;
        }
        Ok(self.position)
    }
}

/// Content held in memory, for the tests: blobs by digest, each layer a
/// tar, with counts of what the layers were asked.
#[cfg(test)]
pub(crate) mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, HashSet};
    use std::fmt;
    use std::rc::Rc;

    use super::{Content, LayerStream};

    /// Blobs by digest. A layer listed in `mismatched` reads as it is but
    /// fails `finish`, as a blob that does not match its digest does; one
    /// listed in `vanishing` fails the read or skip that reaches its last
    /// byte with `NotFound`, as a blob removed while it is read.
    #[derive(Default)]
    pub(crate) struct Memory {
        pub(crate) blobs: HashMap<String, Vec<u8>>,
        pub(crate) mismatched: HashSet<String>,
        pub(crate) vanishing: HashSet<String>,
        /// Shared with every layer opened.
        pub(crate) counts: Rc<Counts>,
        /// What `keep` was given, when it keeps anything.
        pub(crate) cache: Option<RefCell<HashMap<String, Vec<u8>>>>,
    }

    /// What the layers opened so far were asked, all of them together.
    #[derive(Debug, Default)]
    pub(crate) struct Counts {
        /// Layers opened.
        pub(crate) opens: Cell<u64>,
        /// The layer of each `read`, in order.
        pub(crate) reads: RefCell<Vec<String>>,
        /// Bytes handed over by `read`.
        pub(crate) read: Cell<u64>,
        /// Calls to `skip` that passed over something.
        pub(crate) skips: Cell<u64>,
        /// Bytes passed over by `skip`.
        pub(crate) skipped: Cell<u64>,
        /// Calls to `finish`.
        pub(crate) finishes: Cell<u64>,
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum MemoryError {
        NotFound(String),
        Invalid(String),
    }

    impl fmt::Display for MemoryError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                MemoryError::NotFound(digest) => write!(f, "blob {digest} not found"),
                MemoryError::Invalid(reason) => f.write_str(reason),
            }
        }
    }

    /// A layer of [`Memory`] being read.
    pub(crate) struct MemoryLayer {
        digest: String,
        bytes: Vec<u8>,
        /// Invariant: `position <= bytes.len()`.
        position: usize,
        mismatched: bool,
        vanishing: bool,
        counts: Rc<Counts>,
    }

    impl MemoryLayer {
        pub(crate) fn new(bytes: Vec<u8>, counts: Rc<Counts>) -> Self {
            MemoryLayer {
                digest: "sha256:layer".to_string(),
                bytes,
                position: 0,
                mismatched: false,
                vanishing: false,
                counts,
            }
        }

        /// Moves on by up to `len` bytes; how many.
        fn advance(&mut self, len: u64) -> Result<usize, MemoryError> {
            let left = self.bytes.len() - self.position;
            let n = usize::try_from(len).map_or(left, |len| len.min(left));
            if self.vanishing && n == left {
                return Err(MemoryError::NotFound(self.digest.clone()));
            }
            self.position += n;
            Ok(n)
        }
    }

    impl Content for Memory {
        type Error = MemoryError;
        type Layer = MemoryLayer;

        fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, MemoryError> {
            let bytes = self
                .blobs
                .get(digest)
                .ok_or_else(|| MemoryError::NotFound(digest.to_string()))?;
            if bytes.len() as u64 > max {
                return Err(MemoryError::Invalid(format!("{digest}: over {max} bytes")));
            }
            Ok(bytes.clone())
        }

        fn open_layer(&self, digest: &str, _diff_id: &str) -> Result<MemoryLayer, MemoryError> {
            let bytes = self
                .blobs
                .get(digest)
                .ok_or_else(|| MemoryError::NotFound(digest.to_string()))?;
            self.counts.opens.set(self.counts.opens.get() + 1);
            Ok(MemoryLayer {
                digest: digest.to_string(),
                mismatched: self.mismatched.contains(digest),
                vanishing: self.vanishing.contains(digest),
                ..MemoryLayer::new(bytes.clone(), self.counts.clone())
            })
        }

        fn cached(&self, key: &str) -> Option<Vec<u8>> {
            self.cache.as_ref()?.borrow().get(key).cloned()
        }

        fn keep(&self, key: &str, value: &[u8]) {
            if let Some(cache) = &self.cache {
                cache.borrow_mut().insert(key.to_owned(), value.to_vec());
            }
        }
    }

    impl LayerStream for MemoryLayer {
        type Error = MemoryError;

        fn read(&mut self, len: u64) -> Result<Vec<u8>, MemoryError> {
            let start = self.position;
            let n = self.advance(len)?;
            self.counts.read.set(self.counts.read.get() + n as u64);
            self.counts.reads.borrow_mut().push(self.digest.clone());
            Ok(self.bytes[start..start + n].to_vec())
        }

        fn skip(&mut self, len: u64) -> Result<u64, MemoryError> {
            let n = self.advance(len)? as u64;
            if n > 0 {
                self.counts.skips.set(self.counts.skips.get() + 1);
                self.counts.skipped.set(self.counts.skipped.get() + n);
            }
            Ok(n)
        }

        fn finish(&mut self) -> Result<(), MemoryError> {
            self.counts.finishes.set(self.counts.finishes.get() + 1);
            self.position = self.bytes.len();
            if self.mismatched {
                return Err(MemoryError::Invalid(format!(
                    "layer {} does not match its digest",
                    self.digest
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::memory::{Counts, MemoryError, MemoryLayer};
    use super::*;

    /// `len` bytes counting up from 0, wrapping.
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    fn reader(bytes: Vec<u8>) -> (StreamReader<MemoryLayer>, Rc<Counts>) {
        let counts = Rc::new(Counts::default());
        let reader = StreamReader::new(MemoryLayer::new(bytes, counts.clone()));
        (reader, counts)
    }

    #[test]
    fn reads_come_from_chunks_and_end_at_the_end() {
        let len = CHUNK as usize + 10;
        let (mut reader, counts) = reader(bytes(len));
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, bytes(len));
        assert_eq!(counts.read.get(), len as u64);
        assert_eq!(reader.read(&mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn a_forward_seek_uses_the_chunk_then_skips() {
        let len = 3 * CHUNK as usize;
        let (mut reader, counts) = reader(bytes(len));
        let mut first = [0; 10];
        reader.read_exact(&mut first).unwrap();

        // The rest of the first chunk is passed over, then one more chunk
        // is skipped on the stream's side.
        let target = 2 * CHUNK + 5;
        let position = reader.seek(SeekFrom::Current(target as i64 - 10)).unwrap();
        assert_eq!(position, target);
        assert_eq!(counts.read.get(), CHUNK);
        assert_eq!(counts.skipped.get(), CHUNK + 5);

        let mut next = [0; 1];
        reader.read_exact(&mut next).unwrap();
        assert_eq!(next[0], target as u8);
        assert_eq!(reader.stream_position().unwrap(), target + 1);
    }

    #[test]
    fn only_forward_relative_seeks_are_served() {
        let (mut reader, counts) = reader(bytes(100));
        for target in [SeekFrom::Start(0), SeekFrom::End(0), SeekFrom::Current(-1)] {
            let err = reader.seek(target).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{target:?}");
        }
        assert_eq!(counts.skips.get(), 0);
        assert!(reader.take_error().is_none());
    }

    #[test]
    fn a_seek_past_the_end_is_an_unexpected_end() {
        let (mut reader, _) = reader(bytes(100));
        let err = reader.seek(SeekFrom::Current(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A stream whose `read` and `skip` fail, the n-th time with the error
    /// `Invalid(n)`.
    struct Failing(u32);

    impl LayerStream for Failing {
        type Error = MemoryError;

        fn read(&mut self, _: u64) -> Result<Vec<u8>, MemoryError> {
            self.0 += 1;
            Err(MemoryError::Invalid(self.0.to_string()))
        }

        fn skip(&mut self, _: u64) -> Result<u64, MemoryError> {
            self.0 += 1;
            Err(MemoryError::Invalid(self.0.to_string()))
        }

        fn finish(&mut self) -> Result<(), MemoryError> {
            Ok(())
        }
    }

    // A second stream error must not replace the first, the one that stopped reading.
    #[test]
    fn the_first_stream_error_is_kept() {
        let mut reader = StreamReader::new(Failing(0));
        let err = reader.read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.to_string(), "1");
        reader.seek(SeekFrom::Current(4)).unwrap_err();

        let kept = reader.take_error();
        assert_eq!(kept, Some(MemoryError::Invalid("1".to_string())));
        assert!(reader.take_error().is_none());
    }

    /// A stream that says it passed over more than it was asked.
    struct Overskipping;

    impl LayerStream for Overskipping {
        type Error = MemoryError;

        fn read(&mut self, _: u64) -> Result<Vec<u8>, MemoryError> {
            Ok(Vec::new())
        }

        fn skip(&mut self, len: u64) -> Result<u64, MemoryError> {
            Ok(len + 100)
        }

        fn finish(&mut self) -> Result<(), MemoryError> {
            Ok(())
        }
    }

    // A stream that says it skipped more than asked must not move the position past the target.
    #[test]
    fn a_skip_over_the_length_asked_counts_as_the_length() {
        let mut reader = StreamReader::new(Overskipping);
        assert_eq!(reader.seek(SeekFrom::Current(7)).unwrap(), 7);
    }
}
