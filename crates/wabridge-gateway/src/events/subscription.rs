//! One reader's way through the log: catch up from the store, then follow the feed, switching over by
//! seq so that nothing is skipped or repeated; back to the store whenever it falls behind.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{EventFeed, FeedBatch, FeedEvent, Hooks};
use crate::store::{EventFilter, Store, StoreError};

/// A cursor over the log for one subscriber. [`next`](Self::next) gives the next events after the cursor
/// that match the filter, in seq order, each exactly once.
///
/// Invariant: every matching event with `seq <= cursor` has been handed out. Catching up reads the store
/// page by page; a short page means everything visible was read, and everything up to the feed's head
/// (taken before the read) is visible, so the cursor may jump to that head. Live, a batch starting at or
/// below the cursor continues it (events at or below the cursor are skipped); a batch starting above it
/// means a gap, and so does `Lagged`: both send the subscription back to the store.
#[derive(Debug)]
pub struct Subscription {
    feed: Arc<EventFeed>,
    live: broadcast::Receiver<Arc<FeedBatch>>,
    store: Store,
    hooks: Hooks,
    filter: EventFilter,
    cursor: i64,
    catching_up: bool,
    page_size: u32,
    /// The retention mark the subscriber was told of ([`Self::watch_pruning`]), if it is to be told of a
    /// higher one.
    pruned_told: Option<i64>,
}

/// Why [`Subscription::next`] could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// While catching up, retention deleted events after the cursor past the mark the subscriber was told
    /// of: the events read may not follow on from its cursor. The cursor stays where it was.
    #[error("retention deleted events after seq {cursor} (through seq {through}) before they were read")]
    Pruned {
        /// The subscription's cursor.
        cursor: i64,
        /// The retention mark now.
        through: i64,
    },
}

impl Subscription {
    /// A subscription after `after` (`None`: from now on, the feed's head).
    #[must_use]
    pub fn new(
        feed: Arc<EventFeed>,
        store: Store,
        hooks: Hooks,
        filter: EventFilter,
        after: Option<i64>,
        page_size: u32,
    ) -> Self {
        // Subscribe before reading the head, so no batch published after the head falls between the two.
        let live = feed.subscribe();
        let head = feed.head();
        let (cursor, catching_up) = match after {
            Some(after) if after < head => (after, true),
            Some(after) => (after, false),
            None => (head, false),
        };
        Self {
            feed,
            live,
            store,
            hooks,
            filter,
            cursor,
            catching_up,
            page_size: page_size.max(1),
            pruned_told: None,
        }
    }

    /// Makes catching up check the retention mark after each page read from the store: when it rose above
    /// `told` (the mark the subscriber was given) and above the cursor, [`next`](Self::next) fails with
    /// [`SubscriptionError::Pruned`] instead of handing out events that may not follow on from the cursor.
    pub fn watch_pruning(&mut self, told: i64) {
        self.pruned_told = Some(told);
    }

    /// The highest seq handed out or passed over.
    #[must_use]
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Whether it is reading the store (behind the feed) rather than following it.
    #[must_use]
    pub fn is_catching_up(&self) -> bool {
        self.catching_up
    }

