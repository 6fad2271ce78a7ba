//! Sends whose outcome is unknown after a crash (state `sending` at start): reconciled from the statuses that
//! carry the gateway id in `biz_opaque_callback_data`, or sent again after the grace period and flagged.

use std::time::Duration;

use serde_json::{Value, json};
use wabridge_gateway::store::{
    IntakeBatchItem, NewEvent, NewQueued, NewRawWebhook, OutboundOp, StatusUpdate,
};

use crate::support::backend::{Backend, TestDb, each_backend, run};
use crate::support::sending::{
    NUMBER, NUMBER2, Pair, config, read_with_three_statuses, sandbox_config, template,
};

each_backend!(
    sending_message_whose_status_arrives_is_reconciled,
    sending_message_without_status_is_resent,
    sends_in_doubt_are_counted_over_every_number,
);

const WAIT: Duration = Duration::from_secs(20);
const TO: &str = "16315550101";

/// Puts one message in the store as a process killed during its request left it: `sending`.
async fn leave_in_sending(config: &wabridge_gateway::config::Config, id: &str) {
    let store = wabridge_gateway::open_store(config).await.unwrap();
    let body = template(NUMBER, TO);
    store
        .enqueue_outbound(&[NewQueued {
            id: id.to_owned(),
            phone_number_id: NUMBER.to_owned(),
            recipient: TO.to_owned(),
            kind: "template".to_owned(),
            body: json!({"messaging_product": "whatsapp", "to": TO, "type": "template",
                         "template": body["template"]})
            .to_string(),
            callback_data: Some("app-data".to_owned()),
            not_before: None,
            expires_at: None,
            idempotency_key: None,
            request_sha256: None,
        }])
        .await
        .unwrap();
    store.apply_outbound_ops(&[OutboundOp::MarkSending { id: id.to_owned() }]).await.unwrap();
    store.close().await;
}

