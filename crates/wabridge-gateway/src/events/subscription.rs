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
        Self { feed, live, store, hooks, filter, cursor, catching_up, page_size: page_size.max(1) }
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
    pub async fn next(&mut self) -> Result<Option<Vec<FeedEvent>>, StoreError> {
        loop {
            if self.catching_up {
                let head = self.feed.head();
                let page = self.store.events_after(self.cursor, &self.filter, self.page_size).await?;
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

    use super::Subscription;
    use crate::events::{EventFeed, FeedBatch, Hooks};
    use crate::store::{EventFilter, IntakeBatchItem, NewEvent, NewRawWebhook, SqliteOptions, Store};

    /// A subscriber that read the head just before the feed moved it (while nobody listened) follows the feed
    /// from the old head; the feed's empty batch at the new head sends it to the store for what it skipped.
    #[tokio::test]
    async fn an_empty_batch_at_a_new_head_sends_a_follower_to_the_store() {
        let dir = std::env::temp_dir().join(format!("wabridge-sub-{}", std::process::id()));
        let store = Store::open_sqlite(dir.join("t.db"), SqliteOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let items: Vec<IntakeBatchItem> = (1..=3)
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
}
