//! From the digest an image is known by to its manifest and config for one
//! platform.
//!
//! The digest names either a manifest (a single-platform image) or an index
//! (a multi-platform image), whose entries may themselves be indexes. This
//! module walks down from it, choosing the entry for the wanted platform at
//! each index, and reads the config the manifest names. Blobs come from a
//! `fetch` function the caller gives, so the same code runs in the host
//! (reading a layout on disk) and in the plugin (through the `content`
//! import); a fetch error is handed back unchanged, because only the caller
//! knows whether it means "not there yet".
//!
//! At an index, the entry chosen is the first whose platform matches
//! exactly (by the rules of `crate::platform`), else the first that
//! matches ignoring the variant. buildkit's attestation entries (platform
//! `unknown/unknown`) are never chosen, and an entry without a platform is
//! chosen only when it is the index's only entry. Indexes nested more than
//! four deep are refused.

use std::fmt;

use crate::oci::{self, Config, Descriptor, Document, Index, Manifest, Platform};
use crate::platform::{Match, Normalised, is_attestation};

/// How many indexes may be nested, the top one included. Real images use
/// one; the limit ends a cycle of indexes naming each other.
const MAX_INDEX_DEPTH: usize = 4;

/// An image resolved for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The digest of the manifest chosen (the digest given when it named a
    /// manifest).
    pub manifest_digest: String,
    /// The manifest.
    pub manifest: Manifest,
    /// The digest of the config, as the manifest names it.
    pub config_digest: String,
    /// The config. It has as many diff_ids as the manifest has layers.
    pub config: Config,
}

