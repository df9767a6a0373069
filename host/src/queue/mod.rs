//! The scan queue: which workload to scan next, and when to try again.
//!
//! The queue owns ordering, deduplication, retry timing and the count of
//! consecutive failures of each workload. It does not scan, and it keeps
//! nothing across restarts: the store records each [`Decision`] and, at
//! start, hands pending retries back through [`Queue::resume`].
//!
//! A key is at any moment in one of four places: nowhere (perhaps with a
//! failure count remembered), queued, being processed (handed out by
//! [`Queue::next`], waiting for [`Queue::done`]), or pending a retry at a
//! due time. A key being processed can also be marked to run once more.
//! The invariants that tie these together are written on the fields of
//! `State` and checked after every operation in the tests.
//!
//! Three weaknesses of simpler work queues are avoided on purpose:
//!
//! - A retry is not a sleeping "add later" that nobody can take back: it is
//!   an entry in the queue's own timer set. An add while a retry is pending
//!   moves the key from the timers to the queue, so the workload is scanned
//!   once, not once now and once more when the old timer fires.
//! - Removal is immediate. The key leaves the queue and the timers at once
//!   and its failure count is forgotten; nothing waits to notice at the next
//!   attempt that the workload is gone. A scan already running cannot be
//!   stopped, so its [`Queue::done`] answers [`Decision::Discarded`].
//! - Retries end. A fatal failure is not retried, a `Retry::Never` item
//!   (the host) is never retried, and `max_attempts` turns an endlessly
//!   failing image into a final failure instead of a busy worker.
//!
//! Choices worth knowing:
//!
//! - A key added again after it was removed, while its old scan still runs,
//!   is a new item: the old scan's result is still [`Decision::Discarded`],
//!   and the new item is queued when that scan is done, with a fresh failure
//!   count. Its workload came back, so it needs a scan that started after.
//! - An add during a scan that then fails runs it again at once
//!   ([`Decision::Requeued`]): the workload changed, so waiting out the
//!   backoff would only delay a scan that may now succeed. The failure still
//!   counts towards the backoff and `max_attempts` of later failures.
//! - The failure count survives a fatal failure and giving up, and is reset
//!   only by a success or a remove. A workload that gave up and is added
//!   again gets one more attempt, not `max_attempts` more.
//! - After [`Queue::shutdown`] nothing enters the queue or the timers, and
//!   entries already there stay (visible in [`Queue::snapshot`]) but are
//!   never handed out. This loses nothing: the store holds every workload
//!   and its status, and the next start rebuilds the queue from it.
//! - Every waiting worker wakes on each change and checks again. With the
//!   handful of workers of one node that costs little and leaves no missed
//!   wake-up to reason about.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long failed scans wait before they are tried again.
#[derive(Debug, Clone)]
pub struct Config {
    /// The delay after the first failure; it doubles with each failure.
    pub base_backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
    /// Consecutive failures after which an item is given up; 0 = never.
    pub max_attempts: u32,
}

impl Config {
    /// The delay after `failures` consecutive failures (at least one).
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.checked_pow(failures.saturating_sub(1));
        factor
            .and_then(|factor| self.base_backoff.checked_mul(factor))
            .map_or(self.max_backoff, |delay| delay.min(self.max_backoff))
    }
}

/// What a scan of an item ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Success,
    /// It may succeed later (a layer blob not on the node yet).
    Retryable,
    /// It never will (a corrupt image).
    Fatal,
}

/// Whether an item is retried after a retryable failure. Container images
/// are; the host is not, it is scanned again on its own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Backoff,
    Never,
}

/// What [`Queue::done`] did with an item, for the logs and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing more is scheduled: a success, a fatal failure, or a failure
    /// of a `Retry::Never` item.
    Finished,
    /// It was added while it ran, and is queued once more.
    Requeued,
    /// It runs again at `at`, after `delay`. `attempt` is the number of
    /// consecutive failures so far, this one included.
    RetryScheduled {
        attempt: u32,
        delay: Duration,
        at: Instant,
    },
    /// It failed `attempts` times in a row, the configured maximum.
    GaveUp { attempts: u32 },
    /// It was removed while it ran: its result must be thrown away.
    Discarded,
}

