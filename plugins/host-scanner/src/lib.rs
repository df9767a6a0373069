//! The `host-scanner` plugin: the packages installed in a root filesystem.
//!
//! The host preopens the root read-only at the path the target names and
//! nothing else. The analyzers read the package databases at their known
//! paths, resolving every symlink inside the root, so nothing outside it is
//! ever opened: the WASI sandbox refuses that too, but the analyzers do not
//! rely on it. The plugin does not walk the tree, so pseudo filesystems
//! such as `proc`, `sys` and `dev` are never entered.

wit_bindgen::generate!({ world: "scanner", path: "../../wit" });

use exports::scanhost::plugin::plugin::Guest;
use scanhost::plugin::log::{Level, log};
use scanhost::plugin::types::{
    Description, Location, OsInfo, Package, Report, ScanError, Target, TargetKind,
};
use scanhost_analyzers::{DirRoot, analyze};

struct HostScanner;

impl Guest for HostScanner {
    fn describe() -> Description {
        Description {
            name: "host-scanner".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kinds: vec![TargetKind::Host],
        }
    }

    fn scan(target: Target) -> Result<Report, ScanError> {
        let Target::Host(host) = target else {
            return Err(ScanError::Fatal(
                "host-scanner scans host targets only".to_string(),
            ));
        };

        let inventory = analyze(&DirRoot::new(&host.root));
        for warning in &inventory.warnings {
            log(Level::Warn, warning);
        }

        Ok(Report {
            os: inventory.os.map(|os| OsInfo {
                id: os.id,
                version_id: os.version_id,
                pretty_name: os.pretty_name,
            }),
            packages: inventory
                .packages
                .into_iter()
                .map(|p| Package {
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
                        layer_digest: None,
                    },
                })
                .collect(),
        })
    }
}

export!(HostScanner);
