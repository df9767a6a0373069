//! Builds OCI image layouts for the tests, from layers described in code.

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// One entry of a layer's tar.
#[derive(Clone, Copy)]
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A layer: its blob as stored, and the digest of its uncompressed tar.
#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub diff_id: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An uncompressed tar of `entries`, in order. Paths are written as given,
/// even when they climb out with `..`.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(0);
        let (path, data): (&str, &[u8]) = match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (path, &[])
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                (path, data)
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                (path, &[])
            }
        };
        header.set_size(data.len() as u64);
        // Written byte for byte, so that hostile paths stay as they are.
        let name = path.as_bytes();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut encoder, bytes).unwrap();
    encoder.finish().unwrap()
}

/// A gzip-compressed layer of `entries`.
pub fn layer(entries: &[Entry]) -> Layer {
    let tar = tar(entries);
    Layer {
        diff_id: sha256(&tar),
        blob: gzip(&tar),
    }
}

/// Digests of what `write_image` wrote.
pub struct Image {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

/// A layer blob already in a layout: its digest, size and diff_id.
#[derive(Clone)]
pub struct Stored {
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
}

/// Writes an image of `layers` into the layout directory `dir` (created
/// when missing), listed in `index.json` under `ref_name`.
pub fn write_image(dir: &Path, ref_name: &str, layers: &[Layer]) -> Image {
    let stored: Vec<Stored> = layers
        .iter()
        .map(|l| Stored {
            digest: put(dir, &l.blob),
            size: l.blob.len() as u64,
            diff_id: l.diff_id.clone(),
        })
        .collect();
    write_image_of(dir, ref_name, &stored)
}

/// Writes the blob `bytes` into the layout `dir`; returns its digest.
pub fn put(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let path = blob_path(dir, &digest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    digest
}

/// Writes the config and manifest of an image of `layers`, whose blobs
/// are in the layout `dir` already, and lists it in `index.json` under
/// `ref_name`.
pub fn write_image_of(dir: &Path, ref_name: &str, layers: &[Stored]) -> Image {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let config_digest = put(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_digest = put(dir, &manifest);

    let index_path = dir.join("index.json");
    let mut index = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => json!({"schemaVersion": 2, "manifests": []}),
    };
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": ref_name},
    }));
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

    Image {
        manifest: manifest_digest,
        config: config_digest,
        layers: layers.iter().map(|l| l.digest.clone()).collect(),
    }
}

/// The path of the blob `digest` in the layout `dir`.
pub fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256").join(&digest["sha256:".len()..])
}
