-- Gateway 1: durable webhook intake, the event log, contacts' 24-hour window, outbound messages and their
-- status timeline. Every time column holds Unix epoch milliseconds (BIGINT) unless its name says otherwise.
-- JSON is kept as TEXT: byte for byte what was received or built, never re-ordered.

-- Every webhook body received, exactly once per distinct body (by SHA-256).
CREATE TABLE raw_webhooks (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   BIGINT  NOT NULL,
    body          BYTEA   NOT NULL,
    body_sha256   BYTEA   NOT NULL UNIQUE,
    signature_ok  BOOLEAN NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_reason TEXT,
    -- When its events were extracted: at intake for accepted bodies, NULL for rejected ones until re-processed.
    processed_at  BIGINT
);
CREATE INDEX raw_webhooks_rejected ON raw_webhooks (id) WHERE status = 'rejected';

-- The event log. `seq` comes from an identity sequence, taken only under the event-log advisory lock held
-- until commit (see the store's intake transaction), so the commit order is the seq order.
CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key      TEXT   NOT NULL UNIQUE,
    kind            TEXT   NOT NULL,
    field           TEXT   NOT NULL,
    waba_id         TEXT   NOT NULL,
    phone_number_id TEXT,
    contact         TEXT,
    payload         TEXT   NOT NULL,
    raw_id          BIGINT NOT NULL REFERENCES raw_webhooks (id),
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_raw_id ON events (raw_id);
CREATE INDEX events_phone_number_seq ON events (phone_number_id, seq);

-- The 24-hour customer service window, per (business number, contact).
CREATE TABLE contacts (
    phone_number_id TEXT   NOT NULL,
    wa_id           TEXT   NOT NULL,
    last_inbound_at BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);

-- Messages sent through the gateway. `id` is the gateway's own id, `wamid` Meta's once the send succeeded.
CREATE TABLE outbound_messages (
    id              TEXT   PRIMARY KEY,
    phone_number_id TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    wamid           TEXT   UNIQUE,
    state           TEXT   NOT NULL DEFAULT 'queued' CHECK (state IN
                        ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'expired', 'cancelled')),
    body            TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_error      TEXT
);

-- Every status Meta reported for a wamid, known to us or not yet (reconciled when the wamid is recorded).
-- `status_timestamp` is Meta's, in Unix epoch seconds.
CREATE TABLE message_statuses (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wamid            TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    status_timestamp BIGINT NOT NULL,
    errors           TEXT,
    received_at      BIGINT NOT NULL,
    UNIQUE (wamid, status, status_timestamp)
);
