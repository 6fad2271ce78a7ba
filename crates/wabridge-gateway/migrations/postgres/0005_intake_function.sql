-- Intake speed: one intake batch in one round trip. The gateway used to run a batch as seven statements
-- (BEGIN, raw bodies, contacts, the event-log lock, timeline and events, states, COMMIT). Under load each round
-- trip costs most of a millisecond, and four of them were inside the event-log lock, which only one batch holds
-- at a time. Called on its own (autocommit), this function is the whole transaction: the lock is taken inside it
-- and released by the commit that follows its last statement, with no network round trip in between.
--
-- It does what the Rust code did, in the same order and with the same rules:
-- 1. raw bodies, deduplicated by their SHA-256 (rows out: kind 1 = inserted now, kind 2 = the id of every hash;
--    each event names its body by position, 1-based, in the arrays of bodies);
-- 2. contacts' last inbound time (the latest wins), outside the lock;
-- 3. when there are events or statuses: the event-log lock (class, hash of the schema), then the status
--    timeline and the events (rows out: kind 3 = dedupe key and seq of each event inserted), then the states
--    of outbound messages derived from the timeline. Each statement of a PL/pgSQL function takes a new
--    snapshot, so the statements after the lock see everything committed before it (the wamids a sender
--    recorded), as the separate statements did.
-- Why the lock, held until the commit: (a) seq order must be visibility order — under the lock seqs are assigned by
-- one transaction at a time and each commits before the next assigns, so a reader that passed a seq never misses
-- a lower one committed later; (b) statuses and wamids must meet — the sender records a wamid in its own
-- transaction and then, under the same lock, applies the statuses stored so far, so either this transaction sees
-- the committed wamid or the sender sees these committed statuses, never neither (write skew under READ
-- COMMITTED would otherwise strand messages at an earlier state).
-- The status and state ranks are the ones of `status_rank!`, `state_rank!` and `state_of_status!` in
-- `store/mod.rs`; the state-machine tests run through this function on PostgreSQL.
CREATE FUNCTION wabridge_intake(
    lock_class   INTEGER,
    now_ms       BIGINT,
    r_received   BIGINT[],
    r_body       BYTEA[],
    r_hash       BYTEA[],
    r_sig        BOOLEAN[],
    r_status     TEXT[],
    r_reason     TEXT[],
    r_processed  BIGINT[],
    c_number     TEXT[],
    c_wa_id      TEXT[],
    c_at         BIGINT[],
    s_wamid      TEXT[],
    s_status     TEXT[],
    s_timestamp  BIGINT[],
    s_errors     TEXT[],
    s_wamids     TEXT[],
    e_key        TEXT[],
    e_kind       TEXT[],
    e_field      TEXT[],
    e_waba       TEXT[],
    e_number     TEXT[],
    e_contact    TEXT[],
    e_payload    TEXT[],
    e_raw        INTEGER[]
) RETURNS TABLE (out_kind SMALLINT, out_hash BYTEA, out_key TEXT, out_id BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    raw_ids BIGINT[];
BEGIN
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO raw_webhooks
            (received_at, body, body_sha256, signature_ok, status, reject_reason, processed_at)
        SELECT * FROM UNNEST(r_received, r_body, r_hash, r_sig, r_status, r_reason, r_processed)
        ON CONFLICT (body_sha256) DO NOTHING
        RETURNING body_sha256, id
    )
    SELECT 1::SMALLINT, inserted.body_sha256, NULL::TEXT, inserted.id FROM inserted;

    -- The id of every body, new or known, by position (a lookup per hash on the unique index: a join could be
    -- planned as a scan of the whole table while its statistics are young, and the plan is kept).
    SELECT array_agg((SELECT r.id FROM raw_webhooks r WHERE r.body_sha256 = x.h) ORDER BY x.ord)
    INTO raw_ids
    FROM UNNEST(r_hash) WITH ORDINALITY AS x(h, ord);

    RETURN QUERY
    SELECT 2::SMALLINT, x.h, NULL::TEXT, raw_ids[x.ord] FROM UNNEST(r_hash) WITH ORDINALITY AS x(h, ord);

    IF cardinality(c_number) > 0 THEN
        INSERT INTO contacts (phone_number_id, wa_id, last_inbound_at, updated_at)
        SELECT p, w, t, now_ms FROM UNNEST(c_number, c_wa_id, c_at) AS u(p, w, t)
        ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET
            last_inbound_at = GREATEST(contacts.last_inbound_at, EXCLUDED.last_inbound_at),
            updated_at = EXCLUDED.updated_at;
    END IF;

    IF cardinality(e_key) = 0 AND cardinality(s_wamid) = 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));

    RETURN QUERY
    WITH timeline AS (
        INSERT INTO message_statuses (wamid, status, status_timestamp, errors, received_at)
        SELECT w, s, t, e, now_ms FROM UNNEST(s_wamid, s_status, s_timestamp, s_errors) AS u(w, s, t, e)
        ON CONFLICT (wamid, status, status_timestamp) DO NOTHING
    ), added AS (
        INSERT INTO events
            (dedupe_key, kind, field, waba_id, phone_number_id, contact, payload, raw_id, created_at)
        -- A body missing here gives a NULL raw_id, which fails the batch rather than dropping its events.
        SELECT u.k, u.kd, u.f, u.w, u.p, u.c, u.pl, raw_ids[u.ri], now_ms
        FROM UNNEST(e_key, e_kind, e_field, e_waba, e_number, e_contact, e_payload, e_raw)
            WITH ORDINALITY AS u(k, kd, f, w, p, c, pl, ri, ord)
        ORDER BY u.ord
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING dedupe_key, seq
    )
    SELECT 3::SMALLINT, NULL::BYTEA, added.dedupe_key, added.seq FROM added;

    IF cardinality(s_wamids) > 0 THEN
        UPDATE outbound_messages AS o
        SET state = best.state,
            updated_at = now_ms,
            last_error = CASE WHEN best.state = 'failed' THEN best.errors ELSE o.last_error END
        FROM (
            SELECT DISTINCT ON (wamid) wamid,
                (CASE status WHEN 'played' THEN 'read' ELSE status END) AS state,
                errors,
                (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 3
                    WHEN 'failed' THEN 100 ELSE 0 END) AS rank
            FROM message_statuses
            WHERE wamid = ANY (s_wamids)
            ORDER BY wamid,
                (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 3
                    WHEN 'failed' THEN 100 ELSE 0 END) DESC,
                id
        ) AS best
        WHERE o.wamid = best.wamid
          AND best.rank > (CASE o.state WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3
                WHEN 'failed' THEN 100 WHEN 'expired' THEN 100 WHEN 'cancelled' THEN 100 ELSE 0 END);
    END IF;
END
$$;
