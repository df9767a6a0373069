//! Unit tests of the workload store, each on a database in a fresh
//! temporary directory: events, moved references, reopening and crashes.

use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use tokio::sync::broadcast::Receiver;

use super::*;
use crate::workload::PluginVersion;

fn image(n: u32) -> WorkloadId {
    WorkloadId(format!("sha256:{n:064x}"))
}

fn layout(digest: &WorkloadId) -> Origin {
    Origin::OciLayout {
        path: PathBuf::from("/var/lib/images"),
        digest: digest.0.clone(),
    }
}

fn success() -> Status {
    Status::Success {
        finished: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        duration: Duration::from_millis(1250),
        packages: 3,
        plugins: vec![PluginVersion {
            name: "image-scanner".into(),
            version: "0.1.0".into(),
            digest: format!("sha256:{:064x}", 7),
        }],
        failed_plugins: Vec::new(),
    }
}

fn failed() -> Status {
    Status::Failed {
        reason: "layer blob missing".into(),
        retryable: true,
        attempts: 1,
        next_attempt: None,
    }
}

/// The database path, in a directory that does not exist yet.
fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("state").join("store.redb")
}

/// Sets `reference` of the image `id`, read from an OCI layout.
fn tag(store: &Store, id: &WorkloadId, reference: &str) -> bool {
    let origin = layout(id);
    store
        .set_reference(id, Kind::ContainerImage, reference, origin)
        .unwrap()
}

fn received(events: &mut Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

const DOCUMENT: &[u8] = br#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#;

// A reference seen twice must not create, rewrite or announce anything
// the second time.
#[test]
fn new_reference_creates_a_pending_workload_once() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let mut events = store.subscribe();
    let id = image(1);

    assert!(tag(&store, &id, "app:1"));
    let workload = store.get(&id).unwrap();
    assert_eq!(workload.status, Status::Pending);
    assert_eq!(workload.references.len(), 1);
    assert_eq!(received(&mut events), [Event::Set(id.clone())]);

    assert!(!tag(&store, &id, "app:1"));
    assert_eq!(store.get(&id), Some(workload));
    assert_eq!(received(&mut events), []);
}

// An image must not be unset while a reference to it remains, and must
// take its document with it when the last one goes.
#[test]
fn workload_goes_with_its_last_reference() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let id = image(1);
    tag(&store, &id, "app:1");
    tag(&store, &id, "app:latest");
    assert!(store.finish(&id, success(), DOCUMENT).unwrap());
    let mut events = store.subscribe();

    assert_eq!(store.unset_reference("app:1").unwrap(), None);
    assert!(store.get(&id).is_some());
    assert!(!received(&mut events).contains(&Event::Unset(id.clone())));

    assert_eq!(
        store.unset_reference("app:latest").unwrap(),
        Some(id.clone())
    );
    assert_eq!(store.get(&id), None);
    assert_eq!(store.document(&id).unwrap(), None);
    assert_eq!(received(&mut events), [Event::Unset(id.clone())]);
    assert_eq!(store.unset_reference("app:latest").unwrap(), None);
}

// A tag moved to a new image must leave the old image, which goes when
// that was its last reference, instead of being held by both.
#[test]
fn moved_reference_leaves_the_old_workload() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let (old, new) = (image(1), image(2));
    tag(&store, &old, "app:latest");
    tag(&store, &old, "app:1");
    let mut events = store.subscribe();

    tag(&store, &new, "app:latest");
    assert_eq!(
        store
            .get(&old)
            .unwrap()
            .references
            .keys()
            .collect::<Vec<_>>(),
        ["app:1"]
    );
    assert_eq!(
        received(&mut events),
        [Event::Set(new.clone()), Event::Set(old.clone())]
    );

    tag(&store, &new, "app:1");
    assert_eq!(store.get(&old), None);
    assert_eq!(store.list().len(), 1);
    assert_eq!(
        received(&mut events),
        [Event::Set(new.clone()), Event::Unset(old.clone())]
    );

    // The moved references now belong to the new image alone.
    assert_eq!(store.unset_reference("app:latest").unwrap(), None);
    assert_eq!(store.unset_reference("app:1").unwrap(), Some(new));
}

// Changes racing from several threads must not leave a tag held by
// two images, nor memory out of step with the database.
#[test]
fn concurrent_moves_leave_one_holder() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    std::thread::scope(|scope| {
        for n in 0..4 {
            let store = &store;
            scope.spawn(move || {
                for round in 0..25 {
                    tag(store, &image(n), "app:latest");
                    tag(store, &image(n), &format!("app:{n}.{round}"));
                }
            });
        }
    });

    let holders = store.list().into_iter();
    let holders = holders.filter(|w| w.references.contains_key("app:latest"));
    assert_eq!(holders.count(), 1);
    let before = store.list();
    drop(store);
    assert_eq!(Store::open(&path).unwrap().list(), before);
}

// A finished scan must come back, status and document, after a restart.
#[test]
fn finish_survives_reopening() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let id = image(1);
    let before = {
        let store = Store::open(&path).unwrap();
        tag(&store, &id, "app:1");
        tag(&store, &image(2), "db:1");
        assert!(store.finish(&id, success(), DOCUMENT).unwrap());
        assert!(store.set_status(&image(2), failed()).unwrap());
        store.list()
    };

    let store = Store::open(&path).unwrap();
    assert_eq!(store.list(), before);
    assert_eq!(store.get(&id).unwrap().status, success());
    assert_eq!(store.document(&id).unwrap().as_deref(), Some(DOCUMENT));
    assert_eq!(store.document(&image(2)).unwrap(), None);
}

