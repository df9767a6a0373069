//! The layer stream as the tar reader sees it.
//!
//! [`Stream`] stands between the caller's reader and the tar reader for
//! three reasons:
//! - It keeps the seeks within what the caller promises: the image
//!   scanner's reader skips forward on the host's side and can do nothing
//!   else, so only `SeekFrom::Current(n)` with `n >= 0` is passed on, and
//!   the position the tar reader asks for is counted here rather than
//!   taken from the caller.
//! - It notices a tar that ends inside the data of a skipped entry.
//!   Skipping past the end of a stream is not an error for most readers,
//!   and the tar reader takes an end of stream where a header should be
//!   for the end of the archive; a truncated layer would silently lose
//!   every entry after the cut. So a skip of `n` bytes skips `n - 1` and
//!   reads the last one, which must be there.
//! - It remembers whether the caller's reader failed, so that a read
//!   error (a blob that went missing) is told apart from a corrupt tar,
//!   since the tar reader reports both as `io::Error`.

use std::io::{self, Read, Seek, SeekFrom};

/// A reader and forward-only skipper over a layer's tar.
#[derive(Debug)]
pub(super) struct Stream<R> {
    inner: R,
    /// Bytes read or skipped so far: the offset in the tar of the next
    /// byte `inner` gives.
    position: u64,
    /// Whether `inner` returned an error; an error then passing through
    /// the tar reader is the caller's, not a fault of the tar.
    failed: bool,
}

impl<R: Read + Seek> Stream<R> {
    pub(super) fn new(inner: R) -> Self {
        Stream {
            inner,
            position: 0,
            failed: false,
        }
    }

    /// Whether the caller's reader failed.
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    fn fail(&mut self, err: io::Error) -> io::Error {
        self.failed = true;
        err
    }
}

impl<R: Read + Seek> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.position += n as u64;
                Ok(n)
            }
            Err(err) => Err(self.fail(err)),
        }
    }
}

impl<R: Read + Seek> Seek for Stream<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        // The tar reader skips with `Current(n)`, `n >= 0`, and nothing
        // else; anything other would be a change in it to notice.
        let skip = match pos {
            SeekFrom::Current(n) => u64::try_from(n).ok(),
            _ => None,
        };
        let Some(skip) = skip else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{pos:?}: a layer is only skipped forward"),
            ));
        };
        if skip == 0 {
            return Ok(self.position);
        }

        if skip > 1 {
            // `skip - 1` fits in an i64: `skip` came from one.
            let before_last = SeekFrom::Current((skip - 1) as i64);
            if let Err(err) = self.inner.seek(before_last) {
                return Err(self.fail(err));
            }
        }
        let mut last = [0u8];
        loop {
            match self.inner.read(&mut last) {
                Ok(1) => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the tar ends inside an entry, before offset {}",
                            self.position + skip
                        ),
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.fail(err)),
            }
        }
        self.position += skip;
        Ok(self.position)
    }
}
