//! A scanner that misbehaves on request, for the host's fault tests.
//!
//! The behaviour comes from the file `fault` at the root of the scanned
//! tree, so that one component covers every fault and each test states
//! its fault next to its input.

use std::hint::black_box;

wit_bindgen::generate!({ world: "scanner", path: "../../../wit" });

use exports::scanhost::plugin::plugin::Guest;
use scanhost::plugin::log::{Level, log};
use scanhost::plugin::types::{Description, Report, ScanError, Target, TargetKind};

struct Faults;

impl Guest for Faults {
    fn describe() -> Description {
        Description {
            name: "faults".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kinds: vec![TargetKind::Host],
        }
    }

    fn scan(target: Target) -> Result<Report, ScanError> {
        let Target::Host(host) = target else {
            return Err(ScanError::Fatal("only host targets".to_string()));
        };
        let fault = std::fs::read_to_string(format!("{}/fault", host.root)).unwrap_or_default();
        match fault.trim() {
            "" => Ok(Report {
                os: None,
                packages: Vec::new(),
            }),
            "spin" => spin(),
            "hog" => hog(),
            "trap" => panic!("the trap fault was asked for"),
            "escape" => escape(),
            other => Err(ScanError::Fatal(format!("unknown fault {other:?}"))),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut chunks = Vec::new();
    loop {
        // Touch every page so the memory is really used.
        chunks.push(black_box(vec![1u8; 16 << 20]));
    }
}

/// Tries every way out of the preopen it knows; each must fail.
fn escape() -> Result<Report, ScanError> {
    let attempts = [
        "/../../../../etc/hostname",
        "../etc/hostname",
        "/proc/self/environ",
        "/link-absolute",
        "/link-relative",
    ];
    for path in attempts {
        match std::fs::read(path) {
            Ok(bytes) => {
                return Err(ScanError::Fatal(format!(
                    "escaped: read {} bytes from {path}",
                    bytes.len()
                )));
            }
            Err(err) => log(Level::Warn, &format!("denied {path}: {err}")),
        }
    }
    Ok(Report {
        os: None,
        packages: Vec::new(),
    })
}

export!(Faults);
