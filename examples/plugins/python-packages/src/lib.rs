//! The `python-packages` plugin: the Python distributions installed in a
//! root filesystem or a container image, reported as `pypi` packages.
//!
//! It is an example of a scanhost plugin built outside the scanhost
//! repository's workspace, against the WIT contract in `wit/` and the
//! plugin libraries `scanhost-analyzers` (the [`Root`] trait and its
//! walk) and `scanhost-image` ([`read_image`], which reads an image
//! through the `content` import once the plugin has implemented its
//! [`Content`] trait over the bindings).
//!
//! Both kinds of target end in the same search, [`installed::find`], over
//! a different [`Root`]:
//! - a host: the root the host preopens, read with `std::fs`. The pseudo
//!   filesystems `proc`, `sys` and `dev` at its top are not walked;
//! - a container image: its layers applied bottom first to an [`Overlay`]
//!   that keeps only the metadata files of distributions (and every
//!   directory and symlink), so the memory needed does not grow with the
//!   size of the image. Each package then names the layer that last wrote
//!   its metadata.
//!
//! Warnings go to the host's log; a scan fails only when an image cannot
//! be read: as retryable when a blob is not there yet or could not be
//! read, as fatal when it is corrupt.
//!
//! [`Root`]: scanhost_analyzers::Root
//! [`Overlay`]: scanhost_image::overlay::Overlay

mod installed;
mod metadata;

wit_bindgen::generate!({ world: "scanner", path: "../../../wit" });
scanhost_image::contract_content!(Host);

use exports::scanhost::plugin::plugin::Guest;
use scanhost::plugin::log::{Level, log};
use scanhost::plugin::types::{
    Description, ImageTarget, Location, Package, Report, ScanError, Target, TargetKind,
};
use scanhost_analyzers::DirRoot;
use scanhost_image::oci::Platform;
use scanhost_image::{ImageError, read_image};

use installed::Found;

/// The top-level directories of a host that are not walked: kernel pseudo
/// filesystems, with no packages and entries without end.
const HOST_SKIP: [&str; 3] = ["proc", "sys", "dev"];

struct PythonPackages;

impl Guest for PythonPackages {
    fn describe() -> Description {
        Description {
            name: "python-packages".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kinds: vec![TargetKind::Host, TargetKind::ContainerImage],
        }
    }

    fn scan(target: Target) -> Result<Report, ScanError> {
        match target {
            Target::Host(host) => {
                let found = installed::find(&DirRoot::new(&host.root), &HOST_SKIP);
                Ok(report(found, |_| None))
            }
            Target::ContainerImage(image) => scan_image(&image),
        }
    }
}

fn scan_image(image: &ImageTarget) -> Result<Report, ScanError> {
    let platform = Platform {
        os: image.platform.os.clone(),
        architecture: image.platform.architecture.clone(),
        variant: image.platform.variant.clone(),
    };
    let (_, overlay) = read_image(&Host, &image.digest, &platform, installed::is_metadata)
        .map_err(|err| match err {
            ImageError::Content(failure) => Host::failure(failure),
            ImageError::Invalid(reason) => ScanError::Fatal(reason),
        })?;
    for warning in overlay.warnings() {
        log(Level::Warn, warning);
    }

    let found = installed::find(&overlay, &[]);
    Ok(report(found, |path| {
        overlay.layer_of(path).map(str::to_string)
    }))
}

/// The report of what [`installed::find`] found, with its warnings sent to
/// the log; `layer_of` gives the layer digest for a metadata path.
fn report(found: Found, layer_of: impl Fn(&str) -> Option<String>) -> Report {
    for warning in &found.warnings {
        log(Level::Warn, warning);
    }

    let packages = found
        .distributions
        .into_iter()
        .map(|d| Package {
            ecosystem: "pypi".to_string(),
            name: d.metadata.name,
            version: d.metadata.version,
            purl: d.purl,
            architecture: None,
            source_name: None,
            source_version: None,
            licenses: d.metadata.licenses,
            location: Location {
                layer_digest: layer_of(&d.path),
                path: d.path,
            },
        })
        .collect();
    Report { os: None, packages }
}

export!(PythonPackages);
