//! The containerd source: the images of the configured namespaces.
//!
//! Each namespace is listed at start and then followed through
//! containerd's image events (create, update, delete): an event makes the
//! source ask containerd for that one image, so that create, update and
//! delete are one path. A reference is `containerd://NAMESPACE/NAME`, read
//! from the image's target in that namespace; the image's config digest is
//! its workload id, and an image goes when its last reference does.
//!
//! containerd may be absent at start or restart at any time: the source
//! logs the outage, tries again with backoff, and resyncs every namespace
//! when containerd answers again (images deleted meanwhile go, new ones
//! come). It also resyncs every `RESYNC`, which catches an event that came
//! between a listing and the subscription.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::containerd::{self, Client, Image, ImageEvent};
use crate::content::Digest;
use crate::content::containerd::ContainerdContent;
use crate::sources::{self, Seen};
use crate::store::Store;
use crate::target::{ImageTarget, host_platform};
use crate::workload::{Origin, WorkloadId};

/// How often every namespace is listed again while connected.
const RESYNC: Duration = Duration::from_secs(30);

/// The first and the longest wait before connecting again.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a connection must hold for the backoff to start over.
const STABLE: Duration = Duration::from_secs(30);

/// Events received and not yet handled: the subscription waits beyond.
const EVENTS_QUEUED: usize = 1024;

/// The events that can change an image.
const EVENT_FILTER: &str = r#"topic~="/images/""#;

/// Keeps the store in step with the images of `namespaces` until
/// `shutdown`.
pub async fn run(
    store: Arc<Store>,
    client: Client,
    namespaces: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut link = Link {
        address: client.address().display().to_string(),
        backoff: BASE_BACKOFF,
        down_since: None,
    };
    loop {
        let started = Instant::now();
        tokio::select! {
            lost = follow(&store, &client, &namespaces, &mut link) => link.lost(&lost),
            _ = shutdown.changed() => return,
        }
        // Only a connection that held for a while earns a quick retry: one
        // that answers and drops at once is retried ever more slowly.
        if started.elapsed() >= STABLE {
            link.backoff = BASE_BACKOFF;
        }
        tokio::select! {
            _ = tokio::time::sleep(link.backoff) => {}
            _ = shutdown.changed() => return,
        }
        link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
    }
}

/// The state of the connection, for the log and the backoff.
struct Link {
    address: String,
    backoff: Duration,
    /// Since when containerd has not answered; none while it does.
    down_since: Option<Instant>,
}

impl Link {
    fn connected(&mut self, images: usize) {
        match self.down_since.take() {
            Some(since) => tracing::info!(
                address = self.address,
                images,
                outage = %humantime::format_duration(round(since.elapsed())),
                "containerd is back, images resynced"
            ),
            None => tracing::info!(address = self.address, images, "containerd images listed"),
        }
    }

