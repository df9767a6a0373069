//! The JSON documents of a container image: index, manifest and config.
//!
//! Both the OCI image format and Docker's v2 schema 2 format are read; the
//! two describe the same structures under different media types. This
//! module only parses: it fetches nothing and chooses no platform (that is
//! [`crate::resolve`]).
//!
//! Parsing is lenient about what the scanner does not use (unknown fields
//! are ignored, as real documents carry many) and strict about what it
//! does: every digest must have the `algorithm:encoded` form, because the
//! host looks blobs up by it, and a manifest must name its config and its
//! layers.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of a Docker manifest list, Docker's image index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a Docker image manifest, v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Media types of Docker's schema 1 manifests, which are not supported:
/// they predate content-addressed configs and have no diff_ids.
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The platform an image runs on, as an index entry or a caller names it.
///
/// `os` and `architecture` use Go's names (`linux`, `amd64`, `arm64`);
/// `variant` is the CPU variant (`v7`, `v8`) where one applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// The operating system, e.g. `linux`.
    pub os: String,
    /// The CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// The CPU variant, e.g. `v7` for 32-bit ARM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    /// `os/architecture` or `os/architecture/variant`, as `docker
    /// --platform` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A reference to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the blob; empty when the document gave none.
    #[serde(default)]
    pub media_type: String,
    /// The digest of the blob, `algorithm:encoded` (checked when parsed).
    pub digest: String,
    /// The size of the blob in bytes.
    pub size: u64,
    /// The platform of the image, on index entries that give one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations, e.g. `org.opencontainers.image.ref.name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (a Docker manifest list): one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The entries, in document order; each names a manifest or another
    /// index.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest: the config and the layers of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The image config.
    pub config: Descriptor,
    /// The layers, from the bottom one (applied first) to the top one.
    pub layers: Vec<Descriptor>,
}

/// What the scanner needs of an image config.
///
/// Not (de)serialisable itself: it gathers fields from several places of
/// the config document (`rootfs.diff_ids` among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The operating system, e.g. `linux`; empty when the config has none.
    pub os: String,
    /// The CPU architecture, e.g. `amd64`; empty when the config has none.
    pub architecture: String,
    /// The CPU variant, when the config gives one.
    pub variant: Option<String>,
    /// The digests of the uncompressed layers, bottom first: the n-th
    /// names the n-th layer of the manifest once decompressed.
    pub diff_ids: Vec<String>,
}

/// An index or a manifest: what a digest given to the scanner names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image index or Docker manifest list.
    Index(Index),
    /// An image manifest.
    Manifest(Manifest),
}

/// Why bytes are not a usable index, manifest or config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// The bytes are not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The JSON does not have the shape of the document expected, e.g. a
    /// field holds a number where a string belongs.
    #[error("not an image {expected}: {reason}")]
    WrongShape {
        /// `index or manifest`, or `config`.
        expected: &'static str,
        /// What serde found wrong, with the line and column.
        reason: String,
    },
    /// The media type names something that is not an image index or
    /// manifest.
    #[error("media type {0} is not an image index or manifest")]
    UnsupportedMediaType(String),
    /// A Docker schema 1 manifest.
    #[error("a Docker schema 1 manifest, which is not supported (it has no image config)")]
    SchemaOne,
    /// Neither the media type nor the fields tell index from manifest.
    #[error("neither an image index nor a manifest: {0}")]
    Unrecognised(&'static str),
    /// A field the document needs is missing.
    #[error("{document} without {field}")]
    Missing {
        /// `an index`, `a manifest` or `a config`.
        document: &'static str,
        /// The field, e.g. `config` or `rootfs.diff_ids`.
        field: &'static str,
    },
    /// A digest is not of the form `algorithm:encoded`.
    #[error("{field}: {digest:?} is not a digest (algorithm:encoded)")]
    InvalidDigest {
        /// Where the digest is, e.g. `layers[2].digest`.
        field: String,
        /// The digest as written.
        digest: String,
    },
}

/// The fields of an index and of a manifest together, so that one parse
/// tells which of the two a document is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
struct RawRootfs {
    diff_ids: Option<Vec<String>>,
}

