//! Where workloads come from. Each source keeps the store in step with
//! what it sees; it never talks to the queue: the store's events do.
//!
//! - `host`: the machine's root filesystem, scanned at start and then at
//!   an interval;
//! - `oci_layout`: OCI image layout directories, watched for images added
//!   to or removed from their `index.json`;
//! - `containerd`: the images of containerd namespaces, listed and then
//!   followed through containerd's events.
//!
//! The image sources share [`sync`] and [`set`]: an image is identified
//! (its config digest is its workload id) only when one of its references
//! is new or points at another digest.

pub mod containerd;
pub mod host;
pub mod oci_layout;

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::store::Store;
use crate::workload::{Kind, Origin, WorkloadId};

/// A reference to an image, as a source sees it.
pub struct Seen {
    pub reference: String,
    pub origin: Origin,
}

/// Sets `seen` in the store, identifying its image with `identify` unless
/// the store has the reference at the same origin already. An image that
/// cannot be identified is left out with a warning (once for each
/// reference and origin; a later sync tries again), and the reference
/// leaves the image it named before. Returns whether the store holds the
/// reference afterwards.
pub fn set(
    store: &Store,
    seen: Seen,
    identify: &impl Fn(&Origin) -> Result<WorkloadId, String>,
) -> bool {
    if store.origin(&seen.reference).as_ref() == Some(&seen.origin) {
        return true;
    }
    let id = match identify(&seen.origin) {
        Ok(id) => id,
        Err(err) => {
            if first_skip(&seen) {
                tracing::warn!(
                    reference = seen.reference,
                    "image skipped until it can be read: {err}"
                );
            } else {
                tracing::debug!(reference = seen.reference, "image skipped again: {err}");
            }
            unset(store, &seen.reference);
            return false;
        }
    };
    match store.set_reference(&id, Kind::ContainerImage, &seen.reference, seen.origin) {
        Ok(_) => true,
        Err(err) => {
            tracing::error!(reference = seen.reference, "cannot store the image: {err}");
            false
        }
    }
}

/// Makes the references of the store whose origin is `ours` exactly the
/// `seen` ones: each is [`set`], and every other reference of ours is
/// unset, which removes an image once its last reference is gone.
pub fn sync(
    store: &Store,
    ours: impl Fn(&Origin) -> bool,
    seen: Vec<Seen>,
    identify: impl Fn(&Origin) -> Result<WorkloadId, String>,
) {
    let known = store.references_where(ours);
    let listed: HashSet<String> = seen.iter().map(|s| s.reference.clone()).collect();
    for one in seen {
        set(store, one, &identify);
    }
    for (reference, _) in known {
        if !listed.contains(&reference) {
            unset(store, &reference);
        }
    }
}

/// Whether `seen` is skipped for the first time: the warning is not
/// repeated at every sync.
fn first_skip(seen: &Seen) -> bool {
    static SKIPPED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    let mut skipped = SKIPPED.lock().unwrap_or_else(PoisonError::into_inner);
    let skipped = skipped.get_or_insert_with(HashSet::new);
    // Bounded: past this, warnings may repeat.
    if skipped.len() > 10_000 {
        skipped.clear();
    }
    skipped.insert((seen.reference.clone(), format!("{:?}", seen.origin)))
}

/// Removes `reference` from the store.
pub fn unset(store: &Store, reference: &str) {
    if let Err(err) = store.unset_reference(reference) {
        tracing::error!(reference, "cannot remove the image: {err}");
    }
}
