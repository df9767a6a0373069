//! Unit tests of the scan queue, on tokio's paused clock where timing
//! matters; every operation also checks the invariants of `State`.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::{sleep, timeout};

use super::*;

const fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Base 1s, cap 3s.
fn queue<K>(max_attempts: u32) -> Queue<K>
where
    K: Clone + Eq + Hash + Ord + Debug + Send + Sync + 'static,
{
    Queue::new(Config {
        base_backoff: secs(1),
        max_backoff: secs(3),
        max_attempts,
    })
}

/// What `next()` hands out within a minute of the paused clock.
async fn next_soon(queue: &Queue<&'static str>) -> Option<&'static str> {
    timeout(secs(60), queue.next()).await.ok().flatten()
}

fn retry(attempt: u32, delay: u64) -> Decision {
    let delay = secs(delay);
    let at = Instant::now() + delay;
    Decision::RetryScheduled { attempt, delay, at }
}

// Adding a key that is already queued must not scan it twice.
#[tokio::test(start_paused = true)]
async fn add_of_a_queued_key_is_ignored() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.add("b", Retry::Backoff);
    q.add("a", Retry::Backoff);
    assert_eq!(q.snapshot().queued, ["a", "b"]);
    assert_eq!(q.next().await, Some("a"));
    assert_eq!(q.next().await, Some("b"));
    assert_eq!(next_soon(&q).await, None);
}

// Adds during a scan must give one more scan after it, not one per add
// and not one alongside it.
#[tokio::test(start_paused = true)]
async fn adds_during_a_scan_run_it_once_more() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    assert_eq!(q.next().await, Some("a"));
    for _ in 0..3 {
        q.add("a", Retry::Backoff);
    }
    assert_eq!(next_soon(&q).await, None);
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Requeued);
    assert_eq!(q.next().await, Some("a"));
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Finished);
    assert_eq!(next_soon(&q).await, None);
}

// Four failures in a row with base 1s and cap 3s must wait 1s, 2s, 3s,
// 3s, measured when next() hands the key out again.
#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_up_to_the_cap() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    for (attempt, delay) in [(1, 1), (2, 2), (3, 3), (4, 3)] {
        let failed = Instant::now();
        assert_eq!(q.done(&"a", Attempt::Retryable), retry(attempt, delay));
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(failed.elapsed(), secs(delay));
    }
}

// A success must reset the count: the next failure waits the base again.
#[tokio::test(start_paused = true)]
async fn success_resets_the_backoff() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(1, 1));
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(2, 2));
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Finished);
    q.add("a", Retry::Backoff);
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(1, 1));
}

// A huge failure count must give the capped delay, not an overflow.
#[tokio::test(start_paused = true)]
async fn backoff_of_many_failures_is_the_cap() {
    let q = queue(0);
    for failures in [31, 32, 33, 1_000] {
        assert_eq!(q.shared.config.backoff(failures), secs(3));
    }
    q.resume("a", Retry::Backoff, u32::MAX - 1, Instant::now());
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(u32::MAX, 3));
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(u32::MAX, 3));
}

// An add while a retry is pending must scan now, and the old timer must
// not bring a second scan.
#[tokio::test(start_paused = true)]
async fn add_during_a_pending_retry_runs_it_now_and_once() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    q.done(&"a", Attempt::Retryable);
    let added = Instant::now();
    q.add("a", Retry::Backoff);
    assert_eq!(q.next().await, Some("a"));
    assert_eq!(added.elapsed(), Duration::ZERO);
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Finished);
    assert_eq!(next_soon(&q).await, None);
}

// remove must cancel queued and pending entries at once and forget the
// failure count, so that a later add starts from the base delay.
#[tokio::test(start_paused = true)]
async fn remove_cancels_queued_and_pending_entries() {
    let q = queue(0);
    q.add("pending", Retry::Backoff);
    q.next().await;
    q.done(&"pending", Attempt::Retryable);
    q.add("queued", Retry::Backoff);
    q.remove(&"pending");
    q.remove(&"queued");
    assert!(q.is_empty());
    assert_eq!(next_soon(&q).await, None);
    q.add("pending", Retry::Backoff);
    q.next().await;
    assert_eq!(q.done(&"pending", Attempt::Retryable), retry(1, 1));
}

