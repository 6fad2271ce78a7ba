-- Intake speed, measured with `wabridge-bench ingest` (docs/benchmarks.md): two per-row costs of every webhook
-- go, as SQLite's migration 0005 did there.
--
-- 1. Raw bodies are no longer all deduplicated by a unique index on their SHA-256: an insert at a random place
--    of that index, and a lookup by hash, for every webhook. A body that carries events is deduplicated by its
--    events (their dedupe keys are unique): when one of its events is already stored and was brought by a body
--    with the same hash, it is a redelivery; it keeps no second row, and events it brings anew (a newer version
--    may find more) link to the original. A body without events (rejected, or an envelope with nothing in it) is
--    still deduplicated by its hash (`dedupe_by_body`, a partial unique index), and a later body with the same
--    hash that now yields events (re-processing after an upgrade) links its events to that row. Rows stored
--    before this migration were all deduplicated by hash and keep that mark.
-- 2. The foreign key from events to raw bodies goes: its check ran one query per event, inside the event-log
--    lock. What it protected against, retention deleting a body while a concurrent intake links an event to it,
--    is now prevented with row locks: the intake locks (FOR KEY SHARE) every body that existed before its call
--    and that it links events to, and fails with a serialization failure (the writer retries the batch) if one
--    has gone; retention locks the bodies it is about to delete (FOR UPDATE) before checking, in a statement of
--    its own, that no event refers to them (`store/postgres.rs`, `prune`).
-- 3. The status timeline is keyed by its status event, as SQLite's migration 0006 did there: a row is written
--    only with a new status event, and has that event's seq as its key, so it needs no sequence and no unique
--    index of its own (another insert at a random place per status). It is found through its event's dedupe
--    key, `status:{wamid}:{status}`: the keys of one wamid are a range of the events' unique index. For such a
--    range to hold exactly the keys with that prefix whatever the database's collation, dedupe keys compare
--    byte by byte (`COLLATE "C"`; also cheaper than a locale's comparison). A timeline row goes with its event
--    when retention deletes the event (in the same statement: no foreign key to check per row). Rows kept from
--    before: those whose status event is still in the log (the first of repeats), as that event's row.
--
-- Every gateway instance must run a version that calls the function below: the old function is dropped.

ALTER TABLE raw_webhooks ADD COLUMN dedupe_by_body BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE raw_webhooks ALTER COLUMN dedupe_by_body SET DEFAULT false;
CREATE UNIQUE INDEX raw_webhooks_body ON raw_webhooks (body_sha256) WHERE dedupe_by_body;
ALTER TABLE raw_webhooks DROP CONSTRAINT raw_webhooks_body_sha256_key;

ALTER TABLE events DROP CONSTRAINT events_raw_id_fkey;
ALTER TABLE events ALTER COLUMN dedupe_key TYPE TEXT COLLATE "C";

CREATE TABLE message_statuses_by_event (
    id               BIGINT PRIMARY KEY,  -- the seq of its status event
    wamid            TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    status_timestamp BIGINT NOT NULL,
    errors           TEXT,
    received_at      BIGINT NOT NULL
);
INSERT INTO message_statuses_by_event (id, wamid, status, status_timestamp, errors, received_at)
SELECT DISTINCT ON (e.seq) e.seq, m.wamid, m.status, m.status_timestamp, m.errors, m.received_at
FROM message_statuses AS m
JOIN events AS e ON e.dedupe_key = 'status:' || m.wamid || ':' || m.status
ORDER BY e.seq, m.id;
DROP TABLE message_statuses;
ALTER TABLE message_statuses_by_event RENAME TO message_statuses;
ALTER INDEX message_statuses_by_event_pkey RENAME TO message_statuses_pkey;

DROP FUNCTION wabridge_intake(
    INTEGER, BIGINT, BIGINT[], BYTEA[], BYTEA[], BOOLEAN[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], BIGINT[],
    TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], INTEGER[]
);

