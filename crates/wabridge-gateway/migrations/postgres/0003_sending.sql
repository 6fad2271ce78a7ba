-- Gateway 3: sending. The outbound queue's columns, admin users and their sessions, API keys, and the lease
-- that gives one instance the sending of a number. Times are Unix epoch milliseconds.

-- Queue order is queue_key (an identity).
ALTER TABLE outbound_messages ADD COLUMN queue_key BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE outbound_messages ADD COLUMN not_before BIGINT;           -- send_at, or a retry's earliest time
ALTER TABLE outbound_messages ADD COLUMN expires_at BIGINT;           -- send_at/now + ttl: not sent after it
ALTER TABLE outbound_messages ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbound_messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE outbound_messages ADD COLUMN callback_data TEXT;           -- the application's own callback data
ALTER TABLE outbound_messages ADD COLUMN idempotency_key TEXT;
ALTER TABLE outbound_messages ADD COLUMN request_sha256 TEXT;
ALTER TABLE outbound_messages ADD COLUMN held_by TEXT;                 -- the instance whose scheduler holds it
ALTER TABLE outbound_messages ADD COLUMN sending_since BIGINT;        -- when it went to Meta (state sending)
ALTER TABLE outbound_messages ADD COLUMN possibly_duplicated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE outbound_messages ADD COLUMN reconciled BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX outbound_idempotency ON outbound_messages (idempotency_key);
CREATE INDEX outbound_queued ON outbound_messages (phone_number_id, queue_key) WHERE state = 'queued';
CREATE INDEX outbound_sending ON outbound_messages (phone_number_id) WHERE state = 'sending';

CREATE TABLE admin_users (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,  -- argon2id PHC string
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- Bearer tokens from POST /v1/users/login, by SHA-256 (hex) of the token.
CREATE TABLE api_sessions (
    token_sha256 TEXT    PRIMARY KEY,
    user_name    TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- API keys for applications, by SHA-256 (hex) of the key; the key itself is shown once.
CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    secret_sha256 TEXT    NOT NULL UNIQUE,
    scopes        TEXT    NOT NULL,  -- comma-separated: send, events, admin
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);

-- Which instance sends for a number, until when (renewed while it runs).
CREATE TABLE number_leases (
    phone_number_id TEXT    PRIMARY KEY,
    owner           TEXT    NOT NULL,
    lease_until     BIGINT  NOT NULL
);
