//! A container image's root filesystem, built from its layers as a
//! container runtime would unpack them, keeping only what the analyzers
//! read.
//!
//! [`Overlay::apply_layer`] takes the layers bottom first, each as an
//! uncompressed tar, and applies the changeset rules of the OCI image
//! spec:
//! - the topmost version of a path wins, and an entry of any kind replaces
//!   what a lower layer had at its path; a non-directory that replaces a
//!   directory hides that directory's whole lower subtree;
//! - `.wh.NAME` deletes NAME, and everything under it, from the lower
//!   layers; `.wh..wh..opq` in a directory hides everything the lower
//!   layers had in it. Neither ever touches an entry of its own layer,
//!   whatever the order of the tar, and neither appears as a file;
//! - an entry below a path whose lower version is not a directory (a file,
//!   or a symlink such as `lib -> usr/lib`) makes that path a directory:
//!   applying a layer never follows a symlink.
//!
//! Memory stays small whatever the size of the image: the overlay keeps
//! directories (so that paths resolve), symlinks, and the bytes of regular
//! files whose path the `wanted` function accepts, each up to 64 MiB.
//! Every other entry is noted only for what it hides below it, and its data
//! is skipped, never read. The tar is read once, front to back, and skipped
//! with forward seeks only.
//!
//! Entries that cannot be applied are skipped and reported in
//! [`Overlay::warnings`], naming the layer and the path: a path that climbs
//! out of the root (`../../etc/passwd`), a malformed whiteout, a path that
//! is not UTF-8 or is more than 256 components deep, a wanted file too
//! large to keep. Only a tar that cannot be read fails a layer.
//!
//! The result is a [`Root`]: the analyzers resolve symlinks in it with
//! [`scanhost_analyzers::resolve`] and read the files they need. A file
//! whose path is not wanted is absent from it. A wanted file whose bytes
//! were not kept (too large, or a hard link to a file that was not kept)
//! is there, and reading it fails with an error that says why.
//!
//! ```
//! use std::io::Cursor;
//! use scanhost_analyzers::Root;
//! use scanhost_image::overlay::Overlay;
//!
//! let mut tar = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_gnu();
//! header.set_size(10);
//! tar.append_data(&mut header, "etc/os-release", &b"ID=alpine\n"[..])?;
//! let layer = tar.into_inner()?;
//!
//! let mut overlay = Overlay::new(|path| path == "etc/os-release");
//! overlay.apply_layer("sha256:aa", Cursor::new(layer))?;
//! assert_eq!(overlay.read("etc/os-release")?, b"ID=alpine\n");
//! assert_eq!(overlay.layer_of("etc/os-release"), Some("sha256:aa"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod entry_path;
mod reader;
mod stream;
mod tree;

#[cfg(test)]
mod tests;

use std::io::{self, Read, Seek};

use scanhost_analyzers::{FileKind, Root};
use tar::Archive;

use reader::LayerReader;
use stream::Stream;
use tree::{Changes, Content, Dir, LayerId, Leaf, Node};

/// The root filesystem of the layers applied so far.
///
/// Invariants: `root` holds every directory and symlink of the merged
/// layers, and a regular file or other non-directory only at a path
/// `wanted` accepts; every node's layer indexes `layers`.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Which regular files to keep, by root-relative path.
    wanted: fn(&str) -> bool,
    /// The merged tree.
    root: Dir,
    /// Digests of the layers applied, bottom first.
    layers: Vec<String>,
    /// Faults handled while applying, each naming the layer and the path.
    warnings: Vec<String>,
}

/// What one layer changes, read from its tar: whatever the layers below,
/// so that it can be kept, by its diff_id, and applied to other images
/// that share the layer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerChanges {
    changes: Changes,
    /// The path and the fault of each entry that could not be applied.
    warnings: Vec<(String, String)>,
}

