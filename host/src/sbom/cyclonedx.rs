//! CycloneDX 1.6 JSON documents.
//!
//! One component per package (type `library`, `bom-ref` its purl), one
//! `operating-system` component, `metadata.component` for the subject and
//! `metadata.tools` naming scanhost and each plugin that reported, with
//! its version and component digest. Facts CycloneDX has no field for (a
//! package's ecosystem, architecture, source package and the file it was
//! found in) are properties in the `scanhost:` namespace.

use serde::Serialize;

use super::Subject;
use crate::plugins::{OsInfo, Package};
use crate::scan::Outcome;

pub const SPEC_VERSION: &str = "1.6";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
    /// `scanhost:plugin-failure`: a plugin that failed for good while
    /// others reported; the document holds the others' packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct License {
    license: LicenseName,
}

#[derive(Serialize)]
struct LicenseName {
    name: String,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

/// The document for `outcome`, a scan of `subject`.
pub fn document(subject: &Subject, outcome: &Outcome) -> Document {
    let mut tools = vec![Component {
        kind: "application",
        name: "scanhost".to_string(),
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        ..Component::default()
    }];
    for plugin in &outcome.plugins {
        tools.push(Component {
            kind: "application",
            name: plugin.name.clone(),
            version: Some(plugin.version.clone()),
            hashes: sha256(&plugin.digest).into_iter().collect(),
            ..Component::default()
        });
    }

    let mut components = Vec::with_capacity(outcome.packages.len() + 1);
    if let Some(os) = &outcome.os {
        components.push(os_component(os));
    }
    components.extend(outcome.packages.iter().map(package_component));

    Document {
        bom_format: "CycloneDX",
        spec_version: SPEC_VERSION,
        serial_number: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        version: 1,
        metadata: Metadata {
            timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            tools: Tools { components: tools },
            component: subject_component(subject),
            properties: outcome
                .failures
                .iter()
                .map(|failure| Property {
                    name: "scanhost:plugin-failure",
                    value: failure.to_string(),
                })
                .collect(),
        },
        components,
    }
}

fn subject_component(subject: &Subject) -> Component {
    match subject {
        Subject::RootFilesystem { path } => Component {
            kind: "file",
            bom_ref: Some(format!("rootfs:{path}")),
            name: path.clone(),
            ..Component::default()
        },
        Subject::Image {
            name,
            references,
            manifest_digest,
            id,
        } => {
            let mut properties = vec![
                Property {
                    name: "scanhost:image:id",
                    value: id.clone(),
                },
                Property {
                    name: "scanhost:image:manifest-digest",
                    value: manifest_digest.clone(),
                },
            ];
            properties.extend(references.iter().map(|r| Property {
                name: "scanhost:image:reference",
                value: r.clone(),
            }));
            Component {
                kind: "container",
                bom_ref: Some(format!("image:{id}")),
                name: name.clone(),
                version: Some(manifest_digest.clone()),
                properties,
                ..Component::default()
            }
        }
    }
}

fn os_component(os: &OsInfo) -> Component {
    Component {
        kind: "operating-system",
        bom_ref: Some(format!("os:{}@{}", os.id, os.version_id)),
        name: os.id.clone(),
        version: non_empty(&os.version_id),
        description: non_empty(&os.pretty_name),
        ..Component::default()
    }
}

fn package_component(package: &Package) -> Component {
    let mut properties = vec![Property {
        name: "scanhost:package:ecosystem",
        value: package.ecosystem.clone(),
    }];
    let optional = [
        ("scanhost:package:architecture", &package.architecture),
        ("scanhost:package:source-name", &package.source_name),
        ("scanhost:package:source-version", &package.source_version),
        (
            "scanhost:location:layer-digest",
            &package.location.layer_digest,
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            properties.push(Property {
                name,
                value: value.clone(),
            });
        }
    }
    properties.push(Property {
        name: "scanhost:location:path",
        value: package.location.path.clone(),
    });

    Component {
        kind: "library",
        bom_ref: Some(package.purl.clone()),
        name: package.name.clone(),
        version: Some(package.version.clone()),
        purl: Some(package.purl.clone()),
        licenses: package
            .licenses
            .iter()
            .map(|name| License {
                license: LicenseName { name: name.clone() },
            })
            .collect(),
        properties,
        ..Component::default()
    }
}

fn sha256(digest: &str) -> Option<Hash> {
    digest.strip_prefix("sha256:").map(|hex| Hash {
        alg: "SHA-256",
        content: hex.to_string(),
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
