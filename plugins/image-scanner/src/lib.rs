//! The `image-scanner` plugin: the packages installed in a container image.
//!
//! The host serves the image's blobs through the `content` import, already
//! decompressed and checked against their digests. This plugin reads the
//! image through that import with [`read_image`] (which chooses the
//! manifest for the platform, reads the config and applies the layers from
//! bottom to top with overlay semantics, keeping only the files the
//! analyzers read), then runs the analyzers on the result. What it made of
//! each layer is kept through the `cache` import under the layer's
//! diff_id, so a layer shared by many images is read once.
//!
//! Failures map to the contract as the host expects: a blob that is not
//! there yet is retryable, a corrupt or unsupported image is fatal.

wit_bindgen::generate!({ world: "scanner", path: "../../wit" });
scanhost_image::contract_content!(Host);

use exports::scanhost::plugin::plugin::Guest;
use scanhost::plugin::log::{Level, log};
use scanhost::plugin::types::{
    Description, ImageTarget, Location, OsInfo, Package, Report, ScanError, Target, TargetKind,
};
use scanhost_analyzers::{analyze, resolve as resolve_path, wanted};
use scanhost_image::oci::Platform;
use scanhost_image::{ImageError, read_image};

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
    let (_, overlay) =
        read_image(&Host, &image.digest, &platform, wanted).map_err(|err| match err {
            ImageError::Content(err) => Host::failure(err),
            ImageError::Invalid(reason) => ScanError::Fatal(reason),
        })?;
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

export!(ImageScanner);