impl LayerChanges {
    /// A compact encoding, for [`LayerChanges::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding into memory fails only on types serde cannot encode,
        // which these are not.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// The changes [`LayerChanges::to_bytes`] encoded; none when `bytes`
    /// are not such an encoding.
    pub fn from_bytes(bytes: &[u8]) -> Option<LayerChanges> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Why a layer could not be applied. The overlay is then as it was before
/// the layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The layer is not a valid tar: a bad header, or it ends too soon.
    #[error("layer {digest}: not a valid tar: {reason}")]
    Corrupt {
        /// The digest of the layer.
        digest: String,
        /// The fault, as the tar reader put it, without the bytes of the
        /// layer it may quote.
        reason: String,
    },
    /// The reader given for the layer failed. `source` is its error,
    /// unchanged, so that a caller can recover its own error from inside
    /// it.
    #[error("layer {digest}: reading failed: {source}")]
    Read {
        /// The digest of the layer.
        digest: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
}

/// The tar reader's message up to the point where it starts quoting the
/// input (a field's bytes, an entry's name): a layer is untrusted, and its
/// bytes must not reach logs and APIs through an error message.
fn without_content(message: &str) -> String {
    let cut = [" `", " when getting", ": "]
        .iter()
        .filter_map(|marker| message.find(marker))
        .min()
        .unwrap_or(message.len());
    message[..cut]
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

impl Overlay {
    /// An empty root that will keep the regular files for which `wanted`
    /// returns true, given their root-relative path (`etc/os-release`).
    pub fn new(wanted: fn(&str) -> bool) -> Self {
        Overlay {
            wanted,
            root: Dir::default(),
            layers: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Applies one layer, given as an uncompressed tar, on top of those
    /// applied before: [`Overlay::read_layer`], then [`Overlay::apply`].
    /// When the layer fails, nothing of it is applied.
    pub fn apply_layer<R: Read + Seek>(
        &mut self,
        layer_digest: &str,
        tar: R,
    ) -> Result<(), LayerError> {
        let changes = self.read_layer(layer_digest, tar)?;
        self.apply(layer_digest, changes);
        Ok(())
    }

    /// Reads one layer, given as an uncompressed tar, into the changes it
    /// makes, which do not depend on the layers below: they can be kept
    /// (see [`LayerChanges::to_bytes`]) and applied again to another
    /// overlay with the same `wanted`.
    ///
    /// The tar is read once from its start. Data not needed is skipped
    /// with `SeekFrom::Current(n)`, `n >= 0`, followed by a read of one
    /// byte (which catches a tar that ends inside the skipped data); no
    /// other seek is made, and the position `seek` returns is not used.
    pub fn read_layer<R: Read + Seek>(
        &self,
        layer_digest: &str,
        tar: R,
    ) -> Result<LayerChanges, LayerError> {
        let mut results = self.read_layers(vec![(layer_digest, tar)]);
        results.remove(0)
    }

    /// Reads several layers at once, as [`Overlay::read_layer`] reads one:
    /// an entry of each in turn, so that a source that prepares them side
    /// by side (decompressing each on a thread of its own) is drained
    /// side by side. Returns the result of each, in order.
    pub fn read_layers<R: Read + Seek>(
        &self,
        layers: Vec<(&str, R)>,
    ) -> Vec<Result<LayerChanges, LayerError>> {
        let digests: Vec<&str> = layers.iter().map(|(digest, _)| *digest).collect();
        let mut archives: Vec<Archive<Stream<R>>> = layers
            .into_iter()
            .map(|(_, tar)| Archive::new(Stream::new(tar)))
            .collect();
        let mut readers: Vec<LayerReader> = digests
            .iter()
            .map(|_| LayerReader::new(self.wanted))
            .collect();
        let mut outcomes: Vec<Option<io::Result<()>>> = digests.iter().map(|_| None).collect();
        {
            let mut entries: Vec<_> = archives
                .iter_mut()
                .map(|archive| archive.entries_with_seek())
                .collect();
            while outcomes.iter().any(Option::is_none) {
                for (i, outcome) in outcomes.iter_mut().enumerate() {
                    if outcome.is_some() {
                        continue;
                    }
                    let step = match &mut entries[i] {
                        Ok(entries) => match entries.next() {
                            None => Some(Ok(())),
                            Some(Err(err)) => Some(Err(err)),
                            Some(Ok(mut entry)) => readers[i].entry(&mut entry).err().map(Err),
                        },
                        Err(err) => Some(Err(io::Error::new(err.kind(), err.to_string()))),
                    };
                    *outcome = step;
                }
            }
        }

        let parts = archives.into_iter().zip(readers).zip(outcomes);
        parts
            .zip(digests)
            .map(|(((archive, reader), outcome), digest)| {
                let (changes, warnings) = reader.finish();
                match outcome {
                    Some(Err(err)) if archive.into_inner().failed() => Err(LayerError::Read {
                        digest: digest.to_string(),
                        source: err,
                    }),
                    Some(Err(err)) => Err(LayerError::Corrupt {
                        digest: digest.to_string(),
                        reason: without_content(&err.to_string()),
                    }),
                    _ => Ok(LayerChanges { changes, warnings }),
                }
            })
            .collect()
    }

    /// Applies the changes of the layer `layer_digest` on top of the
    /// layers applied before.
    pub fn apply(&mut self, layer_digest: &str, layer: LayerChanges) {
        let LayerChanges {
            mut changes,
            mut warnings,
        } = layer;
        changes.resolve_links(&self.root, &mut Vec::new(), &mut |path, what| {
            warnings.push((path.to_owned(), what.to_owned()));
        });
        let id: LayerId = self.layers.len();
        self.root.apply(changes, id);
        self.layers.push(layer_digest.to_string());
        self.warnings.extend(
            warnings
                .into_iter()
                .map(|(path, what)| format!("layer {layer_digest}: {path}: {what}")),
        );
    }

    /// Faults handled while applying layers, in order, each naming the
    /// layer digest and the entry path.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The digest of the layer that last wrote `path`, a root-relative
    /// path without symlinks (resolve it first): the layer of the topmost
    /// version of a file or symlink, or for a directory the layer that
    /// last had an entry for it or created it. `None` when there is nothing
    /// at `path`.
    pub fn layer_of(&self, path: &str) -> Option<&str> {
        let components: Vec<&str> = components(path).collect();
        let layer = if components.is_empty() {
            self.root.layer?
        } else {
            match self.root.get(&components)? {
                Node::Dir(dir) => dir.layer?,
                Node::Leaf { layer, .. } => *layer,
            }
        };
        Some(&self.layers[layer])
    }

    /// The node at `path`, with the errors the [`Root`] contract asks for.
    fn node(&self, path: &str) -> io::Result<NodeRef<'_>> {
        let components: Vec<&str> = components(path).collect();
        let Some((last, parents)) = components.split_last() else {
            return Ok(NodeRef::Dir(&self.root));
        };

        let mut dir = &self.root;
        for name in parents {
            dir = match dir.children.get(*name) {
                Some(Node::Dir(child)) => child,
                Some(Node::Leaf {
                    leaf: Leaf::Symlink(_),
                    ..
                }) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{name} on the way is a symlink, resolve the path first"),
                    ));
                }
                Some(Node::Leaf { .. }) => return Err(io::ErrorKind::NotADirectory.into()),
                None if *name == ".." => return Err(dot_dot()),
                None => return Err(io::ErrorKind::NotFound.into()),
            };
        }
        match dir.children.get(*last) {
            Some(Node::Dir(dir)) => Ok(NodeRef::Dir(dir)),
            Some(Node::Leaf { leaf, .. }) => Ok(NodeRef::Leaf(leaf)),
            None if *last == ".." => Err(dot_dot()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

/// What a path of the overlay names, for the [`Root`] operations.
enum NodeRef<'a> {
    Dir(&'a Dir),
    Leaf(&'a Leaf),
}

fn dot_dot() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "`..` in a root path, resolve the path first",
    )
}

/// The components of a root-relative path as the analyzers pass it.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

impl Root for Overlay {
    fn lstat(&self, path: &str) -> io::Result<FileKind> {
        Ok(match self.node(path)? {
            NodeRef::Dir(_) => FileKind::Dir,
            NodeRef::Leaf(Leaf::File(_)) => FileKind::File,
            NodeRef::Leaf(Leaf::Symlink(_)) => FileKind::Symlink,
            NodeRef::Leaf(Leaf::Other) => FileKind::Other,
        })
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        match self.node(path)? {
            NodeRef::Leaf(Leaf::Symlink(target)) => Ok(target.clone()),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a symlink")),
        }
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        match self.node(path)? {
            NodeRef::Leaf(Leaf::File(Content::Kept(bytes))) => Ok(bytes.clone()),
            NodeRef::Leaf(Leaf::File(Content::NotKept(reason))) => Err(io::Error::other(format!(
                "the image scanner did not keep its contents: {reason}"
            ))),
            NodeRef::Dir(_) => Err(io::ErrorKind::IsADirectory.into()),
            NodeRef::Leaf(Leaf::Symlink(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink, resolve it first",
            )),
            NodeRef::Leaf(Leaf::Other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )),
        }
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        match self.node(path)? {
            // A BTreeMap's keys come sorted.
            NodeRef::Dir(dir) => Ok(dir.children.keys().cloned().collect()),
            NodeRef::Leaf(Leaf::Symlink(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink, resolve it first",
            )),
            NodeRef::Leaf(_) => Err(io::ErrorKind::NotADirectory.into()),
        }
    }
}
