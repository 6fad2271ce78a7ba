//! Background pruning of old raw webhooks and events, login sessions and contacts.
//!
//! Every `prune_interval_secs`, rows older than `max_age_secs` are deleted, except events that application
//! callbacks still need: every event above `oldest_needed` (the event after the lowest callback cursor:
//! not yet queued by some callback, given by the caller) and every event a delivery row — pending, or failed
//! and replayable — refers to are kept whatever their age. A delivery that failed for good holds back only its
//! own event, not the log after it. Rejected bodies not re-processed yet are kept until
//! `rejected_max_age_secs` (90 days by default): they are what re-processing after an upgrade reads.
//!
//! The same age applies to login sessions (deleted once they expired or were revoked that long ago) and to
//! contacts, the per-contact rows of the 24-hour customer service window (deleted once the contact's last
//! message is that old, and never before [`SERVICE_WINDOW`]: the window must still be open for whoever wrote
//! within it). A contact whose row is gone counts as one who never wrote: only a template reaches them, as
//! it would anyway with a window closed that long.
//!
//! Events and raw bodies are stamped when they are stored, so their tables are in time order: a pass reads
//! their old part and stops at the first young row (a clock stepping back only delays pruning). Every table
//! is walked a chunk at a time, each chunk in transactions of its own.

use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::store::Store;

/// How long after a contact's last message its row is kept at least, whatever `max_age_secs`: Meta's
/// customer service window, in which free-form messages reach the contact.
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Runs one pruning pass now; returns how many events and raw bodies were removed (login sessions and
/// contacts pruned are logged). Contacts are kept at least [`SERVICE_WINDOW`].
pub async fn prune_once(
    store: &Store,
    config: &RetentionConfig,
    oldest_needed: Option<i64>,
) -> Result<(u64, u64), crate::store::StoreError> {
    prune_once_keeping_contacts(store, config, oldest_needed, SERVICE_WINDOW).await
}

/// [`prune_once`], keeping contacts at least `window` after their last message (the configured
/// `outbound.service_window_secs` when longer than Meta's 24 hours).
pub async fn prune_once_keeping_contacts(
    store: &Store,
    config: &RetentionConfig,
    oldest_needed: Option<i64>,
    window: Duration,
) -> Result<(u64, u64), crate::store::StoreError> {
    let now = SystemTime::now();
    let cutoff = now.checked_sub(Duration::from_secs(config.max_age_secs)).unwrap_or(SystemTime::UNIX_EPOCH);
    // Events with seq > keep_after are kept; the oldest still needed is itself kept.
    let keep_after = oldest_needed.map(|seq| seq - 1);
    // The store raises `pruned_through` before each chunk it deletes.
    let counts = store.prune(cutoff, keep_after).await?;
    // Notes of deleted media go with the events: by then no cache holds the media (each instance's cache
    // keeps files no longer than `max_age_secs`, `media::MediaCache::sweep_cache`). A failure here is tried
    // again at the next pass, and does not hide what was pruned.
    if let Err(e) = store.prune_media_deleted(cutoff).await {
        tracing::warn!(error = %e, "notes of deleted media could not be pruned; tried again at the next pass");
    }
    // Sessions and contacts are pruned whatever became of the rest; like the notes above, a failure here is
    // tried again at the next pass.
    prune_sessions_and_contacts(store, now, cutoff, window.max(SERVICE_WINDOW)).await;
    let cutoff =
        now.checked_sub(Duration::from_secs(config.rejected_max_age_secs)).unwrap_or(SystemTime::UNIX_EPOCH);
    let rejected = store.prune_rejected(cutoff).await?;
    if rejected > 0 {
        tracing::warn!(
            rejected,
            age_secs = config.rejected_max_age_secs,
            "pruned rejected webhook bodies that were never re-processed (retention.rejected_max_age_secs)"
        );
    }
    Ok((counts.events, counts.raw_webhooks + rejected))
}

/// Prunes login sessions that ended before `cutoff`, and contacts whose last message is older than `cutoff`
/// and than the [`SERVICE_WINDOW`]; logs what went and what failed.
async fn prune_sessions_and_contacts(store: &Store, now: SystemTime, cutoff: SystemTime, window: Duration) {
    let sessions = store.prune_sessions(cutoff).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ended login sessions could not be pruned; tried again at the next pass");
        0
    });
    let window_start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let contacts = store.prune_contacts(cutoff.min(window_start)).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "old contacts could not be pruned; tried again at the next pass");
        0
    });
    if sessions > 0 || contacts > 0 {
        tracing::info!(sessions, contacts, "pruned ended login sessions and contacts with no recent message");
    }
}

/// The highest seq retention has deleted, 0 when none: a reader resuming after a lower seq may have missed
/// events that were pruned before it read them.
///
/// # Errors
/// When the store cannot be read.
pub async fn pruned_through(store: &Store) -> Result<i64, crate::store::StoreError> {
    Ok(store.api_setting(crate::store::PRUNED_THROUGH).await?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Spawns the pruning loop; it stops when `shutdown` is cancelled.
pub fn spawn(
    store: Store,
    config: RetentionConfig,
    service_window: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs(config.prune_interval_secs.max(1));
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Application callbacks are the durable consumers: keep what a pending delivery still needs.
            let oldest_needed = match store.oldest_needed_seq().await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning skipped: cannot tell what callbacks still need");
                    continue;
                }
            };
            match prune_once_keeping_contacts(&store, &config, oldest_needed, service_window).await {
                Ok((0, 0)) => {}
                Ok((events, raw)) => tracing::info!(events, raw_webhooks = raw, "pruned old data"),
                Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
            }
        }
    })
}
