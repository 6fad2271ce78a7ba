-- The failures that count toward `outbound.max_attempts` (and the exponent of a retry's backoff), apart from
-- `attempts` (every time a message went to Meta, as `GET /v1/messages/{id}` shows). Waits for a rate limit
-- (130429, 131056), pauses and probes while an operator fixes the account, and sends stopped before they
-- left do not count. Before, a scheduler loading a message (after a restart, or on another instance) took
-- `attempts` as the count, so a message that had waited through rate limits failed at its next error.
-- Messages stored before start from 0.
ALTER TABLE outbound_messages ADD COLUMN retries BIGINT NOT NULL DEFAULT 0;