// The result of a scan of a workload removed meanwhile must be
// discarded, not bring the workload back.
#[test]
fn results_for_a_removed_workload_are_discarded() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let id = image(1);
    tag(&store, &id, "app:1");
    store.remove(&id).unwrap();
    let mut events = store.subscribe();

    assert!(
        !store
            .set_status(
                &id,
                Status::Scanning {
                    started: SystemTime::now()
                }
            )
            .unwrap()
    );
    assert!(!store.finish(&id, success(), DOCUMENT).unwrap());
    assert_eq!(store.get(&id), None);
    assert_eq!(store.document(&id).unwrap(), None);
    assert_eq!(received(&mut events), []);
    store.remove(&id).unwrap();
}

// A committed result must be in the file itself, not in anything a
// clean shutdown would flush: the file is copied while the store is
// still open, as a crash would leave it, and the copy opened.
#[test]
fn finish_survives_a_crash() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let crashed = dir.path().join("crashed.redb");
    let store = Store::open(&path).unwrap();
    let id = image(1);
    tag(&store, &id, "app:1");
    assert!(store.finish(&id, success(), DOCUMENT).unwrap());
    fs::copy(&path, &crashed).unwrap();
    drop(store);

    let store = Store::open(&crashed).unwrap();
    assert_eq!(store.get(&id).unwrap().status, success());
    assert_eq!(store.document(&id).unwrap().as_deref(), Some(DOCUMENT));
}

// A rescan that fails must keep the last good document on view.
#[test]
fn status_change_keeps_the_last_document() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let id = image(1);
    tag(&store, &id, "app:1");
    store.finish(&id, success(), DOCUMENT).unwrap();
    let mut events = store.subscribe();

    assert!(store.set_status(&id, failed()).unwrap());
    assert_eq!(store.get(&id).unwrap().status, failed());
    assert_eq!(store.document(&id).unwrap().as_deref(), Some(DOCUMENT));
    assert_eq!(received(&mut events), []);
}

// A Success without its document, or a document under another status,
// must be refused rather than stored.
#[test]
fn success_and_document_go_together() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let id = image(1);
    tag(&store, &id, "app:1");

    let error = store.set_status(&id, success()).unwrap_err();
    assert!(matches!(error, StoreError::WrongStatus { .. }), "{error}");
    let message = store
        .finish(&id, failed(), DOCUMENT)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&id.0) && message.contains("store.redb"),
        "{message}"
    );
    assert_eq!(store.get(&id).unwrap().status, Status::Pending);
    assert_eq!(store.document(&id).unwrap(), None);
}

// Resyncing one source must see its references and no other source's.
#[test]
fn references_where_selects_by_origin() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&db_path(&dir)).unwrap();
    let id = image(1);
    let containerd = Origin::Containerd {
        namespace: "k8s.io".into(),
        digest: id.0.clone(),
    };
    tag(&store, &id, "app:1");
    store
        .set_reference(&id, Kind::ContainerImage, "k8s/app:1", containerd)
        .unwrap();

    let found = store.references_where(|o| matches!(o, Origin::Containerd { .. }));
    assert_eq!(found, [("k8s/app:1".to_owned(), id)]);
}

// A record this version cannot read must not keep the store from
// opening; it goes, with its document, and the rest loads.
#[test]
fn unreadable_record_is_dropped_at_open() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (good, bad) = (image(1), image(2));
    {
        let store = Store::open(&path).unwrap();
        tag(&store, &good, "app:1");
        tag(&store, &bad, "db:1");
        store.finish(&bad, success(), DOCUMENT).unwrap();
    }
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(WORKLOADS)
            .unwrap()
            .insert(bad.0.as_str(), &b"{\"id\":"[..])
            .unwrap();
        txn.commit().unwrap();
    }

    let store = Store::open(&path).unwrap();
    assert_eq!(store.list().len(), 1);
    assert!(store.get(&good).is_some());
    assert_eq!(store.document(&bad).unwrap(), None);
    assert!(tag(&store, &bad, "db:1"));
}

// Opening must load every workload of a large node, and quickly.
#[test]
fn opens_ten_thousand_workloads() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    {
        let store = Store::open(&path).unwrap();
        // One transaction for all, as a test shortcut: one per
        // workload would spend the time on fsyncs.
        store
            .change(|_, steps| {
                for n in 0..10_000 {
                    let id = image(n);
                    steps.set(Workload {
                        kind: Kind::ContainerImage,
                        references: BTreeMap::from([(format!("app:{n}"), layout(&id))]),
                        status: if n % 2 == 0 {
                            success()
                        } else {
                            Status::Pending
                        },
                        id,
                    })?;
                }
                Ok(())
            })
            .unwrap();
    }

    let started = Instant::now();
    let store = Store::open(&path).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(store.list().len(), 10_000);
    assert_eq!(store.get(&image(9_998)).unwrap().status, success());
    assert_eq!(
        store.unset_reference("app:9999").unwrap(),
        Some(image(9_999))
    );
    assert!(elapsed < Duration::from_secs(3), "opening took {elapsed:?}");
}

// The store is shared between tasks and its errors cross threads.
#[test]
fn store_and_errors_are_send_and_sync() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Store>();
    shared::<StoreError>();
}
