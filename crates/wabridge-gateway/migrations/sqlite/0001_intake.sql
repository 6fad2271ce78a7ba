-- Gateway 1: durable webhook intake, the event log, contacts' 24-hour window, outbound messages and their
-- status timeline. Every time column holds Unix epoch milliseconds (INTEGER) unless its name says otherwise.

-- Every webhook body received, exactly once per distinct body (by SHA-256).
CREATE TABLE raw_webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   INTEGER NOT NULL,
    body          BLOB    NOT NULL,
    body_sha256   BLOB    NOT NULL UNIQUE,
    signature_ok  INTEGER NOT NULL CHECK (signature_ok IN (0, 1)),
    status        TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_reason TEXT,
    -- When its events were extracted: at intake for accepted bodies, NULL for rejected ones until re-processed.
    processed_at  INTEGER
);
CREATE INDEX raw_webhooks_rejected ON raw_webhooks (id) WHERE status = 'rejected';

-- The event log. AUTOINCREMENT: a sequence number is never reused, even after the newest rows are pruned.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    field           TEXT    NOT NULL,
    waba_id         TEXT    NOT NULL,
    phone_number_id TEXT,
    contact         TEXT,
    payload         TEXT    NOT NULL,
    raw_id          INTEGER NOT NULL REFERENCES raw_webhooks (id),
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_raw_id ON events (raw_id);
CREATE INDEX events_phone_number_seq ON events (phone_number_id, seq);

-- The 24-hour customer service window, per (business number, contact).
CREATE TABLE contacts (
    phone_number_id TEXT    NOT NULL,
    wa_id           TEXT    NOT NULL,
    last_inbound_at INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
) WITHOUT ROWID;

-- Messages sent through the gateway. `id` is the gateway's own id, `wamid` Meta's once the send succeeded.
CREATE TABLE outbound_messages (
    id              TEXT    PRIMARY KEY NOT NULL,
    phone_number_id TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    wamid           TEXT    UNIQUE,
    state           TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN
                        ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'expired', 'cancelled')),
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT
);

-- Every status Meta reported for a wamid, known to us or not yet (reconciled when the wamid is recorded).
-- `status_timestamp` is Meta's, in Unix epoch seconds.
CREATE TABLE message_statuses (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    wamid            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    status_timestamp INTEGER NOT NULL,
    errors           TEXT,
    received_at      INTEGER NOT NULL,
    UNIQUE (wamid, status, status_timestamp)
);
