//! An image read whole through a [`Content`]: resolved for a platform, and
//! its layers applied to an [`Overlay`].
//!
//! This is what every image scanner does before it analyzes anything, with
//! the one decision only the caller can make left to it: whether a failure
//! of the content is worth a retry. [`ImageError`] therefore keeps the
//! content's own error apart from a fault of the image.
//!
//! Layers are read into their changes (up to four side by side), finished,
//! so that their digests are checked (nothing read from a layer counts
//! until then), and only then applied, bottom first. When reading a layer
//! fails, the cause is found in this order:
//! 1. an error of the content that stopped reading (the blob went
//!    missing, a digest did not match on the way) is the cause;
//! 2. otherwise the layer is finished first, and a failure there is the
//!    cause: a wrong blob is reported as such, not as the corrupt tar it
//!    looks like;
//! 3. only then is the tar itself blamed.

use std::fmt;

use crate::content::{Content, StreamReader};
use crate::oci::Platform;
use crate::overlay::{LayerChanges, Overlay};
use crate::resolve::{ResolveError, Resolved, resolve};

/// The most bytes read of an index, a manifest or a config.
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// Why an image could not be read.
#[derive(Debug)]
pub enum ImageError<E> {
    /// The content failed: a blob not there, one that could not be read,
    /// one that does not match its digest. The error is the content's own,
    /// unchanged, for the caller to tell whether a retry can help.
    Content(E),
    /// The image itself is unusable: a document that is not valid, no
    /// manifest for the platform, a layer that is not a valid tar. The
    /// message names the digest of what is wrong.
    Invalid(String),
}

impl<E: fmt::Display> fmt::Display for ImageError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Content(err) => err.fmt(f),
            ImageError::Invalid(message) => f.write_str(message),
        }
    }
}

// Written by hand, as for `ResolveError`: a content error need only be
// `Display`. A content error is shown as it is, so its source is the
// content error's source.
impl<E: std::error::Error + 'static> std::error::Error for ImageError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::Content(err) => err.source(),
            ImageError::Invalid(_) => None,
        }
    }
}