/// The queue's contents at one moment, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<K> {
    /// Keys waiting for a worker, in the order they will be handed out.
    pub queued: Vec<K>,
    /// Keys being scanned, in key order.
    pub processing: Vec<K>,
    /// Retries waiting for their time as `(key, due, failures)`, soonest
    /// first. A due time in the past means the retry is handed out at the
    /// next [`Queue::next`].
    pub pending: Vec<(K, Instant, u32)>,
}

/// A retrying, deduplicating work queue; see the module documentation.
///
/// Clones share one queue.
///
/// ```
/// use std::time::Duration;
/// use scanhost::queue::{Config, Queue, Retry};
///
/// let queue = Queue::new(Config {
///     base_backoff: Duration::from_secs(1),
///     max_backoff: Duration::from_secs(300),
///     max_attempts: 10,
/// });
/// queue.add("sha256:4f1c", Retry::Backoff);
/// queue.add("sha256:4f1c", Retry::Backoff);
/// assert_eq!(queue.snapshot().queued, ["sha256:4f1c"]);
/// ```
#[derive(Clone)]
pub struct Queue<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    config: Config,
    state: Mutex<State<K>>,
    /// Wakes every waiting [`Queue::next`] when a key is queued, a retry is
    /// scheduled, or the queue shuts down.
    wake: Notify,
}

struct State<K> {
    /// Keys ready to be handed out, oldest first. Each appears once, is in
    /// `dirty`, and is not in `processing` nor in `timers`.
    queue: VecDeque<K>,
    /// Keys that need a scan which has not started: exactly the keys of
    /// `queue`, plus keys in `processing` that were added while they ran.
    dirty: HashSet<K>,
    /// Keys handed out by `next()` whose `done()` has not come. The flag is
    /// true when the key was removed during the scan; it is then in `items`
    /// only if it was added again since (and is then in `dirty`).
    processing: HashMap<K, bool>,
    /// Pending retries by due time: `(at, key)` is here exactly when
    /// `items[key].retry_at == Some(at)`. A key here is neither in `dirty`
    /// nor in `processing`.
    timers: BTreeSet<(Instant, K)>,
    /// What is known of each key. Every key of `dirty` and `timers`, and of
    /// `processing` unless removed during its scan, has an entry; an entry
    /// for a key in none of them has `failures > 0`.
    items: HashMap<K, Item>,
    /// Set by `shutdown()`, never cleared. From then on nothing enters
    /// `queue`, `timers` or `processing`.
    shut_down: bool,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    retry: Retry,
    /// Consecutive failed attempts; reset by a success.
    failures: u32,
    retry_at: Option<Instant>,
}

