//! The workload store: every known workload, its status and its latest
//! SBOM document, kept in a redb database file.
//!
//! The store owns what is known, not what happens next: the sources tell it
//! which references exist and where they can be read, the scan workers tell
//! it how scans went, and the queue decides what to scan. It publishes an
//! [`Event`] when a workload appears, changes references or goes away.
//!
//! Every change is one redb write transaction, committed with redb's
//! default durability (the commit is on disk when it returns), and only
//! then applied to the in-memory copy and announced. So a crash at any
//! moment loses no finished result, never leaves a document without the
//! Success status that came with it or the reverse, and no subscriber hears
//! of a change that a crash could undo. Records are JSON, in two tables:
//! `workloads` (id -> workload) and `documents` (id -> document bytes).
//!
//! Workloads are read from memory; documents, which can weigh megabytes
//! each, are read from the database when asked for.
//!
//! Status changes send no event. The scan workers make them and already
//! know, and a subscriber that queues a scan on [`Event::Set`] would
//! otherwise rescan every workload after each of its own scans.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::workload::{Kind, Origin, Status, Workload, WorkloadId};

/// The most of the database file redb keeps in memory.
const CACHE_SIZE: usize = 16 << 20;

/// Workload id -> the workload, as JSON.
const WORKLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("workloads");

/// Workload id -> its latest SBOM document (CycloneDX JSON).
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

/// Events a subscriber can fall behind by before it misses some. One that
/// does gets `RecvError::Lagged` and should read [`Store::list`] again.
const EVENT_CAPACITY: usize = 1024;

/// A change to the set of workloads, sent once it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The workload is new, or its references (or their origins) changed.
    Set(WorkloadId),
    /// The workload and its document are gone.
    Unset(WorkloadId),
}

/// Why the store could not be opened, read or changed. Every message names
/// the database file, and the workload when there is one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: cannot create the directory of the workload store: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot open the workload store: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("{}: cannot load the workload store: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("{}: cannot encode workload {id}: {source}", path.display())]
    Encode {
        path: PathBuf,
        id: WorkloadId,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: cannot write workload {id}: {source}", path.display())]
    Write {
        path: PathBuf,
        id: WorkloadId,
        #[source]
        source: redb::Error,
    },
    #[error("{}: cannot read the document of workload {id}: {source}", path.display())]
    Read {
        path: PathBuf,
        id: WorkloadId,
        #[source]
        source: redb::Error,
    },
    /// A Success given without its document, or a document without Success.
    #[error(
        "{}: workload {id}: {operation} cannot record the status {status}",
        path.display()
    )]
    WrongStatus {
        path: PathBuf,
        id: WorkloadId,
        operation: &'static str,
        status: &'static str,
    },
}

/// The workload store. `Send + Sync`, shared as `Arc<Store>`.
///
/// Changes block on a disk write (one fsync each); reads do not wait for
/// them. A change that changes nothing writes nothing, so a source that
/// resyncs what the store already has costs no disk writes.
///
/// TODO: a source that reports thousands of new images at once (a first
/// start on a large node) commits once per reference; a batched
/// `set_reference` matters if that first start is too slow.
///
/// ```
/// use scanhost::store::{Event, Store};
/// use scanhost::workload::{HOST_ID, Kind, Origin, WorkloadId};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(&dir.path().join("store.redb"))?;
/// let mut events = store.subscribe();
/// let host = WorkloadId(HOST_ID.into());
/// let origin = Origin::Host { root: "/".into() };
/// assert!(store.set_reference(&host, Kind::Host, HOST_ID, origin)?);
/// assert_eq!(events.try_recv()?, Event::Set(host));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    /// The database file, for messages.
    path: PathBuf,
    /// Shared with the plugin cache, which keeps its tables here too.
    db: Arc<Database>,
    /// The `workloads` table as of the last commit: only a holder of
    /// `writer` changes it, right after its commit. See [`Memory`] for its
    /// invariants.
    memory: RwLock<Memory>,
    /// Held for the whole of a change, from reading `memory` to sending the
    /// events: changes are planned on the latest state, and committed,
    /// applied and announced one at a time, in the same order.
    writer: Mutex<()>,
    events: broadcast::Sender<Event>,
}

#[derive(Default)]
struct Memory {
    /// Every workload, by id. Every workload has at least one reference. A
    /// document exists in the `documents` table only for a workload in
    /// here that has had a Success: its status is Success, or a later scan
    /// has moved it to Pending, Scanning or Failed since, and the last good
    /// document stays until the next Success replaces it.
    workloads: BTreeMap<WorkloadId, Workload>,
    /// The workload holding each reference: `holders[r] == id` exactly when
    /// `workloads[id].references` has `r`. So a reference is held by at
    /// most one workload.
    holders: HashMap<String, WorkloadId>,
}