/// Why an image could not be resolved. Every variant names the digest of
/// the document involved.
#[derive(Debug)]
pub enum ResolveError<E> {
    /// `fetch` failed for this digest; its error is kept as it was.
    Fetch {
        /// The digest asked for.
        digest: String,
        /// What `fetch` returned.
        source: E,
    },
    /// The blob is not a valid document of the kind expected.
    Invalid {
        /// The digest of the blob.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The index has no entry for the platform.
    NoPlatform {
        /// The digest of the index.
        digest: String,
        /// The platform asked for, `os/architecture[/variant]`.
        wanted: String,
        /// The platforms the index offers, attestations left out.
        available: Vec<String>,
    },
    /// The manifest and its config disagree on the number of layers.
    LayerCount {
        /// The digest of the manifest.
        digest: String,
        /// The number of layers in the manifest.
        layers: usize,
        /// The number of diff_ids in the config.
        diff_ids: usize,
    },
    /// Indexes are nested more than four deep.
    TooDeep {
        /// The digest resolution started from.
        digest: String,
    },
}

impl<E> ResolveError<E> {
    /// The digest of the document involved.
    pub fn digest(&self) -> &str {
        match self {
            ResolveError::Fetch { digest, .. }
            | ResolveError::Invalid { digest, .. }
            | ResolveError::NoPlatform { digest, .. }
            | ResolveError::LayerCount { digest, .. }
            | ResolveError::TooDeep { digest } => digest,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ResolveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Fetch { digest, source } => {
                write!(f, "cannot fetch {digest}: {source}")
            }
            ResolveError::Invalid { digest, reason } => write!(f, "{digest}: {reason}"),
            ResolveError::NoPlatform {
                digest,
                wanted,
                available,
            } => {
                write!(f, "{digest}: the image has no {wanted} variant")?;
                if available.is_empty() {
                    write!(f, " (it names no platform)")
                } else {
                    write!(f, " (it has {})", available.join(", "))
                }
            }
            ResolveError::LayerCount {
                digest,
                layers,
                diff_ids,
            } => write!(
                f,
                "{digest}: the manifest has {layers} layers but its config \
                 has {diff_ids} diff_ids"
            ),
            ResolveError::TooDeep { digest } => write!(
                f,
                "{digest}: indexes nested more than {MAX_INDEX_DEPTH} deep"
            ),
        }
    }
}

// Written by hand rather than derived: `E` need only be `Display` (a
// plugin's content error may not implement `Error`), and only when it does
// is it the source.
impl<E: std::error::Error + 'static> std::error::Error for ResolveError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Fetch { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Resolves the image named by `digest` for `platform`: the manifest (from
/// an index, the entry for the platform) and its config.
///
/// `fetch` returns the bytes of a blob by digest. It is called for each
/// index on the way, the manifest and the config, in that order.
///
/// ```
/// use std::collections::HashMap;
/// use scanhost_image::oci::Platform;
/// use scanhost_image::resolve;
///
/// let blobs = HashMap::from([
///     ("sha256:m", r#"{"config": {"digest": "sha256:c", "size": 1},
///                      "layers": [{"digest": "sha256:l", "size": 1}]}"#),
///     ("sha256:c", r#"{"rootfs": {"diff_ids": ["sha256:d"]}}"#),
/// ]);
/// let platform = Platform {
///     os: "linux".to_string(),
///     architecture: "amd64".to_string(),
///     variant: None,
/// };
/// let resolved = resolve("sha256:m", &platform, |digest| {
///     blobs.get(digest).map(|b| b.as_bytes().to_vec()).ok_or("not found")
/// })?;
/// assert_eq!(resolved.config.diff_ids, ["sha256:d"]);
/// # Ok::<(), scanhost_image::ResolveError<&str>>(())
/// ```
pub fn resolve<E: fmt::Display>(
    digest: &str,
    platform: &Platform,
    mut fetch: impl FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Resolved, ResolveError<E>> {
    let mut fetch = |digest: &str| {
        fetch(digest).map_err(|source| ResolveError::Fetch {
            digest: digest.to_string(),
            source,
        })
    };
    let invalid = |digest: &str, err: oci::OciError| ResolveError::Invalid {
        digest: digest.to_string(),
        reason: err.to_string(),
    };

    // Walk down the indexes; `current` is the document to read next.
    let mut current = digest.to_string();
    let mut indexes = 0;
    let (manifest_digest, manifest) = loop {
        let bytes = fetch(&current)?;
        match oci::parse_document(&bytes).map_err(|err| invalid(&current, err))? {
            Document::Manifest(manifest) => break (current, manifest),
            Document::Index(index) => {
                indexes += 1;
                if indexes > MAX_INDEX_DEPTH {
                    return Err(ResolveError::TooDeep {
                        digest: digest.to_string(),
                    });
                }
                let Some(entry) = choose(&index, platform) else {
                    return Err(ResolveError::NoPlatform {
                        digest: current,
                        wanted: platform.to_string(),
                        available: available(&index),
                    });
                };
                current = entry.digest.clone();
            }
        }
    };

    let config_digest = manifest.config.digest.clone();
    let bytes = fetch(&config_digest)?;
    let config = oci::parse_config(&bytes).map_err(|err| invalid(&config_digest, err))?;

    // The n-th diff_id is how the n-th layer is checked and cached, so a
    // mismatch makes the image unusable rather than partly scannable.
    if manifest.layers.len() != config.diff_ids.len() {
        return Err(ResolveError::LayerCount {
            digest: manifest_digest,
            layers: manifest.layers.len(),
            diff_ids: config.diff_ids.len(),
        });
    }

    Ok(Resolved {
        manifest_digest,
        manifest,
        config_digest,
        config,
    })
}

/// The entry of `index` for `wanted`: the first with an exact variant
/// match, else the first that matches at all.
fn choose<'a>(index: &'a Index, wanted: &Platform) -> Option<&'a Descriptor> {
    let wanted = Normalised::new(wanted);
    let mut best: Option<(&Descriptor, Match)> = None;
    for entry in &index.manifests {
        if is_attestation(entry) {
            continue;
        }
        let quality = match &entry.platform {
            Some(platform) => wanted.matches(&Normalised::new(platform)),
            // An entry that names no platform is the image only when it is
            // the only one there is.
            None if index.manifests.len() == 1 => Match::Partial,
            None => Match::No,
        };
        if quality > best.map_or(Match::No, |(_, q)| q) {
            best = Some((entry, quality));
        }
    }
    best.map(|(entry, _)| entry)
}

