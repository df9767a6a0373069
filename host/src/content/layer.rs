//! A layer blob as a verified stream of its uncompressed tar.
//!
//! The compression is read from the blob's first bytes, not from the media
//! type, which registries and tools get wrong: gzip (every member of a
//! multi-member file), zstd, or none. Both sides are hashed as they pass:
//! the compressed bytes against the layer digest, the uncompressed ones
//! against the diff_id. The check happens when the stream ends; until then
//! only a bounded buffer of the layer is in memory.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;

use super::ContentError;
use super::digest::{Digest, HashingReader};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compressed side: the blob, hashed as it is read.
type Compressed = HashingReader<BufReader<Box<dyn Read + Send>>>;

enum Decoder {
    Plain(Compressed),
    Gzip(Box<MultiGzDecoder<BufReader<Compressed>>>),
    Zstd(zstd::Decoder<'static, BufReader<Compressed>>),
}

impl Decoder {
    fn compressed(&mut self) -> &mut Compressed {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.get_mut().get_mut(),
            Decoder::Zstd(d) => d.get_mut().get_mut(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Decoder::Plain(_) => "tar",
            Decoder::Gzip(_) => "gzip",
            Decoder::Zstd(_) => "zstd",
        }
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// The uncompressed stream of one layer, verified as it is read.
pub struct LayerStream {
    digest: Digest,
    diff_id: Digest,
    /// The uncompressed side, hashed as it is read.
    stream: HashingReader<Decoder>,
    /// Set once the end was reached and both digests matched.
    verified: bool,
}

impl LayerStream {
    /// Wraps the blob `reader` of the layer `digest`, whose uncompressed
    /// tar has the digest `diff_id`.
    pub fn new(
        digest: Digest,
        diff_id: Digest,
        reader: Box<dyn Read + Send>,
    ) -> Result<Self, ContentError> {
        let mut buffered = BufReader::with_capacity(256 << 10, reader);
        let available = buffered
            .fill_buf()
            .map_err(|source| ContentError::io(&digest, source))?;
        let head = available[..available.len().min(4)].to_vec();
        let compressed = HashingReader::new(buffered, digest.algorithm());
        let decoder = if head.starts_with(GZIP_MAGIC) {
            Decoder::Gzip(Box::new(MultiGzDecoder::new(BufReader::new(compressed))))
        } else if head.starts_with(ZSTD_MAGIC) {
            let decoder = zstd::Decoder::with_buffer(BufReader::new(compressed))
                .map_err(|source| ContentError::io(&digest, source))?;
            Decoder::Zstd(decoder)
        } else {
            Decoder::Plain(compressed)
        };
        let algorithm = diff_id.algorithm();
        Ok(Self {
            digest,
            diff_id,
            stream: HashingReader::new(decoder, algorithm),
            verified: false,
        })
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Up to `len` bytes; empty at the end, once both digests matched.
    pub fn read_chunk(&mut self, len: usize) -> Result<Vec<u8>, ContentError> {
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            let n = self.read_some(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        if filled == 0 && len > 0 {
            self.finish()?;
        }
        Ok(buf)
    }

    /// Passes over up to `len` bytes; returns how many (0 at the end).
    pub fn skip(&mut self, len: u64) -> Result<u64, ContentError> {
        let mut buf = [0u8; 64 << 10];
        let mut skipped = 0;
        while skipped < len {
            let want = usize::try_from(len - skipped)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = self.read_some(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            skipped += n as u64;
        }
        if skipped == 0 && len > 0 {
            self.finish()?;
        }
        Ok(skipped)
    }

    /// Reads what is left and checks both digests.
    pub fn finish(&mut self) -> Result<(), ContentError> {
        if self.verified {
            return Ok(());
        }
        let mut buf = [0u8; 64 << 10];
        while self.read_some(&mut buf)? > 0 {}

        // A decoder may stop at the end of its data before the end of the
        // blob: whatever follows is still part of what the digest covers.
        let compressed = self.stream_decoder().compressed();
        let layer = compressed
            .drain()
            .map_err(|source| ContentError::io(&self.digest, source))?;
        if layer != self.digest {
            return Err(ContentError::invalid(
                &self.digest,
                format!("the blob's content has the digest {layer}"),
            ));
        }
        let uncompressed = self.stream_digest();
        if uncompressed != self.diff_id {
            return Err(ContentError::invalid(
                &self.digest,
                format!(
                    "the uncompressed layer has the digest {uncompressed}, but the image \
                     config gives the diff_id {}",
                    self.diff_id
                ),
            ));
        }
        self.verified = true;
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, ContentError> {
        self.stream.read(buf).map_err(|err| {
            if self.stream_decoder().compressed().failed {
                ContentError::io(&self.digest, err)
            } else {
                let format = self.stream_decoder().name();
                ContentError::invalid(&self.digest, format!("corrupt {format} stream: {err}"))
            }
        })
    }

    fn stream_decoder(&mut self) -> &mut Decoder {
        self.stream.get_mut()
    }

    fn stream_digest(&mut self) -> Digest {
        self.stream.digest()
    }
}