impl Memory {
    fn insert(&mut self, workload: Workload) {
        self.remove(&workload.id);
        for reference in workload.references.keys() {
            self.holders.insert(reference.clone(), workload.id.clone());
        }
        self.workloads.insert(workload.id.clone(), workload);
    }

    /// Removes the workload and the references it still holds: one that
    /// another workload took in the same change stays with that one,
    /// whichever of the two is applied first.
    fn remove(&mut self, id: &WorkloadId) {
        let Some(workload) = self.workloads.remove(id) else {
            return;
        };
        for reference in workload.references.keys() {
            if self.holders.get(reference) == Some(id) {
                self.holders.remove(reference);
            }
        }
    }
}

/// One step of a change: written to the database, then applied to memory.
enum Change<'a> {
    /// Inserts or replaces the workload; `json` is its record.
    Put { workload: Workload, json: Vec<u8> },
    /// Replaces the workload's document.
    Document { id: WorkloadId, document: &'a [u8] },
    /// Deletes the workload and its document.
    Delete(WorkloadId),
}

impl Change<'_> {
    /// The workload changed. A failed write names that of its first step.
    fn id(&self) -> &WorkloadId {
        match self {
            Change::Put { workload, .. } => &workload.id,
            Change::Document { id, .. } | Change::Delete(id) => id,
        }
    }
}

/// The steps of one change and the events that announce them.
struct Steps<'a> {
    path: &'a Path,
    changes: Vec<Change<'a>>,
    events: Vec<Event>,
}

impl<'a> Steps<'a> {
    /// Writes the workload without announcing it (a status change).
    fn put(&mut self, workload: Workload) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&workload).map_err(|source| StoreError::Encode {
            path: self.path.to_owned(),
            id: workload.id.clone(),
            source,
        })?;
        self.changes.push(Change::Put { workload, json });
        Ok(())
    }

    /// Writes the workload and announces it as set.
    fn set(&mut self, workload: Workload) -> Result<(), StoreError> {
        self.events.push(Event::Set(workload.id.clone()));
        self.put(workload)
    }

    fn document(&mut self, id: &WorkloadId, document: &'a [u8]) {
        let id = id.clone();
        self.changes.push(Change::Document { id, document });
    }

    fn delete(&mut self, id: &WorkloadId) {
        self.changes.push(Change::Delete(id.clone()));
        self.events.push(Event::Unset(id.clone()));
    }

    /// Takes `reference` from `holder`, which goes when it was its last
    /// one. Returns true when the workload goes.
    fn release(
        &mut self,
        memory: &Memory,
        holder: &WorkloadId,
        reference: &str,
    ) -> Result<bool, StoreError> {
        let mut workload = memory.workloads[holder].clone();
        workload.references.remove(reference);
        if workload.references.is_empty() {
            self.delete(holder);
            return Ok(true);
        }
        self.set(workload)?;
        Ok(false)
    }
}

