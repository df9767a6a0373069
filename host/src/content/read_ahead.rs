//! A layer decompressed and checked ahead of its reader, on a thread of
//! its own.
//!
//! Decompressing and hashing a layer is most of the work of an image
//! scan, and the plugin that parses the tar runs on another thread: with
//! read-ahead the two overlap, and the layers a plugin has open at once
//! are decompressed side by side. What is decompressed ahead waits in a
//! bounded queue (`QUEUED` chunks of at most `CHUNK` bytes), so memory
//! stays small whatever the layer's size; a reader that is dropped stops
//! its thread at its next chunk.
//!
//! At most `MAX_THREADS` layers of one scan are read ahead; the others are
//! read on the caller's thread, as [`LayerStream`] does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::{ContentError, Digest, LayerStream};

/// Bytes decompressed per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks decompressed ahead of the reader, per layer.
const QUEUED: usize = 4;
/// Layers of one scan read ahead at once.
pub const MAX_THREADS: usize = 4;

/// A layer as the plugin reads it.
pub struct ReadAhead {
    digest: Digest,
    source: Source,
}

enum Source {
    /// Read on the caller's thread.
    Inline(Box<LayerStream>),
    /// Decompressed on a thread of its own.
    Thread {
        chunks: Receiver<Message>,
        /// What is left of the last chunk received, from `at`.
        chunk: Vec<u8>,
        at: usize,
        /// How the stream ended, once it has: `Ok` when both digests
        /// matched, else why not.
        end: Option<Result<(), ContentError>>,
        /// Held while the thread may run: counts the scan's threads.
        _slot: Slot,
    },
}

enum Message {
    Data(Vec<u8>),
    /// The end of the layer, its digests checked, or the failure.
    End(Result<(), ContentError>),
}

/// The read-ahead threads of one scan.
#[derive(Clone, Default)]
pub struct Threads(Arc<AtomicUsize>);

/// One of a scan's read-ahead threads, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Threads {
    fn take(&self) -> Option<Slot> {
        let taken = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_THREADS).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Slot(self.0.clone()))
    }
}

impl ReadAhead {
    /// Reads `stream` ahead on a thread of its own when `threads` has one
    /// left, else on the caller's thread.
    pub fn start(stream: LayerStream, threads: &Threads) -> ReadAhead {
        let digest = stream.digest().clone();
        let Some(slot) = threads.take() else {
            return ReadAhead {
                digest,
                source: Source::Inline(Box::new(stream)),
            };
        };
        let (tx, chunks) = sync_channel(QUEUED);
        let spawned = std::thread::Builder::new()
            .name("scanhost-layer".into())
            .spawn(move || produce(stream, tx));
        if let Err(err) = spawned {
            // No thread to be had: the layer cannot be read now.
            let (tx, chunks) = sync_channel(1);
            let _ = tx.send(Message::End(Err(ContentError::io(&digest, err))));
            return ReadAhead::threaded(digest, chunks, slot);
        }
        ReadAhead::threaded(digest, chunks, slot)
    }