/// The platforms of an index, for a message, attestations left out.
fn available(index: &Index) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter(|entry| !is_attestation(entry))
        .map(|entry| match &entry.platform {
            Some(platform) => platform.to_string(),
            None => format!("{} without a platform", entry.digest),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Blobs by digest, fetched by the tests; a digest not there fails
    /// with `Missing`.
    #[derive(Default)]
    struct Blobs(HashMap<String, String>);

    #[derive(Debug, PartialEq)]
    struct Missing(String);

    impl fmt::Display for Missing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "blob {} is not there", self.0)
        }
    }

    impl Blobs {
        fn add(&mut self, digest: &str, json: String) -> &mut Self {
            self.0.insert(digest.to_string(), json);
            self
        }

        /// A manifest `digest` with `layers` layers, its config (at
        /// `digest` with `-config` appended) listing `diff_ids` diff_ids.
        fn image(&mut self, digest: &str, layers: usize, diff_ids: usize) -> &mut Self {
            let config = format!("{digest}-config");
            let layer_list: Vec<String> = (0..layers)
                .map(|i| {
                    format!(r#"{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:layer{i}", "size": 1}}"#)
                })
                .collect();
            let diff_id_list: Vec<String> = (0..diff_ids)
                .map(|i| format!(r#""sha256:diff{i}""#))
                .collect();
            self.add(
                digest,
                format!(
                    r#"{{"schemaVersion": 2, "mediaType": "{}",
                        "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "{config}", "size": 1}},
                        "layers": [{}]}}"#,
                    oci::OCI_MANIFEST,
                    layer_list.join(",")
                ),
            )
            .add(
                &config,
                format!(
                    r#"{{"os": "linux", "architecture": "amd64",
                        "rootfs": {{"type": "layers", "diff_ids": [{}]}}}}"#,
                    diff_id_list.join(",")
                ),
            )
        }

        /// An index `digest` of `media_type` whose entries are
        /// `(digest, platform)`, the platform `os/arch[/variant]` or `-`
        /// for none.
        fn index(&mut self, digest: &str, media_type: &str, entries: &[(&str, &str)]) -> &mut Self {
            let entries: Vec<String> = entries
                .iter()
                .map(|(digest, platform)| {
                    let platform = match platform.split('/').collect::<Vec<_>>()[..] {
                        ["-"] => String::new(),
                        [os, arch] => format!(
                            r#", "platform": {{"os": "{os}", "architecture": "{arch}"}}"#
                        ),
                        [os, arch, variant] => format!(
                            r#", "platform": {{"os": "{os}", "architecture": "{arch}", "variant": "{variant}"}}"#
                        ),
                        _ => panic!("bad platform {platform}"),
                    };
                    format!(
                        r#"{{"mediaType": "{}", "digest": "{digest}", "size": 1{platform}}}"#,
                        oci::OCI_MANIFEST
                    )
                })
                .collect();
            self.add(
                digest,
                format!(
                    r#"{{"schemaVersion": 2, "mediaType": "{media_type}", "manifests": [{}]}}"#,
                    entries.join(",")
                ),
            )
        }

        fn resolve(&self, digest: &str, platform: &str) -> Result<Resolved, ResolveError<Missing>> {
            resolve(digest, &platform_of(platform), |digest| {
                self.0
                    .get(digest)
                    .map(|json| json.as_bytes().to_vec())
                    .ok_or_else(|| Missing(digest.to_string()))
            })
        }
    }

    fn platform_of(text: &str) -> Platform {
        let parts: Vec<&str> = text.split('/').collect();
        Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }
    }

    #[test]
    fn a_manifest_digest_resolves_to_itself() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:m", 2, 2);
        let resolved = blobs.resolve("sha256:m", "linux/amd64").unwrap();
        assert_eq!(resolved.manifest_digest, "sha256:m");
        assert_eq!(resolved.config_digest, "sha256:m-config");
        assert_eq!(resolved.manifest.layers.len(), 2);
        assert_eq!(resolved.config.diff_ids, ["sha256:diff0", "sha256:diff1"]);
    }

    #[test]
    fn an_oci_index_chooses_per_platform() {
        let mut blobs = Blobs::default();
        blobs
            .image("sha256:amd", 1, 1)
            .image("sha256:arm", 1, 1)
            .index(
                "sha256:i",
                oci::OCI_INDEX,
                &[
                    ("sha256:amd", "linux/amd64"),
                    ("sha256:arm", "linux/arm64/v8"),
                ],
            );
        let chosen = |platform| blobs.resolve("sha256:i", platform).unwrap().manifest_digest;
        assert_eq!(chosen("linux/amd64"), "sha256:amd");
        assert_eq!(chosen("linux/x86_64"), "sha256:amd");
        assert_eq!(chosen("linux/arm64"), "sha256:arm");
        assert_eq!(chosen("linux/aarch64"), "sha256:arm");
        assert_eq!(chosen("Linux/arm64/8"), "sha256:arm");
    }

    #[test]
    fn a_docker_manifest_list_and_arm_variants() {
        let mut blobs = Blobs::default();
        blobs
            .image("sha256:v6", 1, 1)
            .image("sha256:v7", 1, 1)
            .image("sha256:plain", 1, 1)
            .index(
                "sha256:list",
                oci::DOCKER_MANIFEST_LIST,
                &[
                    ("sha256:plain", "linux/arm"),
                    ("sha256:v6", "linux/arm/v6"),
                    ("sha256:v7", "linux/arm/v7"),
                ],
            );
        let chosen = |platform| {
            blobs
                .resolve("sha256:list", platform)
                .unwrap()
                .manifest_digest
        };
        assert_eq!(chosen("linux/armhf"), "sha256:v7");
        assert_eq!(chosen("linux/armel"), "sha256:v6");
        assert_eq!(chosen("linux/arm/v7"), "sha256:v7");
        // Without a variant, the entry without one is the exact match.
        assert_eq!(chosen("linux/arm"), "sha256:plain");
    }

    // An arm64 entry without variant must match arm64/v8, and the reverse.
    #[test]
    fn arm64_without_variant_is_v8() {
        let mut blobs = Blobs::default();
        blobs
            .image("sha256:arm", 1, 1)
            .index("sha256:i", oci::OCI_INDEX, &[("sha256:arm", "linux/arm64")])
            .index(
                "sha256:j",
                oci::OCI_INDEX,
                &[("sha256:arm", "linux/arm64/v8")],
            );
        assert_eq!(
            blobs
                .resolve("sha256:i", "linux/arm64/v8")
                .unwrap()
                .manifest_digest,
            "sha256:arm"
        );
        assert_eq!(
            blobs
                .resolve("sha256:j", "linux/arm64")
                .unwrap()
                .manifest_digest,
            "sha256:arm"
        );
        assert!(matches!(
            blobs.resolve("sha256:i", "linux/arm64/v9"),
            Err(ResolveError::NoPlatform { .. })
        ));
    }

    #[test]
    fn nested_indexes_are_followed_four_deep_and_no_deeper() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:m", 1, 1).index(
            "sha256:i1",
            oci::OCI_INDEX,
            &[("sha256:m", "linux/amd64")],
        );
        for depth in 2..=5 {
            blobs.index(
                &format!("sha256:i{depth}"),
                oci::OCI_INDEX,
                &[(&format!("sha256:i{}", depth - 1), "linux/amd64")],
            );
        }
        let resolved = blobs.resolve("sha256:i4", "linux/amd64").unwrap();
        assert_eq!(resolved.manifest_digest, "sha256:m");

        let err = blobs.resolve("sha256:i5", "linux/amd64").unwrap_err();
        assert!(matches!(&err, ResolveError::TooDeep { digest } if digest == "sha256:i5"));
        assert!(err.to_string().contains("sha256:i5"), "{err}");
    }

    // A buildkit attestation entry (unknown/unknown) must never be chosen.
    #[test]
    fn attestation_entries_are_skipped() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:amd", 1, 1).image("sha256:att", 1, 1);
        blobs.add(
            "sha256:i",
            format!(
                r#"{{"mediaType": "{}", "manifests": [
                    {{"mediaType": "{m}", "digest": "sha256:att", "size": 1,
                      "platform": {{"os": "unknown", "architecture": "unknown"}},
                      "annotations": {{"vnd.docker.reference.type": "attestation-manifest",
                                       "vnd.docker.reference.digest": "sha256:amd"}}}},
                    {{"mediaType": "{m}", "digest": "sha256:amd", "size": 1,
                      "platform": {{"os": "linux", "architecture": "amd64"}}}}]}}"#,
                oci::OCI_INDEX,
                m = oci::OCI_MANIFEST
            ),
        );
        let resolved = blobs.resolve("sha256:i", "linux/amd64").unwrap();
        assert_eq!(resolved.manifest_digest, "sha256:amd");

        blobs.index(
            "sha256:only",
            oci::OCI_INDEX,
            &[("sha256:att", "unknown/unknown")],
        );
        let err = blobs.resolve("sha256:only", "unknown/unknown").unwrap_err();
        assert!(matches!(err, ResolveError::NoPlatform { .. }));
    }

    #[test]
    fn an_entry_without_platform_matches_only_when_alone() {
        let mut blobs = Blobs::default();
        blobs
            .image("sha256:m", 1, 1)
            .index("sha256:one", oci::OCI_INDEX, &[("sha256:m", "-")])
            .index(
                "sha256:two",
                oci::OCI_INDEX,
                &[("sha256:m", "-"), ("sha256:m", "linux/s390x")],
            );
        assert_eq!(
            blobs
                .resolve("sha256:one", "linux/amd64")
                .unwrap()
                .manifest_digest,
            "sha256:m"
        );
        assert!(matches!(
            blobs.resolve("sha256:two", "linux/amd64"),
            Err(ResolveError::NoPlatform { .. })
        ));
    }

    #[test]
    fn no_matching_platform_lists_the_available_ones() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:m", 1, 1).index(
            "sha256:i",
            oci::OCI_INDEX,
            &[
                ("sha256:m", "linux/amd64"),
                ("sha256:m", "linux/arm/v7"),
                ("sha256:m", "unknown/unknown"),
            ],
        );
        let err = blobs.resolve("sha256:i", "linux/riscv64").unwrap_err();
        let ResolveError::NoPlatform {
            digest,
            wanted,
            available,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(digest, "sha256:i");
        assert_eq!(wanted, "linux/riscv64");
        assert_eq!(available, &["linux/amd64", "linux/arm/v7"]);
        assert_eq!(
            err.to_string(),
            "sha256:i: the image has no linux/riscv64 variant \
             (it has linux/amd64, linux/arm/v7)"
        );
    }

    #[test]
    fn a_blob_that_is_not_json_names_its_digest() {
        let mut blobs = Blobs::default();
        blobs.add("sha256:m", "\u{1f}\u{8b} gzip?".to_string());
        let err = blobs.resolve("sha256:m", "linux/amd64").unwrap_err();
        assert!(matches!(&err, ResolveError::Invalid { digest, .. } if digest == "sha256:m"));
        assert!(err.to_string().starts_with("sha256:m: not JSON: "), "{err}");

        // The same for a config.
        blobs
            .image("sha256:n", 1, 1)
            .add("sha256:n-config", "{".to_string());
        let err = blobs.resolve("sha256:n", "linux/amd64").unwrap_err();
        assert!(
            err.to_string().starts_with("sha256:n-config: not JSON"),
            "{err}"
        );
    }

    #[test]
    fn layer_and_diff_id_counts_must_agree() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:m", 3, 2);
        let err = blobs.resolve("sha256:m", "linux/amd64").unwrap_err();
        assert!(matches!(
            &err,
            ResolveError::LayerCount { digest, layers: 3, diff_ids: 2 } if digest == "sha256:m"
        ));
        assert_eq!(
            err.to_string(),
            "sha256:m: the manifest has 3 layers but its config has 2 diff_ids"
        );
    }

    #[test]
    fn a_fetch_error_is_passed_through() {
        let mut blobs = Blobs::default();
        blobs.image("sha256:m", 1, 1);
        blobs.0.remove("sha256:m-config");
        let err = blobs.resolve("sha256:m", "linux/amd64").unwrap_err();
        let ResolveError::Fetch { digest, source } = &err else {
            panic!("{err}");
        };
        assert_eq!(digest, "sha256:m-config");
        assert_eq!(source, &Missing("sha256:m-config".to_string()));
        assert_eq!(
            err.to_string(),
            "cannot fetch sha256:m-config: blob sha256:m-config is not there"
        );
    }

    #[test]
    fn an_error_source_is_exposed_when_it_is_an_error() {
        let platform = platform_of("linux/amd64");
        let err = resolve("sha256:m", &platform, |_| {
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "disk on fire");
    }
}