impl Store {
    /// Opens the database at `path`, creating it (and its directory) when
    /// missing, and loads every workload.
    ///
    /// A record that cannot be used (one this version cannot read, one
    /// filed under another id, one without references of its own) is
    /// dropped with its document and a warning: the sources report the
    /// workload again and it is scanned again.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let started = Instant::now();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        // redb caches up to 1 GiB of pages by default; documents are read
        // rarely (the API, a restart), so a small cache is enough and keeps
        // the agent's memory flat as documents accumulate.
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE)
            .create(path)
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let memory = load(&db).map_err(|source| StoreError::Load {
            path: path.to_owned(),
            source,
        })?;
        info!(
            path = %path.display(),
            workloads = memory.workloads.len(),
            elapsed = ?started.elapsed(),
            "workload store opened"
        );
        Ok(Store {
            path: path.to_owned(),
            db: Arc::new(db),
            memory: RwLock::new(memory),
            writer: Mutex::new(()),
            events: broadcast::channel(EVENT_CAPACITY).0,
        })
    }

    /// The database, for the plugin cache to keep its tables in.
    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Events for every change from now on, in the order of the changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// `reference` of the workload `id` is at `origin`.
    ///
    /// Creates the workload (Pending, [`Event::Set`]) when it is new, and
    /// otherwise adds or updates the reference (and the kind), with
    /// `Event::Set` only when something changed. A reference is held by
    /// one workload at most: when another one held it (the name moved to
    /// another image), it loses it, with `Event::Set`, or goes when it was
    /// its last reference, with [`Event::Unset`]. Returns true when the
    /// workload is new.
    pub fn set_reference(
        &self,
        id: &WorkloadId,
        kind: Kind,
        reference: &str,
        origin: Origin,
    ) -> Result<bool, StoreError> {
        self.change(|memory, steps| {
            let current = memory.workloads.get(id);
            let mut workload = current.cloned().unwrap_or_else(|| Workload {
                id: id.clone(),
                kind,
                references: BTreeMap::new(),
                status: Status::Pending,
            });
            workload.kind = kind;
            workload.references.insert(reference.to_owned(), origin);
            if current == Some(&workload) {
                return Ok(false);
            }

            // The workload being set comes first, so that a failed write
            // names it; the order does not matter otherwise.
            steps.set(workload)?;
            if let Some(holder) = memory.holders.get(reference).filter(|h| *h != id) {
                debug!(reference, from = %holder, to = %id, "reference moved");
                steps.release(memory, holder, reference)?;
            }
            Ok(current.is_none())
        })
    }

    /// Removes `reference` from whichever workload holds it. The workload
    /// (and its document) goes, with [`Event::Unset`], when it was its
    /// last reference; otherwise it stays, with [`Event::Set`]. Returns the
    /// id of a workload that went.
    pub fn unset_reference(&self, reference: &str) -> Result<Option<WorkloadId>, StoreError> {
        self.change(|memory, steps| {
            let Some(holder) = memory.holders.get(reference) else {
                return Ok(None);
            };
            let gone = steps.release(memory, holder, reference)?;
            Ok(gone.then(|| holder.clone()))
        })
    }

    /// Removes the workload, its references and its document
    /// ([`Event::Unset`]). Does nothing when it is absent.
    pub fn remove(&self, id: &WorkloadId) -> Result<(), StoreError> {
        self.change(|memory, steps| {
            if memory.workloads.contains_key(id) {
                steps.delete(id);
            }
            Ok(())
        })
    }

    /// Sets the status of an existing workload to Pending, Scanning or
    /// Failed; its last document, if any, stays. Returns false, changing
    /// nothing, when the workload is gone: it was removed while being
    /// scanned, and the result is discarded.
    ///
    /// A Success is refused ([`StoreError::WrongStatus`]): it comes with
    /// its document, through [`Store::finish`].
    pub fn set_status(&self, id: &WorkloadId, status: Status) -> Result<bool, StoreError> {
        if matches!(status, Status::Success { .. }) {
            return Err(self.wrong_status(id, "set_status", &status));
        }
        self.change(|memory, steps| {
            let Some(current) = memory.workloads.get(id) else {
                debug!(%id, status = status.name(), "status of a removed workload discarded");
                return Ok(false);
            };
            if current.status != status {
                let mut workload = current.clone();
                workload.status = status;
                steps.put(workload)?;
            }
            Ok(true)
        })
    }

    /// Records a successful scan: its Success status and its document, in
    /// one transaction. Returns false, storing nothing, when the workload
    /// is gone.
    ///
    /// Any other status is refused ([`StoreError::WrongStatus`]).
    pub fn finish(
        &self,
        id: &WorkloadId,
        status: Status,
        document: &[u8],
    ) -> Result<bool, StoreError> {
        if !matches!(status, Status::Success { .. }) {
            return Err(self.wrong_status(id, "finish", &status));
        }
        self.change(|memory, steps| {
            let Some(current) = memory.workloads.get(id) else {
                debug!(%id, "result of a removed workload discarded");
                return Ok(false);
            };
            let mut workload = current.clone();
            workload.status = status;
            steps.put(workload)?;
            steps.document(id, document);
            Ok(true)
        })
    }

    pub fn get(&self, id: &WorkloadId) -> Option<Workload> {
        self.read().workloads.get(id).cloned()
    }

    /// Every workload, sorted by id.
    pub fn list(&self) -> Vec<Workload> {
        self.read().workloads.values().cloned().collect()
    }

    /// The latest document of the workload, read from the database.
    pub fn document(&self, id: &WorkloadId) -> Result<Option<Vec<u8>>, StoreError> {
        read_document(&self.db, id).map_err(|source| StoreError::Read {
            path: self.path.clone(),
            id: id.clone(),
            source,
        })
    }

    /// Where `reference` is read from, when a workload holds it.
    pub fn origin(&self, reference: &str) -> Option<Origin> {
        let memory = self.read();
        let holder = memory.holders.get(reference)?;
        memory
            .workloads
            .get(holder)?
            .references
            .get(reference)
            .cloned()
    }

    /// The references whose origin matches `pred`, with their workloads,
    /// by workload id and then reference: what the store has from one
    /// source (an OCI layout, a containerd namespace), to resync it.
    pub fn references_where(&self, pred: impl Fn(&Origin) -> bool) -> Vec<(String, WorkloadId)> {
        let memory = self.read();
        let mut found = Vec::new();
        for workload in memory.workloads.values() {
            for (reference, origin) in &workload.references {
                if pred(origin) {
                    found.push((reference.clone(), workload.id.clone()));
                }
            }
        }
        found
    }

    /// Plans a change on the current state, commits it, applies it to
    /// memory and sends its events; a plan without steps writes nothing.
    fn change<'a, T>(
        &'a self,
        plan: impl FnOnce(&Memory, &mut Steps<'a>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while `writer` was held happened before the commit (the
        // change is lost, memory untouched) or after it, while applying
        // steps that only insert into and remove from maps: either way the
        // state is whole, so a poisoned lock is taken over.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut steps = Steps {
            path: &self.path,
            changes: Vec::new(),
            events: Vec::new(),
        };
        let value = plan(&self.read(), &mut steps)?;
        let Some(first) = steps.changes.first() else {
            return Ok(value);
        };

        write_changes(&self.db, &steps.changes).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            id: first.id().clone(),
            source,
        })?;

        let mut memory = self.memory.write().unwrap_or_else(PoisonError::into_inner);
        for change in steps.changes {
            match change {
                Change::Put { workload, .. } => memory.insert(workload),
                Change::Delete(id) => memory.remove(&id),
                Change::Document { .. } => {}
            }
        }
        drop(memory);

        for event in steps.events {
            debug!(?event, "workload store changed");
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
        Ok(value)
    }

    fn read(&self) -> RwLockReadGuard<'_, Memory> {
        self.memory.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn wrong_status(
        &self,
        id: &WorkloadId,
        operation: &'static str,
        status: &Status,
    ) -> StoreError {
        StoreError::WrongStatus {
            path: self.path.clone(),
            id: id.clone(),
            operation,
            status: status.name(),
        }
    }
}