/// Reads the image named by `digest` from `content`: its manifest and
/// config for `platform` (see [`resolve()`]), and its root filesystem,
/// with the regular files whose path `wanted` accepts (see
/// [`Overlay::new`]).
///
/// Documents are read with [`Content::read_blob`], at most
/// [`MAX_DOCUMENT`] bytes each, and the layers are opened bottom first,
/// each with its diff_id. Every layer is finished, and so checked against
/// its digests, before its changes are used. The faults the overlay handled
/// are in [`Overlay::warnings`].
///
/// The changes a layer makes are kept with [`Content::keep`] under its
/// diff_id and blob digest once it has been read and checked, and a layer whose changes
/// [`Content::cached`] has is not opened at all: images that share a layer
/// pay for reading it once, and give the same overlay as a cold read. The
/// other layers are opened up to four at a time and read side by side, an
/// entry of each in turn.
///
/// ```
/// use std::collections::HashMap;
/// use std::io;
///
/// use scanhost_analyzers::Root;
/// use scanhost_image::oci::Platform;
/// use scanhost_image::{Content, LayerStream, read_image};
///
/// /// Blobs in memory. Their digests are not checked: they are trusted.
/// struct Blobs(HashMap<&'static str, Vec<u8>>);
/// struct Layer(Vec<u8>);
///
/// impl Content for Blobs {
///     type Error = io::Error;
///     type Layer = Layer;
///     fn read_blob(&self, digest: &str, max: u64) -> io::Result<Vec<u8>> {
///         let blob = self.0.get(digest).ok_or(io::ErrorKind::NotFound)?;
///         if blob.len() as u64 > max {
///             return Err(io::Error::other(format!("{digest}: over {max} bytes")));
///         }
///         Ok(blob.clone())
///     }
///     fn open_layer(&self, digest: &str, _diff_id: &str) -> io::Result<Layer> {
///         self.read_blob(digest, u64::MAX).map(Layer)
///     }
/// }
///
/// impl LayerStream for Layer {
///     type Error = io::Error;
///     fn read(&mut self, len: u64) -> io::Result<Vec<u8>> {
///         let n = self.0.len().min(len as usize);
///         Ok(self.0.drain(..n).collect())
///     }
///     fn skip(&mut self, len: u64) -> io::Result<u64> {
///         Ok(self.read(len)?.len() as u64)
///     }
///     fn finish(&mut self) -> io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let mut layer = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_gnu();
/// header.set_size(10);
/// layer.append_data(&mut header, "etc/os-release", &b"ID=alpine\n"[..])?;
///
/// let blobs = Blobs(HashMap::from([
///     ("sha256:m", br#"{"config": {"digest": "sha256:c", "size": 1},
///                      "layers": [{"digest": "sha256:l", "size": 1}]}"#.to_vec()),
///     ("sha256:c", br#"{"rootfs": {"diff_ids": ["sha256:d"]}}"#.to_vec()),
///     ("sha256:l", layer.into_inner()?),
/// ]));
/// let platform = Platform {
///     os: "linux".to_string(),
///     architecture: "amd64".to_string(),
///     variant: None,
/// };
/// let (_, root) = read_image(&blobs, "sha256:m", &platform, |path| {
///     path == "etc/os-release"
/// })?;
/// assert_eq!(root.read("etc/os-release")?, b"ID=alpine\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_image<C: Content>(
    content: &C,
    digest: &str,
    platform: &Platform,
    wanted: fn(&str) -> bool,
) -> Result<(Resolved, Overlay), ImageError<C::Error>> {
    let resolved = resolve(digest, platform, |digest| {
        content.read_blob(digest, MAX_DOCUMENT)
    })
    .map_err(|err| match err {
        ResolveError::Fetch { source, .. } => ImageError::Content(source),
        other => ImageError::Invalid(other.to_string()),
    })?;

    let mut overlay = Overlay::new(wanted);
    let layers: Vec<(&str, &str)> = resolved
        .manifest
        .layers
        .iter()
        .zip(&resolved.config.diff_ids)
        .map(|(layer, diff_id)| (layer.digest.as_str(), diff_id.as_str()))
        .collect();
    let mut changes: Vec<Option<LayerChanges>> = layers
        .iter()
        .map(|(digest, diff_id)| {
            let kept = content.cached(&key(digest, diff_id))?;
            LayerChanges::from_bytes(&kept)
        })
        .collect();

    // The layers not kept, read `LAYERS_AT_ONCE` at a time, bottom first.
    let missing: Vec<usize> = (0..layers.len())
        .filter(|&i| changes[i].is_none())
        .collect();
    for group in missing.chunks(LAYERS_AT_ONCE) {
        let group: Vec<(usize, &str, &str)> = group
            .iter()
            .map(|&i| (i, layers[i].0, layers[i].1))
            .collect();
        for (i, read) in read_layers(content, &overlay, &group)? {
            let (digest, diff_id) = layers[i];
            content.keep(&key(digest, diff_id), &read.to_bytes());
            changes[i] = Some(read);
        }
    }

    for ((digest, _), layer) in layers.iter().zip(changes) {
        // Every layer has its changes by now: kept, or read above.
        if let Some(layer) = layer {
            overlay.apply(digest, layer);
        }
    }
    Ok((resolved, overlay))
}

/// Layers read side by side at most: each may be decompressed ahead on
/// the host, in a bounded buffer.
const LAYERS_AT_ONCE: usize = 4;