/// Parses an image index or manifest, OCI or Docker.
///
/// The media type decides when the document has one; without it (it is
/// optional in OCI documents), a document with `manifests` is an index
/// and one with `layers` is a manifest.
///
/// ```
/// use scanhost_image::oci::{Document, parse_document};
///
/// let json = br#"{
///     "schemaVersion": 2,
///     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
///                "digest": "sha256:aa", "size": 2},
///     "layers": []
/// }"#;
/// let Document::Manifest(manifest) = parse_document(json)? else {
///     panic!("not a manifest");
/// };
/// assert_eq!(manifest.config.digest, "sha256:aa");
/// # Ok::<(), scanhost_image::oci::OciError>(())
/// ```
pub fn parse_document(bytes: &[u8]) -> Result<Document, OciError> {
    let raw: RawDocument = parse_json(bytes, "index or manifest")?;

    let is_index = match raw.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) if DOCKER_SCHEMA1.contains(&other) => return Err(OciError::SchemaOne),
        Some(other) => return Err(OciError::UnsupportedMediaType(other.to_string())),
        None if raw.schema_version == Some(1) => return Err(OciError::SchemaOne),
        None => match (&raw.manifests, &raw.layers) {
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) => {
                return Err(OciError::Unrecognised(
                    "it has both `manifests` and `layers`, and no mediaType",
                ));
            }
            (None, None) => {
                return Err(OciError::Unrecognised(
                    "it has neither `manifests` nor `layers`, and no mediaType",
                ));
            }
        },
    };

    if is_index {
        let manifests = raw.manifests.ok_or(OciError::Missing {
            document: "an index",
            field: "manifests",
        })?;
        for (i, entry) in manifests.iter().enumerate() {
            check_digest(&format!("manifests[{i}].digest"), &entry.digest)?;
        }
        return Ok(Document::Index(Index { manifests }));
    }

    let config = raw.config.ok_or(OciError::Missing {
        document: "a manifest",
        field: "config",
    })?;
    let layers = raw.layers.ok_or(OciError::Missing {
        document: "a manifest",
        field: "layers",
    })?;
    check_digest("config.digest", &config.digest)?;
    for (i, layer) in layers.iter().enumerate() {
        check_digest(&format!("layers[{i}].digest"), &layer.digest)?;
    }
    Ok(Document::Manifest(Manifest { config, layers }))
}

/// Parses an image config (OCI or Docker, which share the fields read).
///
/// ```
/// use scanhost_image::oci::parse_config;
///
/// let json = br#"{"os": "linux", "architecture": "arm64",
///                 "rootfs": {"type": "layers", "diff_ids": ["sha256:bb"]}}"#;
/// let config = parse_config(json)?;
/// assert_eq!(config.diff_ids, ["sha256:bb"]);
/// # Ok::<(), scanhost_image::oci::OciError>(())
/// ```
pub fn parse_config(bytes: &[u8]) -> Result<Config, OciError> {
    let raw: RawConfig = parse_json(bytes, "config")?;
    let diff_ids = raw
        .rootfs
        .and_then(|rootfs| rootfs.diff_ids)
        .ok_or(OciError::Missing {
            document: "a config",
            field: "rootfs.diff_ids",
        })?;
    for (i, diff_id) in diff_ids.iter().enumerate() {
        check_digest(&format!("rootfs.diff_ids[{i}]"), diff_id)?;
    }
    Ok(Config {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
        diff_ids,
    })
}

/// Deserialises `bytes`, telling bytes that are not JSON from JSON of the
/// wrong shape.
fn parse_json<T: DeserializeOwned>(bytes: &[u8], expected: &'static str) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|err| {
        if err.is_data() {
            OciError::WrongShape {
                expected,
                reason: err.to_string(),
            }
        } else {
            OciError::NotJson(err.to_string())
        }
    })
}