-- One intake batch in one call, as in migration 0005 (which explains the event-log lock and the order of the
-- steps, except that the statuses' rows are now written after the events, under the same lock, and that the
-- states of outbound messages move by this batch's statuses, only forward: a status stored before was applied
-- when it came, or, if its wamid was not known yet, by the sender when it recorded the wamid (under the lock:
-- `apply_statuses` in `store/postgres.rs` reads the whole timeline). The bodies' arrays gain `r_by_body` (true
-- for a body without events), the statuses come in arrival order, and the rows out are:
-- kind 1 = a body stored by this call (hash, id), kind 2 = a body stored before (hash, id of its row),
-- kind 3 = an event stored by this call (dedupe key, seq). The bodies' hashes are distinct within a call.
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
    r_by_body    BOOLEAN[],
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
    raw_ids    BIGINT[];   -- the row of each body, by position
    fresh      BOOLEAN[];  -- whether this call stored it, by position
    earlier    BIGINT[];   -- rows stored before this call that events may link to
    added_keys TEXT[];
    added_seqs BIGINT[];
    locked     BIGINT;
    dup        RECORD;
BEGIN
    IF cardinality(r_hash) > 0 THEN
        -- Bodies stored before without events, by hash (a probe of the small partial index).
        SELECT array_agg(
            (SELECT r.id FROM raw_webhooks r WHERE r.body_sha256 = x.h AND r.dedupe_by_body) ORDER BY x.ord)
        INTO raw_ids
        FROM UNNEST(r_hash) WITH ORDINALITY AS x(h, ord);

        WITH inserted AS (
            INSERT INTO raw_webhooks
                (received_at, body, body_sha256, signature_ok, status, reject_reason, processed_at, dedupe_by_body)
            SELECT u.rc, u.b, u.h, u.sg, u.st, u.rs, u.pr, u.bb
            FROM UNNEST(r_received, r_body, r_hash, r_sig, r_status, r_reason, r_processed, r_by_body)
                WITH ORDINALITY AS u(rc, b, h, sg, st, rs, pr, bb, ord)
            WHERE raw_ids[u.ord] IS NULL
            ORDER BY u.ord
            ON CONFLICT (body_sha256) WHERE dedupe_by_body DO NOTHING
            RETURNING body_sha256, id
        )
        SELECT array_agg(COALESCE(raw_ids[x.ord], inserted.id) ORDER BY x.ord),
               array_agg(inserted.id IS NOT NULL ORDER BY x.ord)
        INTO raw_ids, fresh
        FROM UNNEST(r_hash) WITH ORDINALITY AS x(h, ord)
        LEFT JOIN inserted ON inserted.body_sha256 = x.h;

        -- A body without events that a concurrent call stored first: its row, now committed.
        IF array_position(raw_ids, NULL) IS NOT NULL THEN
            SELECT array_agg(COALESCE(raw_ids[x.ord],
                (SELECT r.id FROM raw_webhooks r WHERE r.body_sha256 = x.h AND r.dedupe_by_body)) ORDER BY x.ord)
            INTO raw_ids
            FROM UNNEST(r_hash) WITH ORDINALITY AS x(h, ord);
        END IF;

        -- Rows stored before: locked against retention until this commits, and still there.
        earlier := ARRAY(SELECT raw_ids[x.ord] FROM generate_subscripts(r_hash, 1) AS x(ord) WHERE NOT fresh[x.ord]);
        IF cardinality(earlier) > 0 THEN
            SELECT count(*) INTO locked FROM (
                SELECT r.id FROM raw_webhooks r WHERE r.id = ANY (earlier) ORDER BY r.id FOR KEY SHARE
            ) AS l;
            IF locked < cardinality(earlier) THEN
                RAISE EXCEPTION 'a stored webhook body was deleted while its events were linked to it'
                    USING ERRCODE = 'serialization_failure';
            END IF;
        END IF;
    END IF;

    IF cardinality(c_number) > 0 THEN
        INSERT INTO contacts (phone_number_id, wa_id, last_inbound_at, updated_at)
        SELECT p, w, t, now_ms FROM UNNEST(c_number, c_wa_id, c_at) AS u(p, w, t)
        ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET
            last_inbound_at = GREATEST(contacts.last_inbound_at, EXCLUDED.last_inbound_at),
            updated_at = EXCLUDED.updated_at;
    END IF;

    IF cardinality(e_key) > 0 OR cardinality(s_wamid) > 0 THEN
        PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));

        WITH added AS (
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
        SELECT array_agg(added.dedupe_key), array_agg(added.seq) INTO added_keys, added_seqs FROM added;

        -- One timeline row per new status event, from the first status of the batch with its key.
        IF cardinality(s_wamid) > 0 AND cardinality(added_keys) > 0 THEN
            INSERT INTO message_statuses (id, wamid, status, status_timestamp, errors, received_at)
            SELECT DISTINCT ON (a.s) a.s, u.w, u.st, u.t, u.e, now_ms
            FROM UNNEST(added_keys, added_seqs) AS a(k, s)
            JOIN UNNEST(s_wamid, s_status, s_timestamp, s_errors) WITH ORDINALITY AS u(w, st, t, e, ord)
                ON a.k = 'status:' || u.w || ':' || u.st
            ORDER BY a.s, u.ord;
        END IF;

        -- Redeliveries: a body stored by this call whose events were partly or wholly known, brought first by
        -- a body with the same hash (not a body repeating an event of its own: its events link to its own row).
        IF cardinality(e_key) > COALESCE(cardinality(added_keys), 0) THEN
            FOR dup IN
                SELECT DISTINCT ON (u.ri) u.ri AS pos, r.id AS original
                FROM UNNEST(e_key, e_raw) AS u(k, ri)
                JOIN events e ON e.dedupe_key = u.k
                JOIN raw_webhooks r ON r.id = e.raw_id
                WHERE fresh[u.ri] AND r.body_sha256 = r_hash[u.ri] AND r.id <> raw_ids[u.ri]
                ORDER BY u.ri, r.id
            LOOP
                PERFORM 1 FROM raw_webhooks r WHERE r.id = dup.original FOR KEY SHARE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'a stored webhook body was deleted while its events were linked to it'
                        USING ERRCODE = 'serialization_failure';
                END IF;
                UPDATE events SET raw_id = dup.original WHERE raw_id = raw_ids[dup.pos];
                DELETE FROM raw_webhooks WHERE id = raw_ids[dup.pos];
                raw_ids[dup.pos] := dup.original;
                fresh[dup.pos] := false;
            END LOOP;
        END IF;
    END IF;

    RETURN QUERY
    SELECT CASE WHEN fresh[x.ord] THEN 1::SMALLINT ELSE 2::SMALLINT END, r_hash[x.ord], NULL::TEXT, raw_ids[x.ord]
    FROM generate_subscripts(r_hash, 1) AS x(ord);

    RETURN QUERY
    SELECT 3::SMALLINT, NULL::BYTEA, a.k, a.s FROM UNNEST(added_keys, added_seqs) AS a(k, s);

    IF cardinality(s_wamids) > 0 THEN
        UPDATE outbound_messages AS o
        SET state = best.state,
            updated_at = now_ms,
            last_error = CASE WHEN best.state = 'failed' THEN best.errors ELSE o.last_error END
        FROM (
            SELECT DISTINCT ON (u.w) u.w AS wamid,
                (CASE u.st WHEN 'played' THEN 'read' ELSE u.st END) AS state,
                u.e AS errors,
                (CASE u.st WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 3
                    WHEN 'failed' THEN 100 ELSE 0 END) AS rank
            FROM UNNEST(s_wamid, s_status, s_errors) WITH ORDINALITY AS u(w, st, e, ord)
            ORDER BY u.w,
                (CASE u.st WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'played' THEN 3
                    WHEN 'failed' THEN 100 ELSE 0 END) DESC,
                u.ord
        ) AS best
        WHERE o.wamid = best.wamid
          AND best.rank > (CASE o.state WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3
                WHEN 'failed' THEN 100 WHEN 'expired' THEN 100 WHEN 'cancelled' THEN 100 ELSE 0 END);
    END IF;
END
$$;