    /// Waits for the next events; never returns an empty list. `Ok(None)` when the feed has stopped.
    ///
    /// Cancel-safe: the state changes only between awaits, so dropping the future loses nothing.
    pub async fn next(&mut self) -> Result<Option<Vec<FeedEvent>>, SubscriptionError> {
        loop {
            if self.catching_up {
                let head = self.feed.head();
                let page = self.store.events_after(self.cursor, &self.filter, self.page_size).await?;
                // Read after the page: the mark is raised before each chunk is deleted, so events after the
                // cursor missing from the page show as a mark above the cursor.
                if let Some(told) = self.pruned_told {
                    let through = crate::retention::pruned_through(&self.store).await?;
                    if through > told && through > self.cursor {
                        return Err(SubscriptionError::Pruned { cursor: self.cursor, through });
                    }
                }
                let short = page.len() < self.page_size as usize;
                if let Some(last) = page.last() {
                    self.cursor = last.seq;
                }
                if short {
                    self.cursor = self.cursor.max(head);
                    self.catching_up = false;
                }
                let out: Vec<FeedEvent> = page
                    .into_iter()
                    .filter_map(|e| self.hooks.apply(e))
                    .map(|e| FeedEvent::new(&e))
                    .collect();
                if !out.is_empty() {
                    return Ok(Some(out));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => {
                    if batch.after > self.cursor {
                        self.catching_up = true;
                        continue;
                    }
                    let out: Vec<FeedEvent> = batch
                        .events
                        .iter()
                        .filter(|e| e.seq > self.cursor && e.matches(&self.filter))
                        .cloned()
                        .collect();
                    self.cursor = self.cursor.max(batch.last);
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                }
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{broadcast, watch};

    use super::{Subscription, SubscriptionError};
    use crate::events::{EventFeed, FeedBatch, Hooks};
    use crate::store::{EventFilter, IntakeBatchItem, NewEvent, NewRawWebhook, SqliteOptions, Store};

    /// A subscriber that read the head just before the feed moved it (while nobody listened) follows the feed
    /// from the old head; the feed's empty batch at the new head sends it to the store for what it skipped.
    #[tokio::test]
    async fn an_empty_batch_at_a_new_head_sends_a_follower_to_the_store() {
        let dir = std::env::temp_dir().join(format!("wabridge-sub-{}", std::process::id()));
        let store = store_with_events(&dir, 3).await;

        let (batches, _) = broadcast::channel(8);
        let (head_tx, head) = watch::channel(0);
        let feed = Arc::new(EventFeed { batches: batches.clone(), head });
        let mut sub =
            Subscription::new(feed, store.clone(), Hooks::default(), EventFilter::default(), Some(0), 100);
        assert!(!sub.is_catching_up(), "at the head it read, it follows the feed");
        head_tx.send_replace(3);
        batches.send(Arc::new(FeedBatch { after: 3, last: 3, events: Vec::new() })).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `n` events, one per body, on a new store in `dir`.
    async fn store_with_events(dir: &std::path::Path, n: usize) -> Store {
        let store = Store::open_sqlite(dir.join("t.db"), SqliteOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let items: Vec<IntakeBatchItem> = (1..=n)
            .map(|n| IntakeBatchItem {
                raw: NewRawWebhook::accepted(format!("body {n}"), true),
                events: vec![NewEvent {
                    dedupe_key: format!("k{n}"),
                    kind: "change".to_owned(),
                    field: "messages".to_owned(),
                    waba_id: "w".to_owned(),
                    phone_number_id: None,
                    contact: None,
                    payload: "{}".to_owned(),
                }],
                inbound: Vec::new(),
                statuses: Vec::new(),
            })
            .collect();
        store.commit_intake(&items).await.unwrap();
        store
    }

    /// Retention deleting events after the cursor of a subscriber catching up, past the mark it was told of,
    /// ends the subscription before it hands out anything past the gap; a subscriber told of that mark reads
    /// on from the oldest event kept.
    #[tokio::test]
    async fn pruning_past_a_catching_up_cursor_ends_the_subscription() {
        let dir = std::env::temp_dir().join(format!("wabridge-sub-pruned-{}", std::process::id()));
        let store = store_with_events(&dir, 10).await;
        let (batches, _) = broadcast::channel(8);
        let (_head_tx, head) = watch::channel(10);
        let feed = Arc::new(EventFeed { batches, head });
        let subscribe = |after: i64, told: i64| {
            let mut sub = Subscription::new(
                feed.clone(),
                store.clone(),
                Hooks::default(),
                EventFilter::default(),
                Some(after),
                2,
            );
            sub.watch_pruning(told);
            sub
        };
        let mut sub = subscribe(0, 0);
        let seqs = |got: Vec<crate::events::FeedEvent>| got.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(sub.next().await.unwrap().unwrap()), [1, 2]);
        // Events 1 to 6 pruned (the mark goes to 6) before the next page is read.
        let later = std::time::SystemTime::now() + Duration::from_secs(60);
        assert_eq!(store.prune(later, Some(6)).await.unwrap().events, 6);
        match sub.next().await {
            Err(SubscriptionError::Pruned { cursor: 2, through: 6 }) => {}
            other => panic!("expected the subscription to end at the gap, got {other:?}"),
        }
        assert_eq!(sub.cursor(), 2, "the cursor stays before the gap");
        // Back with the same cursor, told the mark: the oldest events kept follow.
        let mut resumed = subscribe(2, 6);
        assert_eq!(seqs(resumed.next().await.unwrap().unwrap()), [7, 8]);
        // A mark at or below the cursor is no gap.
        let mut behind = subscribe(8, 0);
        assert_eq!(seqs(behind.next().await.unwrap().unwrap()), [9, 10]);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