/// The prefix of the key under which the changes of a layer are kept,
/// followed by its diff_id and its blob's digest. The changes depend only
/// on the uncompressed tar (the diff_id) and on `wanted`, fixed for one
/// build of a plugin; the blob's digest is in the key too, so that only a
/// blob that was read and checked against both digests is ever taken as
/// known: an image whose config claims the diff_id of a known layer for
/// another blob is read, and fails its check, as it would cold.
const LAYER_KEY: &str = "layer-changes/";

fn key(digest: &str, diff_id: &str) -> String {
    format!("{LAYER_KEY}{diff_id}/{digest}")
}

/// Reads the layers `(index, digest, diff_id)` side by side into their
/// changes, and checks each against its digests. The first layer, bottom
/// first, that cannot be opened or read is the error, found as the module
/// documentation says; the layers below it are read and checked first.
fn read_layers<C: Content>(
    content: &C,
    overlay: &Overlay,
    group: &[(usize, &str, &str)],
) -> Result<Vec<(usize, LayerChanges)>, ImageError<C::Error>> {
    let mut readers = Vec::new();
    let mut open_failure = None;
    for &(i, digest, diff_id) in group {
        match content.open_layer(digest, diff_id) {
            Ok(stream) => readers.push((i, digest, StreamReader::new(stream))),
            Err(err) => {
                open_failure = Some(ImageError::Content(err));
                break;
            }
        }
    }

    let results = overlay.read_layers(
        readers
            .iter_mut()
            .map(|(_, digest, reader)| (*digest, reader))
            .collect(),
    );
    let mut read = Vec::new();
    for ((i, _, mut reader), result) in readers.into_iter().zip(results) {
        match result {
            Ok(changes) => {
                reader.finish().map_err(ImageError::Content)?;
                read.push((i, changes));
            }
            Err(err) => {
                // The order of the module documentation: the content error
                // that stopped reading, then the digests, then the tar.
                if let Some(content_error) = reader.take_error() {
                    return Err(ImageError::Content(content_error));
                }
                reader.finish().map_err(ImageError::Content)?;
                return Err(ImageError::Invalid(err.to_string()));
            }
        }
    }
    match open_failure {
        Some(err) => Err(err),
        None => Ok(read),
    }
}

#[cfg(test)]
mod tests {
    use scanhost_analyzers::Root;

    use super::*;
    use crate::content::memory::{Memory, MemoryError};
    use crate::oci;

    /// The tests' `wanted`: every path without `junk` in it.
    fn wanted(path: &str) -> bool {
        !path.contains("junk")
    }

    fn linux_amd64() -> Platform {
        Platform {
            os: "linux".to_string(),
            architecture: "amd64".to_string(),
            variant: None,
        }
    }

