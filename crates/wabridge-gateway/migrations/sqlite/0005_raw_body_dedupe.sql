-- Intake speed: a unique index on the SHA-256 of every body put one random B-tree insert (and one page
-- written to the WAL) on every webhook. Bodies that carry events are deduplicated by their events' dedupe
-- keys instead (a redelivered body adds no events, and its new raw row is removed in the same transaction);
-- only bodies without events (rejected ones, envelopes with nothing in them) are deduplicated by hash, through
-- a partial unique index. Rows already stored keep their hash unique.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt by SQLite's documented procedure:
-- in one transaction, with foreign keys off (the store runs its SQLite migrations on a connection opened with
-- foreign_keys=OFF, since the pragma cannot change inside the migration's transaction).
CREATE TABLE raw_webhooks_rebuilt (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at    INTEGER NOT NULL,
    body           BLOB    NOT NULL,
    body_sha256    BLOB    NOT NULL,
    signature_ok   INTEGER NOT NULL CHECK (signature_ok IN (0, 1)),
    status         TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_reason  TEXT,
    processed_at   INTEGER,
    -- 1: this body is deduplicated by its hash (it carried no events when stored).
    dedupe_by_body INTEGER NOT NULL DEFAULT 0 CHECK (dedupe_by_body IN (0, 1))
);
INSERT INTO raw_webhooks_rebuilt
    (id, received_at, body, body_sha256, signature_ok, status, reject_reason, processed_at, dedupe_by_body)
    SELECT id, received_at, body, body_sha256, signature_ok, status, reject_reason, processed_at, 1
    FROM raw_webhooks;
DROP TABLE raw_webhooks;
ALTER TABLE raw_webhooks_rebuilt RENAME TO raw_webhooks;
CREATE INDEX raw_webhooks_rejected ON raw_webhooks (id) WHERE status = 'rejected';
CREATE UNIQUE INDEX raw_webhooks_body ON raw_webhooks (body_sha256) WHERE dedupe_by_body = 1;
