//! Which contract version a component implements, and whether this host
//! can run it.
//!
//! A component names the contract version in the name of the interface it
//! exports: `scanhost:plugin/plugin@0.1.0`. Versions follow semantic
//! versioning with Cargo's caret rule: the host runs a component built for
//! version V when V's compatible range contains the host's version, so a
//! plugin built for an older minor of 1.x, or an older patch of 0.1, keeps
//! loading, and one built for a newer or another major version is refused.

use semver::{Version, VersionReq};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::bindings::{CONTRACT_VERSION, PLUGIN_INTERFACE};

/// Why a component's contract is not one this host runs.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(
        "built for contract version {found}, but this host implements {PLUGIN_INTERFACE}@{CONTRACT_VERSION}"
    )]
    Incompatible { found: Version },
    #[error(
        "exports no {PLUGIN_INTERFACE} interface (it exports: {exports}); this host implements {PLUGIN_INTERFACE}@{CONTRACT_VERSION}"
    )]
    Missing { exports: String },
}

/// The contract version `component` was built for, when this host runs it.
pub fn check(engine: &Engine, component: &Component) -> Result<Version, ContractError> {
    let host = Version::parse(CONTRACT_VERSION).expect("the contract version is valid");
    let ty = component.component_type();
    let mut exports = Vec::new();
    for (name, _) in ty.exports(engine) {
        let version = name
            .strip_prefix(PLUGIN_INTERFACE)
            .and_then(|rest| rest.strip_prefix('@'))
            .and_then(|v| Version::parse(v).ok());
        match version {
            Some(found) if compatible(&found, &host) => return Ok(found),
            Some(found) => return Err(ContractError::Incompatible { found }),
            None => exports.push(name.to_string()),
        }
    }
    let exports = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    Err(ContractError::Missing { exports })
}

fn compatible(plugin: &Version, host: &Version) -> bool {
    VersionReq::parse(&format!("^{plugin}")).is_ok_and(|req| req.matches(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn same_version_is_compatible() {
        assert!(compatible(&v("0.1.0"), &v("0.1.0")));
    }

    #[test]
    fn older_patch_of_zero_minor_is_compatible() {
        assert!(compatible(&v("0.1.0"), &v("0.1.3")));
    }

    #[test]
    fn newer_or_other_minor_of_zero_major_is_refused() {
        assert!(!compatible(&v("0.1.4"), &v("0.1.3")));
        assert!(!compatible(&v("0.2.0"), &v("0.1.3")));
        assert!(!compatible(&v("0.0.9"), &v("0.1.3")));
    }

    #[test]
    fn older_minor_of_same_major_is_compatible() {
        assert!(compatible(&v("1.1.0"), &v("1.4.0")));
        assert!(!compatible(&v("1.0.0"), &v("2.0.0")));
        assert!(!compatible(&v("1.0.0"), &v("0.1.0")));
    }
}