    /// A layer tar of regular files, `(path, contents)`.
    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        tar_with_links(files, &[])
    }

    /// The manifest `sha256:m` and its config `sha256:c` for `layers`,
    /// the n-th at `sha256:lN` (from 1), stored in `memory` with the
    /// layers.
    fn store_image(memory: &mut Memory, layers: Vec<Vec<u8>>) {
        let digests: Vec<String> = (1..=layers.len()).map(|n| format!("sha256:l{n}")).collect();
        let descriptors: Vec<String> = digests
            .iter()
            .map(|d| format!(r#"{{"digest": "{d}", "size": 1}}"#))
            .collect();
        let diff_ids: Vec<String> = (1..=layers.len())
            .map(|n| format!(r#""sha256:d{n}""#))
            .collect();
        let manifest = format!(
            r#"{{"mediaType": "{}", "config": {{"digest": "sha256:c", "size": 1}},
                "layers": [{}]}}"#,
            oci::OCI_MANIFEST,
            descriptors.join(", ")
        );
        let config = format!(r#"{{"rootfs": {{"diff_ids": [{}]}}}}"#, diff_ids.join(", "));

        let blobs = &mut memory.blobs;
        blobs.insert("sha256:m".to_string(), manifest.into_bytes());
        blobs.insert("sha256:c".to_string(), config.into_bytes());
        blobs.extend(digests.into_iter().zip(layers));
    }

    fn read(memory: &Memory) -> Result<(Resolved, Overlay), ImageError<MemoryError>> {
        read_image(memory, "sha256:m", &linux_amd64(), wanted)
    }

    fn text(overlay: &Overlay, path: &str) -> String {
        String::from_utf8(overlay.read(path).unwrap()).unwrap()
    }

    #[test]
    fn a_two_layer_image_is_read_and_every_layer_finished() {
        let mut memory = Memory::default();
        store_image(
            &mut memory,
            vec![
                tar(&[("etc/os-release", b"ID=debian\n"), ("etc/motd", b"old")]),
                tar(&[("etc/motd", b"new"), ("junk/big", &[7; 4096])]),
            ],
        );

        let (resolved, overlay) = read(&memory).unwrap();
        assert_eq!(resolved.manifest_digest, "sha256:m");
        assert_eq!(resolved.config.diff_ids, ["sha256:d1", "sha256:d2"]);
        assert_eq!(text(&overlay, "etc/os-release"), "ID=debian\n");
        assert_eq!(text(&overlay, "etc/motd"), "new");
        assert_eq!(overlay.layer_of("etc/os-release"), Some("sha256:l1"));
        assert_eq!(overlay.layer_of("etc/motd"), Some("sha256:l2"));
        assert!(overlay.read("junk/big").is_err());
        assert_eq!(memory.counts.finishes.get(), 2);
    }

    #[test]
    fn a_missing_layer_blob_is_a_content_error() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![tar(&[("a", b"a")]), tar(&[("b", b"b")])]);
        memory.blobs.remove("sha256:l2");

        let err = read(&memory).unwrap_err();
        let ImageError::Content(content) = &err else {
            panic!("{err}");
        };
        assert_eq!(content, &MemoryError::NotFound("sha256:l2".to_string()));
        assert_eq!(err.to_string(), "blob sha256:l2 not found");
        // The layer below was read and checked before.
        assert_eq!(memory.counts.finishes.get(), 1);
    }

    #[test]
    fn a_missing_document_is_a_content_error() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![tar(&[("a", b"a")])]);
        memory.blobs.remove("sha256:c");

        let err = read(&memory).unwrap_err();
        assert!(
            matches!(&err, ImageError::Content(MemoryError::NotFound(d)) if d == "sha256:c"),
            "{err}"
        );
    }

    #[test]
    fn a_document_that_is_not_valid_is_invalid() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![tar(&[("a", b"a")])]);
        memory
            .blobs
            .insert("sha256:c".to_string(), b"not json".to_vec());

        let err = read(&memory).unwrap_err();
        let ImageError::Invalid(message) = &err else {
            panic!("{err}");
        };
        assert!(message.starts_with("sha256:c: not JSON"), "{message}");
    }

    #[test]
    fn a_document_over_the_limit_is_refused_by_the_content() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![tar(&[("a", b"a")])]);
        let mut config = memory.blobs["sha256:c"].clone();
        config.resize(MAX_DOCUMENT as usize + 1, b' ');
        memory.blobs.insert("sha256:c".to_string(), config);

        let err = read(&memory).unwrap_err();
        assert!(
            matches!(&err, ImageError::Content(MemoryError::Invalid(_))),
            "{err}"
        );
    }

    // A corrupt tar whose blob fails its digests must be reported as the mismatch, not the tar.
    #[test]
    fn a_corrupt_tar_that_fails_its_digests_is_the_content_error() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![b"garbage ".repeat(128)]);
        memory.mismatched.insert("sha256:l1".to_string());

        let err = read(&memory).unwrap_err();
        assert_eq!(err.to_string(), "layer sha256:l1 does not match its digest");
        assert!(
            matches!(&err, ImageError::Content(MemoryError::Invalid(_))),
            "{err:?}"
        );
        assert_eq!(memory.counts.finishes.get(), 1);
    }

    #[test]
    fn a_corrupt_tar_that_passes_its_digests_is_invalid() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![b"garbage ".repeat(128)]);

        let err = read(&memory).unwrap_err();
        let ImageError::Invalid(message) = &err else {
            panic!("{err}");
        };
        assert!(
            message.starts_with("layer sha256:l1: not a valid tar: "),
            "{message}"
        );
        assert_eq!(memory.counts.finishes.get(), 1);
    }

    // A blob that vanishes while read must be that content error, not a tar fault nor `finish`'s.
    #[test]
    fn a_content_error_while_reading_comes_before_finish_and_the_tar() {
        let mut memory = Memory::default();
        store_image(&mut memory, vec![tar(&[("a", b"a")])]);
        memory.vanishing.insert("sha256:l1".to_string());
        memory.mismatched.insert("sha256:l1".to_string());

        let err = read(&memory).unwrap_err();
        assert!(
            matches!(&err, ImageError::Content(MemoryError::NotFound(d)) if d == "sha256:l1"),
            "{err:?}"
        );
        assert_eq!(memory.counts.finishes.get(), 0);
    }

    // The data of files not kept must be skipped on the content's side, not read.
    #[test]
    fn the_data_of_files_not_kept_is_skipped_not_read() {
        let mut memory = Memory::default();
        let big = vec![1; 5 << 20];
        store_image(
            &mut memory,
            vec![tar(&[
                ("junk/big", &big),
                ("etc/os-release", b"ID=debian\n"),
                ("junk/more", &big),
            ])],
        );

        let (_, overlay) = read(&memory).unwrap();
        assert_eq!(text(&overlay, "etc/os-release"), "ID=debian\n");
        let counts = &memory.counts;
        assert!(counts.skips.get() >= 2, "{counts:?}");
        assert!(counts.skipped.get() >= 2 * (4 << 20), "{counts:?}");
        assert!(counts.read.get() <= 3 << 20, "{counts:?}");
    }

    /// A layer tar of regular files, `(path, contents)`, then hard links,
    /// `(path, target)`.
    fn tar_with_links(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *contents).unwrap();
        }
        for (path, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// An image of `layers` in a memory that keeps what it is given.
    fn caching(layers: Vec<Vec<u8>>) -> Memory {
        let mut memory = Memory {
            cache: Some(Default::default()),
            ..Memory::default()
        };
        store_image(&mut memory, layers);
        memory
    }

    /// What a scan sees of an overlay: every wanted file, its layer, and
    /// the warnings.
    fn seen(overlay: &Overlay) -> Vec<String> {
        let paths = [
            "etc/os-release",
            "etc/motd",
            "etc/issue",
            "etc/gone",
            "etc/motd.d",
        ];
        let mut seen: Vec<String> = paths
            .iter()
            .map(|path| {
                format!(
                    "{path}: {:?} {:?}",
                    overlay.read(path).map_err(|e| e.to_string()),
                    overlay.layer_of(path)
                )
            })
            .collect();
        seen.extend(overlay.warnings().iter().cloned());
        seen
    }

    // A layer read once is kept by its diff_id; the next read of an image
    // with that layer opens no layer and gives the same overlay.
    #[test]
    fn kept_layers_are_not_read_again_and_give_the_same_overlay() {
        let memory = caching(vec![
            tar(&[
                ("etc/os-release", b"ID=debian\n"),
                ("etc/motd", b"old"),
                ("etc/gone", b"x"),
            ]),
            // A link to a lower file, and one to a lower directory.
            tar_with_links(
                &[("etc/.wh.gone", b"")],
                &[("etc/issue", "etc/motd"), ("etc/motd.d", "etc")],
            ),
        ]);

        let (_, cold) = read(&memory).unwrap();
        assert_eq!(memory.counts.opens.get(), 2);
        assert_eq!(memory.cache.as_ref().unwrap().borrow().len(), 2);
        let (_, warm) = read(&memory).unwrap();
        assert_eq!(memory.counts.opens.get(), 2, "a kept layer was opened");
        assert_eq!(seen(&warm), seen(&cold));
        // The hard link to a lower file was resolved when applied.
        assert_eq!(text(&warm, "etc/issue"), "old");
        assert!(warm.read("etc/gone").is_err());
        assert_eq!(
            warm.warnings(),
            ["layer sha256:l2: etc/motd.d: a hard link to the directory etc; ignored"]
        );
    }

    // What is kept is untrusted bytes: a value that is not an encoding of
    // changes is a miss, and the layer is read.
    #[test]
    fn a_kept_value_that_does_not_decode_is_read_again() {
        let memory = caching(vec![tar(&[("etc/os-release", b"ID=debian\n")])]);
        let (_, cold) = read(&memory).unwrap();
        for value in memory.cache.as_ref().unwrap().borrow_mut().values_mut() {
            *value = b"\xff\xff\xff garbage".to_vec();
        }

        let (_, again) = read(&memory).unwrap();
        assert_eq!(memory.counts.opens.get(), 2);
        assert_eq!(seen(&again), seen(&cold));
    }

    // A layer that fails its digests is not kept.
    #[test]
    fn a_layer_that_fails_its_digests_is_not_kept() {
        let mut memory = caching(vec![tar(&[("etc/os-release", b"ID=debian\n")])]);
        memory.mismatched.insert("sha256:l1".to_string());

        assert!(read(&memory).is_err());
        assert!(memory.cache.as_ref().unwrap().borrow().is_empty());
    }

    // Layers not kept are read side by side, so that a host decompressing
    // each on its own thread is drained side by side.
    #[test]
    fn layers_not_kept_are_read_side_by_side() {
        let mut memory = Memory::default();
        let big = vec![b'x'; 700 << 10];
        let files = |prefix: &'static str| -> Vec<(String, Vec<u8>)> {
            (0..3)
                .map(|n| (format!("{prefix}/{n}"), big.clone()))
                .collect()
        };
        let layer = |files: Vec<(String, Vec<u8>)>| {
            let refs: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_slice()))
                .collect();
            tar(&refs)
        };
        store_image(&mut memory, vec![layer(files("a")), layer(files("b"))]);

        let (_, overlay) = read(&memory).unwrap();
        assert_eq!(overlay.read("a/2").unwrap().len(), 700 << 10);
        assert_eq!(overlay.read("b/2").unwrap().len(), 700 << 10);
        let reads = memory.counts.reads.borrow();
        let first_of_l2 = reads.iter().position(|d| d == "sha256:l2").unwrap();
        let last_of_l1 = reads.iter().rposition(|d| d == "sha256:l1").unwrap();
        assert!(
            first_of_l2 < last_of_l1,
            "read one after the other: {reads:?}"
        );
        assert_eq!(memory.counts.finishes.get(), 2);
    }

    // A config that claims the diff_id of a known layer for another blob
    // must not be taken for the known layer: the blob is read and fails its
    // check, warm as cold.
    #[test]
    fn a_known_diff_id_with_another_blob_is_read_and_checked() {
        let mut memory = caching(vec![tar(&[("etc/os-release", b"ID=debian\n")])]);
        read(&memory).unwrap();
        // The same diff_id, claimed for another blob that fails it.
        let other = tar(&[("etc/os-release", b"ID=evil\n")]);
        let manifest = String::from_utf8(memory.blobs["sha256:m"].clone())
            .unwrap()
            .replace("sha256:l1", "sha256:other");
        memory
            .blobs
            .insert("sha256:m".to_string(), manifest.into_bytes());
        memory.blobs.insert("sha256:other".to_string(), other);
        memory.mismatched.insert("sha256:other".to_string());

        let err = read(&memory).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer sha256:other does not match its digest"
        );
    }
}