/// Writes the steps of one change in one transaction.
fn write_changes(db: &Database, changes: &[Change<'_>]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut workloads = txn.open_table(WORKLOADS)?;
        let mut documents = txn.open_table(DOCUMENTS)?;
        for change in changes {
            match change {
                Change::Put { workload, json } => {
                    workloads.insert(workload.id.0.as_str(), json.as_slice())?;
                }
                Change::Document { id, document } => {
                    documents.insert(id.0.as_str(), *document)?;
                }
                Change::Delete(id) => {
                    workloads.remove(id.0.as_str())?;
                    documents.remove(id.0.as_str())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn read_document(db: &Database, id: &WorkloadId) -> Result<Option<Vec<u8>>, redb::Error> {
    let txn = db.begin_read()?;
    let documents = txn.open_table(DOCUMENTS)?;
    let document = documents.get(id.0.as_str())?;
    Ok(document.map(|document| document.value().to_vec()))
}

/// Reads every workload, dropping the records that cannot be used, in a
/// write transaction that also creates the tables of a new database.
fn load(db: &Database) -> Result<Memory, redb::Error> {
    let txn = db.begin_write()?;
    let mut memory = Memory::default();
    {
        let mut workloads = txn.open_table(WORKLOADS)?;
        let mut documents = txn.open_table(DOCUMENTS)?;
        let mut dropped = Vec::new();
        for entry in workloads.iter()? {
            let (key, value) = entry?;
            let id = key.value();
            let workload = match serde_json::from_slice::<Workload>(value.value()) {
                Ok(workload) if workload.id.0 != id => {
                    warn!(id, recorded = %workload.id, "dropping a workload filed under another id");
                    dropped.push(id.to_owned());
                    continue;
                }
                Ok(workload) => workload,
                Err(error) => {
                    warn!(id, %error, "dropping a workload record that cannot be read");
                    dropped.push(id.to_owned());
                    continue;
                }
            };
            // Only a fault could make two records share a reference: the
            // later one is dropped rather than the invariant broken.
            if workload.references.is_empty()
                || workload
                    .references
                    .keys()
                    .any(|r| memory.holders.contains_key(r))
            {
                warn!(id, "dropping a workload without references of its own");
                dropped.push(id.to_owned());
                continue;
            }
            memory.insert(workload);
        }
        for id in &dropped {
            workloads.remove(id.as_str())?;
            documents.remove(id.as_str())?;
        }
    }
    txn.commit()?;
    Ok(memory)
}

#[cfg(test)]
mod tests;