    fn threaded(digest: Digest, chunks: Receiver<Message>, slot: Slot) -> ReadAhead {
        ReadAhead {
            digest,
            source: Source::Thread {
                chunks,
                chunk: Vec::new(),
                at: 0,
                end: None,
                _slot: slot,
            },
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Up to `len` bytes; empty at the end, once both digests matched.
    pub fn read_chunk(&mut self, len: usize) -> Result<Vec<u8>, ContentError> {
        if let Source::Inline(stream) = &mut self.source {
            return stream.read_chunk(len);
        }
        let mut out = Vec::with_capacity(len.min(CHUNK));
        while out.len() < len {
            let available = self.available()?;
            if available.is_empty() {
                break;
            }
            let n = available.len().min(len - out.len());
            out.extend_from_slice(&available[..n]);
            self.consume(n);
        }
        Ok(out)
    }

    /// Passes over up to `len` bytes; returns how many (0 at the end).
    pub fn skip(&mut self, len: u64) -> Result<u64, ContentError> {
        if let Source::Inline(stream) = &mut self.source {
            return stream.skip(len);
        }
        let mut skipped = 0;
        while skipped < len {
            let available = self.available()?.len() as u64;
            if available == 0 {
                break;
            }
            let n = available.min(len - skipped);
            self.consume(n as usize);
            skipped += n;
        }
        Ok(skipped)
    }

    /// Reads what is left and checks both digests.
    pub fn finish(&mut self) -> Result<(), ContentError> {
        if let Source::Inline(stream) = &mut self.source {
            return stream.finish();
        }
        loop {
            let n = self.available()?.len();
            if n == 0 {
                return Ok(());
            }
            self.consume(n);
        }
    }

    /// The bytes received and not yet used: empty at the end of a layer
    /// whose digests matched; the failure of one whose did not.
    fn available(&mut self) -> Result<&[u8], ContentError> {
        let digest = self.digest.clone();
        let Source::Thread {
            chunks,
            chunk,
            at,
            end,
            ..
        } = &mut self.source
        else {
            return Ok(&[]);
        };
        while *at == chunk.len() && end.is_none() {
            match chunks.recv() {
                Ok(Message::Data(data)) => {
                    *chunk = data;
                    *at = 0;
                }
                Ok(Message::End(result)) => *end = Some(result),
                Err(_) => {
                    let stopped = std::io::Error::other("the layer's reader stopped");
                    *end = Some(Err(ContentError::io(&digest, stopped)));
                }
            }
        }
        match end {
            Some(Err(err)) if *at == chunk.len() => Err(err.clone()),
            _ => Ok(&chunk[*at..]),
        }
    }

    fn consume(&mut self, n: usize) {
        if let Source::Thread { at, .. } = &mut self.source {
            *at += n;
        }
    }
}

/// The thread's part: decompresses and checks the layer, chunk by chunk,
/// until the end or until the reader is gone.
fn produce(mut stream: LayerStream, tx: SyncSender<Message>) {
    loop {
        let message = match stream.read_chunk(CHUNK) {
            Ok(data) if data.is_empty() => Message::End(Ok(())),
            Ok(data) => Message::Data(data),
            Err(err) => Message::End(Err(err)),
        };
        let last = matches!(message, Message::End(_));
        if tx.send(message).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use sha2::{Digest as _, Sha256};

    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::parse(&format!("sha256:{:x}", Sha256::digest(bytes))).unwrap()
    }

    /// An uncompressed layer of `bytes`, whose diff_id is `diff_id`.
    fn stream(bytes: &[u8], diff_id: Digest) -> LayerStream {
        let reader = Box::new(Cursor::new(bytes.to_vec()));
        LayerStream::new(digest_of(bytes), diff_id, reader).unwrap()
    }

    fn layer(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_and_skips_give_the_bytes_of_the_layer_and_finish_checks_it() {
        let bytes = layer(3 * CHUNK + 123);
        let mut ahead = ReadAhead::start(stream(&bytes, digest_of(&bytes)), &Threads::default());
        assert!(matches!(ahead.source, Source::Thread { .. }));

        let mut seen = ahead.read_chunk(10).unwrap();
        assert_eq!(ahead.skip(CHUNK as u64).unwrap(), CHUNK as u64);
        seen.extend(ahead.read_chunk(2 * CHUNK).unwrap());
        assert_eq!(seen[..10], bytes[..10]);
        assert_eq!(seen[10..], bytes[10 + CHUNK..10 + 3 * CHUNK]);
        ahead.finish().unwrap();
        assert!(ahead.read_chunk(10).unwrap().is_empty());
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_fails_at_its_end() {
        let bytes = layer(CHUNK + 5);
        let wrong = digest_of(b"another layer");
        let mut ahead = ReadAhead::start(stream(&bytes, wrong), &Threads::default());

        let err = ahead.finish().unwrap_err();
        assert!(matches!(err, ContentError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("diff_id"), "{err}");
        // Asked again, it says the same.
        assert_eq!(ahead.finish().unwrap_err().to_string(), err.to_string());
    }

    #[test]
    fn layers_past_the_thread_cap_are_read_on_the_callers_thread() {
        let threads = Threads::default();
        let bytes = layer(100);
        let mut open: Vec<ReadAhead> = (0..=MAX_THREADS)
            .map(|_| ReadAhead::start(stream(&bytes, digest_of(&bytes)), &threads))
            .collect();
        assert!(matches!(open[MAX_THREADS].source, Source::Inline(_)));
        assert_eq!(open[MAX_THREADS].read_chunk(200).unwrap(), bytes);

        // A reader dropped gives its thread back.
        open.remove(0);
        let again = ReadAhead::start(stream(&bytes, digest_of(&bytes)), &threads);
        assert!(matches!(again.source, Source::Thread { .. }));
    }
}