// A scan of a removed key must be discarded and not requeued, though
// it was added during the scan before the remove.
#[tokio::test(start_paused = true)]
async fn remove_during_a_scan_discards_its_result() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    q.add("a", Retry::Backoff);
    q.remove(&"a");
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Discarded);
    assert_eq!(next_soon(&q).await, None);
    assert_eq!(q.in_flight(), 0);
}

// An add after the remove, during the old scan, is a new item: the old
// result is discarded, the new one runs after it with a fresh count.
#[tokio::test(start_paused = true)]
async fn add_after_remove_during_a_scan_is_a_new_item() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    q.done(&"a", Attempt::Retryable);
    q.next().await;
    q.remove(&"a");
    q.add("a", Retry::Backoff);
    assert!(q.is_empty());
    assert_eq!(q.done(&"a", Attempt::Retryable), Decision::Discarded);
    let done = Instant::now();
    assert_eq!(q.next().await, Some("a"));
    assert_eq!(done.elapsed(), Duration::ZERO);
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(1, 1));
}

// A host scan must never be retried, whatever its failure.
#[tokio::test(start_paused = true)]
async fn never_items_are_not_retried() {
    let q = queue(0);
    for attempt in [Attempt::Retryable, Attempt::Fatal] {
        q.add("host", Retry::Never);
        q.next().await;
        assert_eq!(q.done(&"host", attempt), Decision::Finished);
        assert_eq!(next_soon(&q).await, None);
    }
}

// An item that always fails must stop after max_attempts failures.
#[tokio::test(start_paused = true)]
async fn max_attempts_turns_endless_failures_into_giving_up() {
    let q = queue(3);
    q.add("a", Retry::Backoff);
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(1, 1));
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(2, 2));
    q.next().await;
    let gave_up = Decision::GaveUp { attempts: 3 };
    assert_eq!(q.done(&"a", Attempt::Retryable), gave_up);
    assert_eq!(next_soon(&q).await, None);
}

// A fatal failure must not be retried, but its count must carry over
// to the failures after a later add.
#[tokio::test(start_paused = true)]
async fn fatal_failure_finishes_and_keeps_the_count() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.next().await;
    q.done(&"a", Attempt::Retryable);
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Fatal), Decision::Finished);
    assert_eq!(next_soon(&q).await, None);
    q.add("a", Retry::Backoff);
    q.next().await;
    assert_eq!(q.done(&"a", Attempt::Retryable), retry(3, 3));
}

/// Runs 4 workers on keys 0 to 5 while key 0 is added 20 times, one
/// add per `tick`, each scan taking 3 ticks. Fails if a key is scanned
/// twice at once; returns the most scans at once, and the scans of 0.
async fn run_workers(tick: Duration) -> (usize, usize) {
    let q = queue::<u32>(0);
    let running = Arc::new(Mutex::new(HashSet::new()));
    let most = Arc::new(AtomicUsize::new(0));
    let scans = Arc::new(Mutex::new(HashMap::<u32, usize>::new()));
    for key in 0..6 {
        q.add(key, Retry::Backoff);
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (q, running) = (q.clone(), running.clone());
            let (most, scans) = (most.clone(), scans.clone());
            tokio::spawn(async move {
                while let Some(key) = q.next().await {
                    let now = {
                        let mut running = running.lock().unwrap();
                        assert!(running.insert(key), "{key} scanned twice at once");
                        running.len()
                    };
                    most.fetch_max(now, Ordering::Relaxed);
                    sleep(tick * 3).await;
                    running.lock().unwrap().remove(&key);
                    *scans.lock().unwrap().entry(key).or_default() += 1;
                    q.done(&key, Attempt::Success);
                }
            })
        })
        .collect();

    for _ in 0..20 {
        q.add(0, Retry::Backoff);
        sleep(tick).await;
    }
    while !q.is_empty() || q.in_flight() > 0 {
        sleep(tick).await;
    }
    q.shutdown();
    for worker in workers {
        worker.await.unwrap();
    }

    let scans = scans.lock().unwrap();
    assert!((1..6).all(|key| scans[&key] == 1), "{scans:?}");
    (most.load(Ordering::Relaxed), scans[&0])
}

// Workers must scan different keys at once, and never one key twice at
// once however often it is added during its scan.
#[tokio::test(start_paused = true)]
async fn workers_never_scan_one_key_twice_at_once() {
    let (most, scans) = run_workers(Duration::from_millis(10)).await;
    assert_eq!(most, 4);
    // About one scan per scan time (3 ticks), not one per add.
    assert!((6..=10).contains(&scans), "{scans} scans of key 0");
}

