//! The `image-scanner` plugin: the packages installed in a container image.
//!
//! The host serves the image's blobs through the `content` import, already
//! decompressed and checked against their digests. This plugin chooses the
//! manifest for the platform, reads the config, applies the layers from
//! bottom to top with overlay semantics (keeping only the files the
//! analyzers read), and runs the analyzers on the result.
//!
//! Failures map to the contract as the host expects: a blob that is not
//! there yet is retryable, a corrupt or unsupported image is fatal.

mod layer_reader;

wit_bindgen::generate!({ world: "scanner", path: "../../wit" });

use exports::scanhost::plugin::plugin::Guest;
use scanhost::plugin::content::{ContentError, open_layer, read_blob};
use scanhost::plugin::log::{Level, log};
use scanhost::plugin::types::{
    Description, ImageTarget, Location, OsInfo, Package, Report, ScanError, Target, TargetKind,
};
use scanhost_analyzers::{analyze, resolve as resolve_path, wanted};
use scanhost_image::oci::Platform;
use scanhost_image::overlay::Overlay;
use scanhost_image::{ResolveError, resolve};

use layer_reader::LayerReader;

/// The largest index, manifest or config read.
const MAX_DOCUMENT: u64 = 4 << 20;

struct ImageScanner;

impl Guest for ImageScanner {
    fn describe() -> Description {
        Description {
            name: "image-scanner".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kinds: vec![TargetKind::ContainerImage],
        }
    }

    fn scan(target: Target) -> Result<Report, ScanError> {
        let Target::ContainerImage(image) = target else {
            return Err(ScanError::Fatal(
                "image-scanner scans container images only".to_string(),
            ));
        };
        scan_image(&image)
    }
}

fn scan_image(image: &ImageTarget) -> Result<Report, ScanError> {
    let platform = Platform {
        os: image.platform.os.clone(),
        architecture: image.platform.architecture.clone(),
        variant: image.platform.variant.clone(),
    };
    let resolved = resolve(&image.digest, &platform, |digest| {
        read_blob(digest, MAX_DOCUMENT)
    })
    .map_err(|err| match err {
        ResolveError::Fetch { source, .. } => content_failure(source),
        other => ScanError::Fatal(other.to_string()),
    })?;

    let mut overlay = Overlay::new(wanted);
    let layers = resolved.manifest.layers.iter();
    for (layer, diff_id) in layers.zip(&resolved.config.diff_ids) {
        let stream = open_layer(&layer.digest, diff_id).map_err(content_failure)?;
        let mut reader = LayerReader::new(stream);
        if let Err(err) = overlay.apply_layer(&layer.digest, &mut reader) {
            // A content error says why reading stopped; otherwise the blob
            // is checked against its digests before its tar is blamed, so
            // that a wrong blob is reported as such.
            if let Some(content) = reader.take_error() {
                return Err(content_failure(content));
            }
            reader.finish().map_err(content_failure)?;
            return Err(ScanError::Fatal(err.to_string()));
        }
        reader.finish().map_err(content_failure)?;
    }
    for warning in overlay.warnings() {
        log(Level::Warn, warning);
    }

    let inventory = analyze(&overlay);
    for warning in &inventory.warnings {
        log(Level::Warn, warning);
    }
    let packages = inventory
        .packages
        .into_iter()
        .map(|p| {
            let layer_digest = resolve_path(&overlay, &p.path)
                .ok()
                .and_then(|path| overlay.layer_of(&path).map(str::to_string));
            Package {
                ecosystem: p.ecosystem,
                name: p.name,
                version: p.version,
                purl: p.purl,
                architecture: p.architecture,
                source_name: p.source_name,
                source_version: p.source_version,
                licenses: p.licenses,
                location: Location {
                    path: p.path,
                    layer_digest,
                },
            }
        })
        .collect();

    Ok(Report {
        os: inventory.os.map(|os| OsInfo {
            id: os.id,
            version_id: os.version_id,
            pretty_name: os.pretty_name,
        }),
        packages,
    })
}

/// A blob that is not there yet, or a read that failed, can succeed later;
/// a blob that is there but wrong cannot.
fn content_failure(err: ContentError) -> ScanError {
    match err {
        ContentError::NotFound(message) | ContentError::Io(message) => {
            ScanError::Retryable(message)
        }
        ContentError::Invalid(message) => ScanError::Fatal(message),
    }
}

export!(ImageScanner);