    fn lost(&mut self, err: &containerd::Error) {
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!("{err}; connecting again with backoff");
        } else {
            tracing::debug!(retry_in = ?self.backoff, "{err}");
        }
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Lists and follows the namespaces until the connection is lost, and
/// says why.
async fn follow(
    store: &Arc<Store>,
    client: &Client,
    namespaces: &[String],
    link: &mut Link,
) -> containerd::Error {
    // Subscribed first, so that what changes while the namespaces are
    // listed is seen too. containerd answers the subscription only with
    // its first event: it is read on its own task.
    let (tx, mut events) = mpsc::channel(EVENTS_QUEUED);
    // Stopped when this returns.
    let _subscription = AbortOnDrop(tokio::spawn(forward_events(client.clone(), tx)));

    match resync(store, client, namespaces).await {
        Ok(images) => link.connected(images),
        Err(err) => return err,
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + RESYNC, RESYNC);
    loop {
        let outcome = tokio::select! {
            event = events.recv() => match event {
                Some(Ok((namespace, name))) if namespaces.contains(&namespace) => {
                    update(store, client, &namespace, &name).await
                }
                Some(Ok(_)) => Ok(()),
                Some(Err(err)) => Err(err),
                None => Err(client.error(
                    "follow events".to_owned(),
                    tonic::Status::unavailable("the event stream ended"),
                )),
            },
            _ = ticks.tick() => resync(store, client, namespaces).await.map(|_| ()),
        };
        if let Err(err) = outcome {
            return err;
        }
    }
}

/// Sends the namespace and name of each image event, then the error that
/// ended the stream, and returns.
async fn forward_events(
    client: Client,
    tx: mpsc::Sender<Result<(String, String), containerd::Error>>,
) {
    let lost = |status| client.error("follow events".to_owned(), status);
    let mut stream = match client.subscribe(EVENT_FILTER).await {
        Ok(stream) => stream,
        Err(err) => {
            let _ = tx.send(Err(err)).await;
            return;
        }
    };
    loop {
        let envelope = match stream.message().await {
            Ok(Some(envelope)) => envelope,
            Ok(None) => {
                let ended = tonic::Status::aborted("containerd ended the event stream");
                let _ = tx.send(Err(lost(ended))).await;
                return;
            }
            Err(status) => {
                let _ = tx.send(Err(lost(status))).await;
                return;
            }
        };
        let name = envelope
            .event
            .and_then(|any| <ImageEvent as prost::Message>::decode(any.value.as_slice()).ok())
            .map(|event| event.name)
            .filter(|name| !name.is_empty());
        let Some(name) = name else {
            tracing::debug!(topic = envelope.topic, "event without an image name");
            continue;
        };
        if tx.send(Ok((envelope.namespace, name))).await.is_err() {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lists every namespace and makes the store match; returns the number of
/// images listed.
async fn resync(
    store: &Arc<Store>,
    client: &Client,
    namespaces: &[String],
) -> Result<usize, containerd::Error> {
    let mut count = 0;
    for namespace in namespaces {
        let images = match client.list_images(namespace).await {
            Ok(images) => images,
            Err(err) if err.is_connection() => return Err(err),
            // This namespace only: its images stay as they were.
            Err(err) => {
                tracing::warn!("{err}; namespace skipped until the next resync");
                continue;
            }
        };
        count += images.len();
        let (store, client, namespace) = (store.clone(), client.clone(), namespace.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let seen = images
                .iter()
                .filter_map(|image| seen(&namespace, image))
                .collect();
            let ours = |origin: &Origin| {
                matches!(origin, Origin::Containerd { namespace: n, .. } if *n == namespace)
            };
            sources::sync(&store, ours, seen, identifier(&client));
        })
        .await;
    }
    Ok(count)
}

/// Makes the store's reference to `name` of `namespace` match containerd.
async fn update(
    store: &Arc<Store>,
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), containerd::Error> {
    let image = match client.get_image(namespace, name).await {
        Ok(image) => image,
        Err(err) if err.is_connection() => return Err(err),
        Err(err) => {
            tracing::warn!("{err}; event skipped until the next resync");
            return Ok(());
        }
    };
    let (store, client) = (store.clone(), client.clone());
    let reference = containerd::reference(namespace, name);
    let seen = image.and_then(|image| seen(namespace, &image));
    let _ = tokio::task::spawn_blocking(move || match seen {
        Some(seen) => {
            sources::set(&store, seen, &identifier(&client));
        }
        None => sources::unset(&store, &reference),
    })
    .await;
    Ok(())
}

fn seen(namespace: &str, image: &Image) -> Option<Seen> {
    let Some(target) = &image.target else {
        tracing::warn!(
            namespace,
            image = image.name,
            "image without a target skipped"
        );
        return None;
    };
    Some(Seen {
        reference: containerd::reference(namespace, &image.name),
        origin: Origin::Containerd {
            namespace: namespace.to_owned(),
            digest: target.digest.clone(),
        },
    })
}

/// Identifies an image by reading its index, manifest and config through
/// containerd (on a blocking thread).
fn identifier(client: &Client) -> impl Fn(&Origin) -> Result<WorkloadId, String> {
    let client = client.clone();
    move |origin: &Origin| {
        let Origin::Containerd { namespace, digest } = origin else {
            return Err("not a containerd image".to_owned());
        };
        let digest = Digest::parse(digest).map_err(|err| err.to_string())?;
        let content = Arc::new(ContainerdContent::new(client.clone(), namespace));
        ImageTarget::identify(content, digest, vec![], host_platform())
            .map(|image| WorkloadId(image.id.to_string()))
            .map_err(|err| format!("containerd namespace {namespace}: {err}"))
    }
}
