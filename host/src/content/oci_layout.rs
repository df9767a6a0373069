//! OCI image layouts: a directory (`oci-layout`, `index.json`, `blobs/`)
//! or the same packed in a tar file (an oci-archive, as skopeo writes it).
//!
//! An archive is not unpacked: its entries are indexed once (name, offset,
//! size) and each blob is read in place.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use scanhost_image::oci::{Descriptor, Index};

use super::{BlobStore, ContentError, Digest};

/// The largest `index.json` read.
const MAX_INDEX: u64 = 16 << 20;

/// The annotation that names an image in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout, on disk or in an archive.
pub struct OciLayout {
    path: PathBuf,
    kind: Kind,
    /// The top-level `index.json`.
    index: Index,
}

enum Kind {
    Dir,
    /// Blob path in the archive -> (offset, size) of its data.
    Archive(HashMap<String, (u64, u64)>),
}

/// Why a path is not a usable OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl OciLayout {
    /// Opens the layout directory or archive at `path`.
    pub fn open(path: &Path) -> Result<Self, LayoutError> {
        let io_error = |source| LayoutError::Io {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |reason: String| LayoutError::Invalid {
            path: path.to_path_buf(),
            reason: format!("not an OCI image layout: {reason}"),
        };

        let metadata = std::fs::metadata(path).map_err(io_error)?;
        let (kind, index_bytes) = if metadata.is_dir() {
            if !path.join("oci-layout").is_file() {
                return Err(invalid("no oci-layout file".to_string()));
            }
            let mut bytes = Vec::new();
            open_regular(&path.join("index.json"))
                .and_then(|file| file.take(MAX_INDEX + 1).read_to_end(&mut bytes))
                .map_err(io_error)?;
            if bytes.len() as u64 > MAX_INDEX {
                return Err(invalid(format!(
                    "index.json is larger than {MAX_INDEX} bytes"
                )));
            }
            (Kind::Dir, bytes)
        } else {
            // The tar reader's own message quotes the file's first bytes.
            let entries = index_archive(path).map_err(|err| match err.kind() {
                io::ErrorKind::Other | io::ErrorKind::InvalidData => {
                    invalid("not a directory, nor a tar archive".to_string())
                }
                _ => io_error(err),
            })?;
            if !entries.contains_key("oci-layout") {
                return Err(invalid("no oci-layout entry in the archive".to_string()));
            }
            let &(offset, size) = entries
                .get("index.json")
                .ok_or_else(|| invalid("no index.json entry in the archive".to_string()))?;
            let bytes = read_range(path, offset, size).map_err(io_error)?;
            (Kind::Archive(entries), bytes)
        };

        let index = match scanhost_image::oci::parse_document(&index_bytes) {
            Ok(scanhost_image::oci::Document::Index(index)) => index,
            Ok(_) => {
                return Err(invalid(
                    "index.json is a manifest, not an index".to_string(),
                ));
            }
            Err(err) => return Err(invalid(format!("index.json: {err}"))),
        };
        Ok(Self {
            path: path.to_path_buf(),
            kind,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images the layout's `index.json` lists.
    pub fn images(&self) -> &[Descriptor] {
        &self.index.manifests
    }

    /// The image `selector` names: a digest (`sha256:...`), a full
    /// reference, or a tag, matched against each image's
    /// `org.opencontainers.image.ref.name`. Without a selector the layout
    /// must hold exactly one image.
    pub fn select(&self, selector: Option<&str>) -> Result<&Descriptor, LayoutError> {
        let images = self.images();
        let found: Vec<&Descriptor> = match selector {
            None => images.iter().collect(),
            Some(selector) => images
                .iter()
                .filter(|d| {
                    d.digest == selector
                        || ref_name(d)
                            .is_some_and(|name| name == selector || tag_of(name) == Some(selector))
                })
                .collect(),
        };
        match found.as_slice() {
            [one] => Ok(one),
            _ => {
                let names: Vec<String> = images
                    .iter()
                    .map(|d| match ref_name(d) {
                        Some(name) => format!("{name} ({})", d.digest),
                        None => d.digest.clone(),
                    })
                    .collect();
                let reason = match (selector, found.len()) {
                    (None, 0) => "index.json lists no image".to_string(),
                    (None, _) => format!(
                        "it holds {} images, select one with PATH:TAG or PATH@DIGEST: {}",
                        images.len(),
                        names.join(", ")
                    ),
                    (Some(selector), 0) => {
                        format!("no image {selector:?}; it holds: {}", names.join(", "))
                    }
                    (Some(selector), _) => {
                        format!("{selector:?} names several images: {}", names.join(", "))
                    }
                };
                Err(LayoutError::Invalid {
                    path: self.path.clone(),
                    reason,
                })
            }
        }
    }

    fn blob_path(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm_name(), digest.hex())
    }
}

impl BlobStore for OciLayout {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError> {
        let name = Self::blob_path(digest);
        match &self.kind {
            Kind::Dir => match open_regular(&self.path.join(&name)) {
                Ok(file) => Ok(Box::new(file)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                    digest: digest.to_string(),
                }),
                Err(err) if err.kind() == io::ErrorKind::InvalidInput => {
                    Err(ContentError::invalid(digest, err.to_string()))
                }
                Err(err) => Err(ContentError::io(digest, err)),
            },
            Kind::Archive(entries) => {
                let &(offset, size) = entries.get(&name).ok_or_else(|| ContentError::NotFound {
                    digest: digest.to_string(),
                })?;
                let mut file =
                    open_regular(&self.path).map_err(|err| ContentError::io(digest, err))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|err| ContentError::io(digest, err))?;
                Ok(Box::new(file.take(size)))
            }
        }
    }
}

/// Opens `path` for reading when it is a regular file, and only then: a
/// symlink is not followed (it could lead out of the layout, and a blob's
/// bytes end up quoted in errors and logs), and a FIFO or device is
/// refused without blocking in `open`.
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a symlink, not a regular file", path.display()),
                )
            } else {
                err
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// The name `index.json` gives the image, if any.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor.annotations.get(REF_NAME).map(String::as_str)
}

/// The tag of a reference: what follows the last `:` after the last `/`,
/// or the whole name when it is only a tag (as skopeo writes it).
fn tag_of(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next().unwrap_or(name);
    Some(last.rsplit_once(':').map_or(last, |(_, tag)| tag))
}

/// Lists the regular files of the tar at `path`: name -> (offset, size).
fn index_archive(path: &Path) -> io::Result<HashMap<String, (u64, u64)>> {
    let mut archive = tar::Archive::new(open_regular(path)?);
    let mut entries = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_string();
        entries.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(entries)
}

fn read_range(path: &Path, offset: u64, size: u64) -> io::Result<Vec<u8>> {
    if size > MAX_INDEX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("index.json is larger than {MAX_INDEX} bytes"),
        ));
    }
    let mut file = open_regular(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(size).read_to_end(&mut bytes)?;
    Ok(bytes)
}
