-- Gateway 9: the users each WhatsApp Business Account reached outside their 24-hour window (the messaging-limit
-- tier counts them per rolling 24 hours), so that the instance that takes a WABA's sending lease (after a
-- restart or a failover) starts from the users already reached instead of granting a second full tier.
-- Written by the schedulers when they admit a template to a user not reached in the last 24 hours (at most the
-- tier's size per day and WABA); never touched by webhook intake. `reached_at` is Unix epoch milliseconds.
CREATE TABLE waba_reached (
    waba_id    TEXT   NOT NULL,
    recipient  TEXT   NOT NULL,
    reached_at BIGINT NOT NULL,
    PRIMARY KEY (waba_id, recipient)
);
-- Pruning rows older than 24 hours.
CREATE INDEX waba_reached_at ON waba_reached (waba_id, reached_at);
