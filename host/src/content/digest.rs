//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and hashing readers.
//!
//! A digest that reaches the host from a plugin or a manifest is untrusted:
//! it becomes part of a file path in an OCI layout, so only the two
//! algorithms OCI registers, with exactly their number of lowercase hex
//! digits, are accepted.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

/// A validated content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// Lowercase hex, 64 digits for sha256, 128 for sha512.
    hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 hex digits> or sha512:<128 hex digits>")]
pub struct InvalidDigest(pub String);

impl Digest {
    pub fn parse(text: &str) -> Result<Self, InvalidDigest> {
        let invalid = || InvalidDigest(text.to_string());
        let (algorithm, hex) = text.split_once(':').ok_or_else(invalid)?;
        let (algorithm, len) = match algorithm {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(invalid()),
        };
        let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if hex.len() != len || !hex.chars().all(lower_hex) {
            return Err(invalid());
        }
        Ok(Self {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of `bytes` with the same algorithm as `self`.
    pub fn of_same_kind(&self, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(self.algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm_name(), self.hex)
    }
}

/// An incremental hash of one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, format!("{:x}", h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, format!("{:x}", h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// Hashes everything read through it, and remembers whether the reader
/// below failed, so that a decoder's error can be told from an I/O error.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    /// Bytes read so far.
    pub count: u64,
    /// Set when `inner` returned an error.
    pub failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
            failed: false,
        }
    }

    /// Reads what is left, then returns the digest of everything read.
    pub fn drain(&mut self) -> io::Result<Digest> {
        io::copy(self, &mut io::sink())?;
        Ok(self.digest())
    }

    /// The digest of what was read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => {
                self.failed = true;
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256_and_sha512() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
    }

    // A digest from an untrusted manifest must never become "../" in a path.
    #[test]
    fn refuses_anything_that_is_not_plain_hex() {
        for bad in [
            "sha256:../../etc/passwd",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("md5:{}", "a".repeat(32)),
            "sha256",
            "",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_what_is_read() {
        let mut reader = HashingReader::new(&b"hello"[..], Algorithm::Sha256);
        let digest = reader.drain().unwrap();
        assert_eq!(
            digest.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(reader.count, 5);
    }
}