/// Sends the message to the sandbox directly, as the killed process did before it could record the answer.
async fn send_as_before_the_crash(pair: &Pair, id: &str) -> String {
    let body = json!({"messaging_product": "whatsapp", "to": TO, "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}, "biz_opaque_callback_data": id});
    let url = format!("{}/v23.0/{NUMBER}/messages", pair.sandbox.base_url());
    let resp = pair.http.post(url).bearer_auth(pair.sandbox.access_token()).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    v["messages"][0]["id"].as_str().unwrap().to_owned()
}

async fn sending_message_whose_status_arrives_is_reconciled(db: TestDb) {
    let mut config = config(&db);
    // Long enough that a resend would show, short enough that the scheduler looks every second.
    config.outbound.unknown_outcome_grace_ms = 4_000;
    let id = "reconcile-me";
    leave_in_sending(&config, id).await;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let wamid = send_as_before_the_crash(&pair, id).await;
    let m = pair.wait_message(id, WAIT, "read with three statuses", read_with_three_statuses).await;
    assert_eq!(m["wamid"], wamid.as_str(), "{m}");
    assert_eq!(m["reconciled"], true, "{m}");
    assert_eq!(m["possibly_duplicated"], false, "{m}");
    assert_eq!(m["attempts"], 1, "not sent again: {m}");
    let timeline: Vec<&str> =
        m["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["sent", "delivered", "read"]);
    assert_eq!(pair.sandbox.control().counters().accepted, 1, "one message reached Meta");
    // Counted once the scheduler's write is done (the store shows it a moment before the counter moves).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics =
            pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
        if metrics.contains("wabridge_outbound_reconciled_total 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.stop().await;
}

async fn sending_message_without_status_is_resent(db: TestDb) {
    let mut config = config(&db);
    config.outbound.unknown_outcome_grace_ms = 300;
    let id = "resend-me";
    leave_in_sending(&config, id).await;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    let m = pair.wait_message(id, WAIT, "read with three statuses", read_with_three_statuses).await;
    assert_eq!(m["reconciled"], false, "{m}");
    assert_eq!(m["possibly_duplicated"], true, "{m}");
    assert_eq!(m["attempts"], 2, "sent again after the grace period: {m}");
    assert_eq!(m["biz_opaque_callback_data"], "app-data");
    assert_eq!(pair.sandbox.control().counters().accepted, 1);
    let metrics = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wabridge_outbound_resent_total 1"), "{metrics}");
    pair.stop().await;
}

/// `wabridge_outbound_in_doubt` of the gateway's `/metrics`.
async fn in_doubt(pair: &Pair) -> String {
    let text = pair.http.get(format!("{}/metrics", pair.url)).send().await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with("wabridge_outbound_in_doubt ")).unwrap_or("").to_owned()
}

async fn sends_in_doubt_are_counted_over_every_number(db: TestDb) {
    let mut config = config(&db);
    // Held in doubt for the whole test: neither reconciled nor sent again.
    config.outbound.unknown_outcome_grace_ms = 120_000;
    leave_in_sending(&config, "in-doubt").await;
    let pair = Pair::start(config, sandbox_config(|_| {})).await;
    // The other number's scheduler, with nothing in doubt, is sending too, and its count must not hide the first
    // number's send (each scheduler used to set the one gauge to its own count).
    let (code, r) = pair.send(&template(NUMBER2, TO)).await;
    assert_eq!(code, 201, "{r}");
    let other = r["messages"][0]["id"].as_str().unwrap().to_owned();
    pair.wait_message(&other, WAIT, "read with three statuses", read_with_three_statuses).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while in_doubt(&pair).await != "wabridge_outbound_in_doubt 1" {
        assert!(tokio::time::Instant::now() < deadline, "{}", in_doubt(&pair).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.stop().await;
}

/// A status webhook for `wamid` as intake stores it: the raw body, one status event per status, the statuses.
fn statuses_webhook(body: &str, wamid: &str, statuses: &[&str]) -> IntakeBatchItem {
    let events = statuses
        .iter()
        .map(|s| NewEvent {
            dedupe_key: format!("status:{wamid}:{s}"),
            kind: "status".to_owned(),
            field: "messages".to_owned(),
            waba_id: "waba-1".to_owned(),
            phone_number_id: Some(NUMBER.to_owned()),
            contact: Some(TO.to_owned()),
            payload: format!(r#"{{"statuses":[{{"id":"{wamid}","status":"{s}"}}]}}"#),
        })
        .collect();
    let statuses = statuses
        .iter()
        .zip(1..)
        .map(|(s, t)| StatusUpdate {
            wamid: wamid.to_owned(),
            status: (*s).to_owned(),
            timestamp: t,
            errors: None,
        })
        .collect();
    IntakeBatchItem {
        raw: NewRawWebhook::accepted(body.to_owned(), true),
        events,
        inbound: Vec::new(),
        statuses,
    }
}

/// PostgreSQL: the backend that `blocker` (a backend pid) holds up, once there is one.
async fn blocked_by(admin: &sqlx::PgPool, blocker: i32) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))")
                .bind(blocker)
                .fetch_optional(admin)
                .await
                .unwrap();
        if let Some(pid) = found {
            return pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing waits for backend {blocker}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PostgreSQL: a message's wamid is recorded while a webhook with its statuses is being stored (the send's
/// answer and Meta's statuses race, as they do at every send under load), and the process dies right then
/// (`kill -9`; here its transaction's connection is terminated). Whatever has committed must leave the
/// message consistent: either its wamid with its statuses applied (`read`), or no wamid (still `sending`, for
/// reconciliation). Before the fix, the wamid's transaction and the intake's could each miss the other's
/// rows, and a second transaction meant to apply the statuses after both was lost with the process: the
/// message stayed `sent` for good with its `read` stored (seen in `sending_crash.rs` on CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wamid_recorded_during_its_statuses_intake_gets_them_also_if_the_process_dies() {
    run(Backend::Postgres, |db| async move {
        use std::str::FromStr;

        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

        let TestDb::Postgres { url, schema } = &db else { unreachable!("a PostgreSQL test") };
        let store = db.open().await;
        let mut config = config(&db);
        config.outbound.unknown_outcome_grace_ms = 60_000;
        let (id, wamid) = ("raced", "wamid.raced");
        // Another message, sent before, whose row the intake's update of states will wait for.
        let (other, other_wamid) = ("other", "wamid.other");
        store.close().await;
        leave_in_sending(&config, id).await;
        leave_in_sending(&config, other).await;
        let store = db.open().await;
        let sent = OutboundOp::Sent { id: other.to_owned(), wamid: other_wamid.to_owned() };
        store.apply_outbound_ops(&[sent]).await.unwrap();

        let options = PgConnectOptions::from_str(url).unwrap().options([("search_path", schema.as_str())]);
        let admin = PgPoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
        // A transaction holding the other message's row (a cancel, a claim, another status).
        let mut holder = admin.begin().await.unwrap();
        let holder_pid: i32 =
            sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *holder).await.unwrap();
        sqlx::query("SELECT id FROM outbound_messages WHERE id = $1 FOR UPDATE")
            .bind(other)
            .execute(&mut *holder)
            .await
            .unwrap();

        // The intake of a webhook with both wamids' statuses: its statuses are written, and its update of the
        // messages' states (whose snapshot has no wamid for `raced`) waits for the other message's row.
        let intake = tokio::spawn({
            let store = store.clone();
            let items = vec![
                statuses_webhook("raced statuses", wamid, &["sent", "delivered", "read"]),
                statuses_webhook("other statuses", other_wamid, &["delivered"]),
            ];
            async move { store.commit_intake(&items).await }
        });
        let intake_pid = blocked_by(&admin, holder_pid).await;

        // The send's answer is recorded meanwhile; the process dies while that write waits for the intake.
        let record = tokio::spawn({
            let store = store.clone();
            let sent = OutboundOp::Sent { id: id.to_owned(), wamid: wamid.to_owned() };
            async move { store.apply_outbound_ops(&[sent]).await }
        });
        let writer_pid = blocked_by(&admin, intake_pid).await;
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(writer_pid)
            .fetch_one(&admin)
            .await
            .unwrap();
        assert!(killed);
        let _ = record.await.unwrap();
        holder.commit().await.unwrap();
        intake.await.unwrap().unwrap();
        store.close().await;

        let store = db.open().await;
        let m = store.outbound_detail(id).await.unwrap().unwrap();
        match m.wamid.as_deref() {
            Some(w) => {
                assert_eq!(w, wamid);
                assert_eq!(
                    m.state, "read",
                    "the wamid is stored with its statuses, which must have moved it"
                );
            }
            None => {
                assert_eq!(m.state, "sending", "nothing recorded: reconciliation finds it from its statuses")
            }
        }
        // Recorded again (the reconciliation after the restart, or the writer's retry): read at once.
        let again = OutboundOp::Reconciled { id: id.to_owned(), wamid: wamid.to_owned() };
        store.apply_outbound_ops(&[again]).await.unwrap();
        assert_eq!(store.outbound_detail(id).await.unwrap().unwrap().state, "read");
        assert_eq!(store.outbound_detail(other).await.unwrap().unwrap().state, "delivered");
        store.close().await;
        admin.close().await;
    })
    .await;
}
