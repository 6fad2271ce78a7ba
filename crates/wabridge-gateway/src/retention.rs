//! Background pruning of old raw webhooks and events.
//!
//! Every `prune_interval_secs`, rows older than `max_age_secs` are deleted, except events that application
//! callbacks still need: every event above `oldest_needed` (the event after the lowest callback cursor:
//! not yet queued by some callback, given by the caller) and every event a delivery row — pending, or failed
//! and replayable — refers to are kept whatever their age. A delivery that failed for good holds back only its
//! own event, not the log after it. Rejected bodies not re-processed yet are kept until
//! `rejected_max_age_secs` (90 days by default): they are what re-processing after an upgrade reads.

use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::store::Store;

/// Runs one pruning pass now; returns how many events and raw bodies were removed.
pub async fn prune_once(
    store: &Store,
    config: &RetentionConfig,
    oldest_needed: Option<i64>,
) -> Result<(u64, u64), crate::store::StoreError> {
    let cutoff = SystemTime::now()
        .checked_sub(Duration::from_secs(config.max_age_secs))
        .unwrap_or(SystemTime::UNIX_EPOCH);
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
    let cutoff = SystemTime::now()
        .checked_sub(Duration::from_secs(config.rejected_max_age_secs))
        .unwrap_or(SystemTime::UNIX_EPOCH);
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

/// The highest seq retention has deleted, 0 when none: a reader resuming after a lower seq may have missed
/// events that were pruned before it read them.
///
/// # Errors
/// When the store cannot be read.
pub async fn pruned_through(store: &Store) -> Result<i64, crate::store::StoreError> {
    Ok(store.api_setting(crate::store::PRUNED_THROUGH).await?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Spawns the pruning loop; it stops when `shutdown` is cancelled.
pub fn spawn(store: Store, config: RetentionConfig, shutdown: CancellationToken) -> JoinHandle<()> {
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
            match prune_once(&store, &config, oldest_needed).await {
                Ok((0, 0)) => {}
                Ok((events, raw)) => tracing::info!(events, raw_webhooks = raw, "pruned old data"),
                Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
            }
        }
    })
}