// The same on threads: no key scanned twice at once by parallel workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threaded_workers_never_scan_one_key_twice_at_once() {
    // How many scans there are depends on the threads' timing.
    run_workers(Duration::from_millis(1)).await;
}

// Shutdown must wake waiting workers with None and refuse new work;
// running scans can still report, and nothing is scheduled after.
#[tokio::test(start_paused = true)]
async fn shutdown_wakes_workers_and_stops_intake() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    q.add("b", Retry::Backoff);
    q.next().await;
    q.next().await;
    q.add("a", Retry::Backoff);
    let waiting = tokio::spawn({
        let q = q.clone();
        async move { q.next().await }
    });
    sleep(secs(1)).await;
    q.shutdown();
    assert_eq!(waiting.await.unwrap(), None);

    q.add("c", Retry::Backoff);
    q.resume("d", Retry::Backoff, 1, Instant::now());
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Requeued);
    assert_eq!(q.done(&"b", Attempt::Retryable), retry(1, 1));
    let empty = Snapshot {
        queued: vec![],
        processing: vec![],
        pending: vec![],
    };
    assert_eq!(q.snapshot(), empty);
    assert_eq!(q.next().await, None);
}

// A stored retry must run at its due time, or now if that has passed,
// and its next failure must count on from the stored failures.
#[tokio::test(start_paused = true)]
async fn resume_rebuilds_pending_retries() {
    let q = queue(0);
    let start = Instant::now();
    q.resume("late", Retry::Backoff, 1, start + secs(5));
    q.resume("overdue", Retry::Backoff, 2, start);
    assert_eq!(q.snapshot().queued, ["overdue"]);
    assert_eq!(q.snapshot().pending, [("late", start + secs(5), 1)]);

    assert_eq!(q.next().await, Some("overdue"));
    // Resumed while being scanned: only the count is taken.
    q.resume("overdue", Retry::Backoff, 4, start);
    assert!(q.snapshot().queued.is_empty());
    assert_eq!(q.done(&"overdue", Attempt::Retryable), retry(5, 3));
    assert_eq!(q.next().await, Some("overdue"));
    assert_eq!(q.next().await, Some("late"));
    assert_eq!(start.elapsed(), secs(5));
    assert_eq!(q.snapshot().processing, ["late", "overdue"]);
    assert_eq!(q.done(&"late", Attempt::Retryable), retry(2, 2));
}

// done() for a key that next() did not hand out must change nothing.
#[tokio::test(start_paused = true)]
async fn done_for_a_key_not_being_scanned_is_ignored() {
    let q = queue(0);
    q.add("a", Retry::Backoff);
    assert_eq!(q.done(&"a", Attempt::Retryable), Decision::Discarded);
    assert_eq!(q.snapshot().queued, ["a"]);
}

// A new name for an image being scanned, or waiting for a retry, must not
// scan it again; a key removed during its scan and added back must run.
#[tokio::test(start_paused = true)]
async fn add_new_leaves_a_known_key_as_it_is() {
    let q = queue(0);
    q.add_new("a", Retry::Backoff);
    q.add_new("a", Retry::Backoff);
    assert_eq!(q.next().await, Some("a"));
    q.add_new("a", Retry::Backoff);
    assert_eq!(q.done(&"a", Attempt::Success), Decision::Finished);
    assert_eq!(next_soon(&q).await, None);

    q.add_new("b", Retry::Backoff);
    assert_eq!(q.next().await, Some("b"));
    assert_eq!(q.done(&"b", Attempt::Retryable), retry(1, 1));
    q.add_new("b", Retry::Backoff);
    assert_eq!(q.in_flight(), 0);
    // Not run now: it waits for its retry, 1s away.
    assert_eq!(
        timeout(Duration::from_millis(500), q.next()).await.ok(),
        None
    );

    q.add_new("c", Retry::Backoff);
    assert_eq!(q.next().await, Some("c"));
    q.remove(&"c");
    q.add_new("c", Retry::Backoff);
    assert_eq!(q.done(&"c", Attempt::Success), Decision::Discarded);
    assert_eq!(next_soon(&q).await, Some("c"));
}
