-- Intake speed: the status timeline without a unique index of its own.
--
-- `message_statuses` had a unique index on (wamid, status, status_timestamp). A wamid is random, so every new
-- status put one B-tree insert at a random leaf of that index: one more page written whole to the WAL (and
-- again by the checkpoint) per status webhook, on top of the event log's unique dedupe key, which already says
-- whether the status is new (`status:{wamid}:{status}`). Now a timeline row is the status event's: its id is
-- the event's seq (so rows are appended in order), it is written only when the event is new, it is found
-- through the event log's dedupe index (the range of keys starting `status:{wamid}:`), and it goes when
-- retention prunes its event.
--
-- What changes: (1) one row per (wamid, status), as the event log keeps, rather than one per (wamid, status,
-- timestamp): a status Meta repeats with another timestamp is a duplicate, as it already was in the event log
-- (the state an outbound message reaches is the same either way); (2) the timeline of a message is pruned with
-- its status events, after the retention age. Rows whose event is already pruned cannot be kept and are
-- dropped here; of rows repeating (wamid, status) the first one received is kept.
--
-- PostgreSQL keeps its table and index (its intake runs in one server-side function, where the index is not
-- what limits it).
--
-- Migrations run with foreign keys off (see `SqliteStore::migrate`); the rebuild follows SQLite's procedure.
CREATE TABLE message_statuses_by_event (
    id               INTEGER PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    wamid            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    status_timestamp INTEGER NOT NULL,
    errors           TEXT,
    received_at      INTEGER NOT NULL
);

INSERT OR IGNORE INTO message_statuses_by_event (id, wamid, status, status_timestamp, errors, received_at)
SELECT e.seq, m.wamid, m.status, m.status_timestamp, m.errors, m.received_at
FROM message_statuses AS m
JOIN events AS e ON e.dedupe_key = 'status:' || m.wamid || ':' || m.status
ORDER BY m.id;

DROP TABLE message_statuses;

ALTER TABLE message_statuses_by_event RENAME TO message_statuses;