/// Checks the digest grammar of the OCI image spec:
/// `algorithm ":" encoded`, where the algorithm is lowercase alphanumeric
/// components joined by `+._-` and the encoded part is `[a-zA-Z0-9=_-]+`.
fn check_digest(field: &str, digest: &str) -> Result<(), OciError> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, encoded)| {
        let component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        algorithm.split(['+', '.', '_', '-']).all(component)
            && !encoded.is_empty()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(OciError::InvalidDigest {
            field: field.to_string(),
            digest: digest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_A: &str = "sha256:aaaa";
    const DIGEST_B: &str = "sha256:bbbb";

    fn manifest_json(media_type: Option<&str>) -> String {
        let media_type = media_type
            .map(|m| format!(r#""mediaType": "{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion": 2, {media_type}
                "config": {{"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": "{DIGEST_A}", "size": 10}},
                "layers": [{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                             "digest": "{DIGEST_B}", "size": 20,
                             "annotations": {{"x": "y"}}}}],
                "annotations": {{"org.opencontainers.image.created": "2024"}}}}"#
        )
    }

    fn index_json(media_type: Option<&str>) -> String {
        let media_type = media_type
            .map(|m| format!(r#""mediaType": "{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion": 2, {media_type}
                "manifests": [{{"mediaType": "{OCI_MANIFEST}", "digest": "{DIGEST_A}",
                                "size": 5, "platform": {{"os": "linux",
                                "architecture": "arm", "variant": "v7",
                                "os.features": ["x"]}}}}]}}"#
        )
    }

    #[test]
    fn manifests_with_and_without_media_type() {
        for media_type in [Some(OCI_MANIFEST), Some(DOCKER_MANIFEST), None] {
            let document = parse_document(manifest_json(media_type).as_bytes()).unwrap();
            let Document::Manifest(manifest) = document else {
                panic!("{media_type:?}: not a manifest");
            };
            assert_eq!(manifest.config.digest, DIGEST_A);
            assert_eq!(manifest.layers.len(), 1);
            assert_eq!(manifest.layers[0].size, 20);
            assert_eq!(manifest.layers[0].annotations["x"], "y");
        }
    }

    #[test]
    fn indexes_with_and_without_media_type() {
        for media_type in [Some(OCI_INDEX), Some(DOCKER_MANIFEST_LIST), None] {
            let document = parse_document(index_json(media_type).as_bytes()).unwrap();
            let Document::Index(index) = document else {
                panic!("{media_type:?}: not an index");
            };
            assert_eq!(
                index.manifests[0].platform,
                Some(Platform {
                    os: "linux".to_string(),
                    architecture: "arm".to_string(),
                    variant: Some("v7".to_string()),
                })
            );
            assert!(index.manifests[0].annotations.is_empty());
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let message = |json: &str| parse_document(json.as_bytes()).unwrap_err().to_string();
        assert!(message("{").starts_with("not JSON: "), "{}", message("{"));
        assert!(message("[]").starts_with("not an image index or manifest: "));
        assert_eq!(
            message(r#"{"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}"#),
            "a manifest without config"
        );
        assert_eq!(
            message(r#"{"mediaType": "application/vnd.oci.image.index.v1+json"}"#),
            "an index without manifests"
        );
        assert_eq!(
            message(r#"{"mediaType": "text/plain"}"#),
            "media type text/plain is not an image index or manifest"
        );
        assert!(message(r#"{"schemaVersion": 1, "fsLayers": []}"#).contains("schema 1"));
        assert!(message(r#"{"schemaVersion": 2}"#).contains("neither `manifests` nor `layers`"));
    }

    #[test]
    fn digests_are_checked() {
        let json = manifest_json(None).replace(DIGEST_B, "../../etc/passwd");
        assert_eq!(
            parse_document(json.as_bytes()).unwrap_err(),
            OciError::InvalidDigest {
                field: "layers[0].digest".to_string(),
                digest: "../../etc/passwd".to_string(),
            }
        );
        for good in ["sha256:0f", "sha512:AB=_-", "multihash+base58:QmRZ"] {
            assert!(check_digest("d", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":ab",
            "SHA256:ab",
            "sha256:a/b",
            "sha+:ab",
        ] {
            assert!(check_digest("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_fields_and_diff_ids() {
        let json = format!(
            r#"{{"architecture": "arm", "variant": "v6", "os": "linux",
                "config": {{"Env": ["PATH=/bin"]}},
                "rootfs": {{"type": "layers", "diff_ids": ["{DIGEST_A}", "{DIGEST_B}"]}},
                "history": [{{"created_by": "x"}}]}}"#
        );
        assert_eq!(
            parse_config(json.as_bytes()).unwrap(),
            Config {
                os: "linux".to_string(),
                architecture: "arm".to_string(),
                variant: Some("v6".to_string()),
                diff_ids: vec![DIGEST_A.to_string(), DIGEST_B.to_string()],
            }
        );
        assert_eq!(
            parse_config(br#"{"os": "linux"}"#).unwrap_err().to_string(),
            "a config without rootfs.diff_ids"
        );
        assert!(
            parse_config(b"\x1f\x8b")
                .unwrap_err()
                .to_string()
                .starts_with("not JSON")
        );
    }

    #[test]
    fn platform_display() {
        let mut platform = Platform {
            os: "linux".to_string(),
            architecture: "arm64".to_string(),
            variant: None,
        };
        assert_eq!(platform.to_string(), "linux/arm64");
        platform.variant = Some("v8".to_string());
        assert_eq!(platform.to_string(), "linux/arm64/v8");
    }
}
