//! The feed: ONE task reads each new stretch of the log once and publishes it to every subscriber.
//!
//! It wakes when the intake writer commits (`committed_seq`) and on a short timer (other instances' commits
//! on PostgreSQL, which this instance's writer never sees), reads `events_after(last)` page by page, passes
//! each event through the hook, serializes its frame once, and publishes the page as one [`FeedBatch`] on
//! a bounded broadcast channel. The channel never blocks the feed: a subscriber that falls more than
//! `broadcast_capacity` batches behind gets `Lagged` and catches up from the store by itself
//! ([`Subscription`](super::Subscription)). Intake never waits for any reader. While no subscriber is
//! connected, the feed only moves its head (to the writer's committed seq, or the log's end on the timer)
//! instead of reading and serializing events nobody receives, and publishes an empty batch at the new head
//! for a subscriber that arrived in between.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{FeedEvent, Hooks};
use crate::config::EventsConfig;
use crate::metrics::Metrics;
use crate::store::{EventFilter, Store};

/// A contiguous stretch of the log: every event with `after < seq <= last` (suppressed ones left out).
#[derive(Debug)]
pub struct FeedBatch {
    /// The feed's position before this batch.
    pub after: i64,
    /// The highest seq this batch covers.
    pub last: i64,
    /// The events, in seq order, through the hook.
    pub events: Vec<FeedEvent>,
}

/// The handle subscribers use: the broadcast and the position published so far.
#[derive(Debug)]
pub struct EventFeed {
    pub(super) batches: broadcast::Sender<Arc<FeedBatch>>,
    pub(super) head: watch::Receiver<i64>,
}

impl EventFeed {
    /// Starts the feed at the end of the log; it stops when `shutdown` fires.
    pub async fn spawn(
        store: Store,
        mut committed: watch::Receiver<i64>,
        hooks: Hooks,
        config: &EventsConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, JoinHandle<()>), crate::store::StoreError> {
        let start = store.max_seq().await?;
        let (batches, _) = broadcast::channel(config.broadcast_capacity.max(1));
        let (head_tx, head) = watch::channel(start);
        let feed = Arc::new(Self { batches: batches.clone(), head });
        let page = config.page_size.max(1);
        let poll = Duration::from_millis(config.poll_interval_ms.max(1));
        let task = tokio::spawn(async move {
            let mut last = start;
            let mut writer_running = true;
            let mut woken_by_writer = false;
            let mut ticker = tokio::time::interval(poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Drain what is committed, then wait for the next commit (or the timer).
                loop {
                    if batches.receiver_count() == 0 {
                        // Nobody listens: move the head without reading or serializing the events. Woken by
                        // this instance's writer, its committed seq is the head (every seq below it is
                        // committed, durable and visible); on the timer, the log's end is read, for commits
                        // made elsewhere. A subscriber arriving meanwhile sees the jump as a gap and reads
                        // the store.
                        let newest = if woken_by_writer {
                            Ok(*committed.borrow_and_update())
                        } else {
                            store.max_seq().await
                        };
                        match newest {
                            Ok(newest) if newest > last => {
                                last = newest;
                                head_tx.send_replace(last);
                                // A subscriber may have arrived since the check above and read the old head:
                                // an empty batch that starts at the new head tells it to read the store (it
                                // would otherwise wait for the next commit). Nobody listening: nothing is sent.
                                let _ = batches.send(Arc::new(FeedBatch {
                                    after: last,
                                    last,
                                    events: Vec::new(),
                                }));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the event feed could not read the log; retrying");
                            }
                        }
                        break;
                    }
                    let found = match store.events_after(last, &EventFilter::default(), page).await {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::warn!(error = %e, "the event feed could not read the log; retrying");
                            break;
                        }
                    };
                    let Some(newest) = found.last().map(|e| e.seq) else { break };
                    let full = found.len() >= page as usize;
                    let events: Vec<FeedEvent> = found
                        .into_iter()
                        .filter_map(|e| {
                            // Subscribers' filters match the event as stored, as the store's queries do on
                            // the catch-up paths, whatever a hook changes in it.
                            let (kind, number, contact) =
                                (e.kind.clone(), e.phone_number_id.clone(), e.contact.clone());
                            hooks.apply(e).map(|hooked| {
                                let mut event = FeedEvent::new(&hooked);
                                (event.kind, event.phone_number_id, event.contact) = (kind, number, contact);
                                event
                            })
                        })
                        .collect();
                    metrics.events_published.add(events.len() as u64);
                    // The head moves first: a subscriber that reads the old head has subscribed before this
                    // send and gets the batch; one that reads the new head skips what the batch holds below it.
                    // (The other way round, one subscribing in between would wait for the next batch.)
                    head_tx.send_replace(newest);
                    // No receiver is fine: subscribers come and go.
                    let _ = batches.send(Arc::new(FeedBatch { after: last, last: newest, events }));
                    last = newest;
                    if !full {
                        break;
                    }
                }
                let commit = async {
                    if writer_running && committed.changed().await.is_err() {
                        // The writer stopped; keep polling until shutdown (other instances may commit).
                        writer_running = false;
                    }
                    if !writer_running {
                        std::future::pending::<()>().await;
                    }
                };
                woken_by_writer = tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = commit => true,
                    _ = ticker.tick() => false,
                };
            }
        });
        Ok((feed, task))
    }

    /// A receiver of the batches published from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedBatch>> {
        self.batches.subscribe()
    }

    /// The highest seq published so far: every event up to it is in the store and visible to readers.
    #[must_use]
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// A watch of [`head`](Self::head), for tasks that wait for new events (the callback dispatcher).
    #[must_use]
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }
}
