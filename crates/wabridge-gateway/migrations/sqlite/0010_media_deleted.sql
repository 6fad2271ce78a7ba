-- Gateway 10: media deleted through the gateway (`DELETE /v1/media/{id}`, `DELETE /{version}/{media-id}`), so that
-- every instance sharing the database stops serving its cached copy: a download checks here before answering from
-- its cache, and each instance removes the cached files of deleted media every minute (`media/mod.rs`). Pruned
-- with the events at `retention.max_age_secs`; the cache keeps no file longer than that. `deleted_at` is Unix
-- epoch milliseconds.
CREATE TABLE media_deleted (
    media_id   TEXT    NOT NULL PRIMARY KEY,
    deleted_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The deletions since an instance last looked, and pruning.
CREATE INDEX media_deleted_at ON media_deleted (deleted_at);