impl<K> Queue<K>
where
    K: Clone + Eq + Hash + Ord + Debug + Send + Sync + 'static,
{
    pub fn new(config: Config) -> Self {
        let state = State {
            queue: VecDeque::new(),
            dirty: HashSet::new(),
            processing: HashMap::new(),
            timers: BTreeSet::new(),
            items: HashMap::new(),
            shut_down: false,
        };
        let shared = Shared {
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
        };
        Queue {
            shared: Arc::new(shared),
        }
    }

    /// Asks for a scan of `key`, whose workload is new or changed: now if
    /// it waits for a retry, once more after the current scan if one runs,
    /// not again if it is already queued.
    pub fn add(&self, key: K, retry: Retry) {
        let mut state = self.lock();
        self.add_locked(&mut state, key, retry);
    }

    /// Asks for a scan of `key`, whose workload is new: unlike
    /// [`Queue::add`], a key already queued, being scanned or waiting for
    /// a retry is left as it is (a second name given to an image that is
    /// being scanned needs no second scan).
    pub fn add_new(&self, key: K, retry: Retry) {
        let mut state = self.lock();
        // A key removed during its scan is new again when added.
        let known = state.dirty.contains(&key)
            || state.processing.get(&key) == Some(&false)
            || state
                .items
                .get(&key)
                .is_some_and(|item| item.retry_at.is_some());
        if !known {
            self.add_locked(&mut state, key, retry);
        }
    }

    fn add_locked(&self, state: &mut State<K>, key: K, retry: Retry) {
        if state.shut_down {
            return;
        }

        let item = state.items.entry(key.clone()).or_insert(Item {
            retry,
            failures: 0,
            retry_at: None,
        });
        item.retry = retry;
        if let Some(at) = item.retry_at.take() {
            state.timers.remove(&(at, key.clone()));
        }
        if state.dirty.insert(key.clone()) && !state.processing.contains_key(&key) {
            state.queue.push_back(key);
            self.shared.wake.notify_waiters();
        }
        state.check_invariants();
    }

    /// Rebuilds a pending retry recorded by the store before a restart: the
    /// key runs at `at`, or now if that has passed, and its next failure
    /// counts from `failures`. A key already queued or being scanned only
    /// takes the failure count.
    pub fn resume(&self, key: K, retry: Retry, failures: u32, at: Instant) {
        let mut state = self.lock();
        if state.shut_down {
            return;
        }

        if state.dirty.contains(&key) || state.processing.contains_key(&key) {
            // Queued, or being scanned and then decided by its outcome: it
            // only takes the count. (Such a key has no timer.)
            if let Some(item) = state.items.get_mut(&key) {
                item.retry = retry;
                item.failures = failures;
            }
            state.check_invariants();
            return;
        }

        let fresh = Item {
            retry,
            failures,
            retry_at: None,
        };
        if let Some(old) = state.items.insert(key.clone(), fresh)
            && let Some(at) = old.retry_at
        {
            state.timers.remove(&(at, key.clone()));
        }
        if at <= Instant::now() {
            state.dirty.insert(key.clone());
            state.queue.push_back(key);
        } else {
            state.schedule(key, at);
        }
        self.shared.wake.notify_waiters();
        state.check_invariants();
    }

    /// Forgets `key` at once: its queued entry and pending retry are gone,
    /// and its failure count. A scan of it that is running finishes, and
    /// its `done()` answers [`Decision::Discarded`].
    pub fn remove(&self, key: &K) {
        let mut state = self.lock();
        if state.dirty.remove(key) {
            state.queue.retain(|queued| queued != key);
        }
        if let Some(item) = state.items.remove(key)
            && let Some(at) = item.retry_at
        {
            state.timers.remove(&(at, key.clone()));
        }
        if let Some(removed) = state.processing.get_mut(key) {
            *removed = true;
        }
        state.check_invariants();
    }

    /// The next key to scan, waiting until one is queued or a retry is due.
    /// The caller must report the scan with [`Queue::done`]. `None` once the
    /// queue is shut down. Cancel-safe: a dropped call takes nothing.
    pub async fn next(&self) -> Option<K> {
        loop {
            // Registered before the state is read, so that a change made
            // between the read and the wait still wakes this call.
            let notified = self.shared.wake.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();

            let wake_at = {
                let mut state = self.lock();
                if state.shut_down {
                    return None;
                }
                state.promote_due(Instant::now());
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone(), false);
                    state.check_invariants();
                    return Some(key);
                }
                state.timers.first().map(|(at, _)| *at)
            };

            match wake_at {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// Reports how the scan of `key`, handed out by [`Queue::next`], ended,
    /// and schedules what follows. After shutdown the answer is the same,
    /// but nothing is queued or scheduled.
    pub fn done(&self, key: &K, attempt: Attempt) -> Decision {
        let mut state = self.lock();
        let Some(removed) = state.processing.remove(key) else {
            tracing::warn!(?key, "scan reported for a key that is not being scanned");
            return Decision::Discarded;
        };

        let again = state.dirty.contains(key);
        let decision = if removed {
            Decision::Discarded
        } else {
            state.record(key, attempt, again, &self.shared.config)
        };

        if state.shut_down {
            state.dirty.remove(key);
        } else if again {
            state.queue.push_back(key.clone());
            self.shared.wake.notify_waiters();
        } else if let Decision::RetryScheduled { at, .. } = decision {
            state.schedule(key.clone(), at);
            self.shared.wake.notify_waiters();
        }
        state.forget_if_idle(key);
        state.check_invariants();
        decision
    }

    /// Stops intake: `add` and `resume` do nothing from now on, and every
    /// waiting or future `next()` returns `None`. Scans still running can be
    /// reported with `done()`.
    pub fn shutdown(&self) {
        self.lock().shut_down = true;
        self.shared.wake.notify_waiters();
    }

    pub fn snapshot(&self) -> Snapshot<K> {
        let state = self.lock();
        let mut processing: Vec<K> = state.processing.keys().cloned().collect();
        processing.sort();
        let pending = state
            .timers
            .iter()
            .map(|(due, key)| (key.clone(), *due, state.items[key].failures))
            .collect();
        Snapshot {
            queued: state.queue.iter().cloned().collect(),
            processing,
            pending,
        }
    }

    /// Keys waiting: queued, and pending a retry.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.queue.len() + state.timers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys being scanned.
    pub fn in_flight(&self) -> usize {
        self.lock().processing.len()
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panic while the lock was held may have left the state half
        // updated; going on could hand out a key twice.
        self.shared
            .state
            .lock()
            .expect("the scan queue's lock is poisoned")
    }
}

impl<K> State<K>
where
    K: Clone + Eq + Hash + Ord + Debug,
{
    /// Counts the attempt and decides what follows it.
    fn record(&mut self, key: &K, attempt: Attempt, again: bool, config: &Config) -> Decision {
        let item = self
            .items
            .get_mut(key)
            .expect("a key being scanned is known");
        item.failures = match attempt {
            Attempt::Success => 0,
            Attempt::Retryable | Attempt::Fatal => item.failures.saturating_add(1),
        };
        let failures = item.failures;
        if again {
            return Decision::Requeued;
        }
        if attempt != Attempt::Retryable || item.retry == Retry::Never {
            return Decision::Finished;
        }
        if config.max_attempts != 0 && failures >= config.max_attempts {
            return Decision::GaveUp { attempts: failures };
        }

        let delay = config.backoff(failures);
        let now = Instant::now();
        // A delay too long to represent means never in practice; keep it
        // as a far-off timer so that the snapshot still shows it.
        let at = now.checked_add(delay).unwrap_or(now + FAR_FUTURE);
        Decision::RetryScheduled {
            attempt: failures,
            delay,
            at,
        }
    }

    fn schedule(&mut self, key: K, at: Instant) {
        if let Some(item) = self.items.get_mut(&key) {
            item.retry_at = Some(at);
            self.timers.insert((at, key));
        }
    }

    /// Moves the retries due by `now` to the back of the queue.
    fn promote_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.timers.first()
            && *at <= now
        {
            let (_, key) = self.timers.pop_first().expect("checked above");
            if let Some(item) = self.items.get_mut(&key) {
                item.retry_at = None;
            }
            self.dirty.insert(key.clone());
            self.queue.push_back(key);
        }
    }

    /// Drops the entry of a key that is nowhere and has nothing to remember.
    fn forget_if_idle(&mut self, key: &K) {
        let idle = !self.dirty.contains(key) && !self.processing.contains_key(key);
        if idle
            && self
                .items
                .get(key)
                .is_some_and(|item| item.failures == 0 && item.retry_at.is_none())
        {
            self.items.remove(key);
        }
    }

    /// Checks the invariants written on the fields of `State`.
    #[cfg(test)]
    fn check_invariants(&self) {
        let queued: HashSet<&K> = self.queue.iter().collect();
        debug_assert_eq!(queued.len(), self.queue.len(), "a key queued twice");
        for key in &self.queue {
            debug_assert!(self.dirty.contains(key), "{key:?} queued, not dirty");
            debug_assert!(
                !self.processing.contains_key(key),
                "{key:?} queued and running"
            );
        }
        for key in &self.dirty {
            debug_assert!(queued.contains(key) || self.processing.contains_key(key));
            debug_assert!(self.items.get(key).is_some_and(|i| i.retry_at.is_none()));
        }
        for (key, removed) in &self.processing {
            let known = self.items.contains_key(key);
            debug_assert!(known || *removed, "{key:?} unknown");
            debug_assert!(!*removed || known == self.dirty.contains(key));
        }
        for (at, key) in &self.timers {
            debug_assert_eq!(self.items.get(key).and_then(|i| i.retry_at), Some(*at));
            debug_assert!(
                !self.processing.contains_key(key),
                "{key:?} pending and running"
            );
        }
        for (key, item) in &self.items {
            if let Some(at) = item.retry_at {
                debug_assert!(self.timers.contains(&(at, key.clone())));
            } else if !self.dirty.contains(key) && !self.processing.contains_key(key) {
                debug_assert!(item.failures > 0, "{key:?} kept with nothing to remember");
            }
        }
    }

    #[cfg(not(test))]
    fn check_invariants(&self) {}
}

/// Stands for "never" when a backoff is too long for the clock.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

#[cfg(test)]
mod tests;
