-- Gateway 2: application callbacks and their delivery state. Times are Unix epoch milliseconds.

-- Callback targets, from the configuration (source 'config', refreshed at every start) or the API.
-- `scan_seq`: every event of the log up to it has been queued for this callback (or did not match its
-- filter); the dispatcher takes the next ones from there.
CREATE TABLE callbacks (
    id              TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    shape           TEXT    NOT NULL CHECK (shape IN ('cloud', 'onprem')),
    max_concurrent  INTEGER NOT NULL CHECK (max_concurrent > 0),
    kinds           TEXT    NOT NULL,  -- comma-separated event kinds; '' = every kind
    phone_number_id TEXT,
    source          TEXT    NOT NULL CHECK (source IN ('config', 'api')),
    scan_seq        BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL
);

-- One row per event queued for a callback and not delivered yet (pending), or given up on (failed, until
-- replayed). A delivered event's row is deleted, so the table holds only the undelivered window.
-- Order per contact: a pending row is sent only when no pending row of the same callback and contact_key
-- has a lower seq. `lease_until` is set while an instance sends it (a crashed instance's lease expires).
CREATE TABLE callback_deliveries (
    callback_id     TEXT    NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    seq             BIGINT  NOT NULL,
    contact_key     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    queued_at       BIGINT  NOT NULL,  -- when queued (or replayed): the maximum age counts from here
    event_at        BIGINT  NOT NULL,  -- when the event was committed
    last_error      TEXT,
    PRIMARY KEY (callback_id, seq)
);
CREATE INDEX callback_deliveries_contact ON callback_deliveries (callback_id, contact_key, seq)
    WHERE state = 'pending';
CREATE INDEX callback_deliveries_seq ON callback_deliveries (seq);
