//! `/v1/settings/application` on both backends: a document read with GET can be sent back as it is. On
//! PostgreSQL, several instances on one database change the settings one at a time (the store's settings
//! lock), so the stored document and the `application` callback stay in step.

use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use wabridge_gateway::Gateway;
use wabridge_gateway::store::SETTINGS_LOCK_CLASS;

use crate::support::backend::{Backend, TestDb, each_backend, run};
use crate::support::sending::{Pair, config, sandbox_config};

each_backend!(
    a_settings_document_read_can_be_sent_back,
    settings_added_since_a_document_was_stored_can_be_changed
);

async fn call(pair: &Pair, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    call_at(&pair.http, &pair.url, &pair.key, method, body).await
}

/// `{method} {base}/v1/settings/application` with `key` → (status, body).
async fn call_at(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    method: reqwest::Method,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{base}/v1/settings/application");
    let mut req = http.request(method, url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// With a `webhooks.url` set, GET shows its generated `webhooks.secret`: the document sent back as it is (the
/// On-Premises way to change one setting) is taken, and the secret stays; another secret is refused.
async fn a_settings_document_read_can_be_sent_back(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let url = json!({"webhooks": {"url": "http://127.0.0.1:9/hook"}});
    assert_eq!(call(&pair, reqwest::Method::PATCH, Some(url)).await.0, 200);
    let (code, read) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(code, 200, "{read}");
    let mut doc = read["settings"]["application"].clone();
    let secret = doc["webhooks"]["secret"].as_str().unwrap().to_owned();
    doc["callback_backoff_delay_ms"] = json!(6000);
    let (code, r) = call(&pair, reqwest::Method::PATCH, Some(doc)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["callback_backoff_delay_ms"], 6000);
    assert_eq!(r["settings"]["application"]["webhooks"]["secret"], secret.as_str());
    let callback = pair.gateway.state().store.callback("application").await.unwrap().unwrap();
    assert_eq!(callback.secret, secret);
    // The secret is the gateway's to make.
    let other = json!({"webhooks": {"secret": "chosen-by-me"}});
    let (code, r) = call(&pair, reqwest::Method::PATCH, Some(other)).await;
    assert_eq!((code, &r["errors"][0]["code"]), (400, &json!(1009)), "{r}");
    let (_, now) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(now["settings"]["application"]["webhooks"]["secret"], secret.as_str());
    pair.stop().await;
}

/// A document stored by an earlier version, without the settings added since: they read as their defaults
/// and can be changed (the On-Premises example document, sent whole, is taken).
async fn settings_added_since_a_document_was_stored_can_be_changed(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let mut older = wabridge_gateway::settings::defaults(true);
    let map = older.as_object_mut().unwrap();
    map.remove("db_garbagecollector_enable");
    map.remove("garbagecollector_enable");
    map.insert("heartbeat_interval".to_owned(), json!(7));
    pair.gateway.state().store.set_api_setting("application", &older.to_string()).await.unwrap();
    let (code, read) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(code, 200, "{read}");
    assert_eq!(read["settings"]["application"]["db_garbagecollector_enable"], true, "{read}");
    assert_eq!(read["settings"]["application"]["heartbeat_interval"], 7, "what was stored stays: {read}");
    let patch = json!({"sent_status": false, "db_garbagecollector_enable": false});
    let (code, r) = call(&pair, reqwest::Method::PATCH, Some(patch)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["db_garbagecollector_enable"], false, "{r}");
    assert_eq!(r["settings"]["application"]["heartbeat_interval"], 7, "{r}");
    pair.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// Several instances on one PostgreSQL database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_url_changes_through_two_instances_stay_in_step() {
    run(Backend::Postgres, url_changes_through_two_instances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_of_different_settings_through_two_instances_are_both_kept() {
    run(Backend::Postgres, different_settings_through_two_instances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waits_for_the_settings_lock_held_by_another_session() {
    run(Backend::Postgres, a_change_waits_for_another_session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_client_left_is_made_and_frees_the_lock() {
    run(Backend::Postgres, a_change_whose_client_left).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_lock_dropped_or_given_up_is_freed() {
    run(Backend::Postgres, a_lock_dropped_or_given_up).await;
}

/// Two gateways on the test's database (the first with the sandbox, admin login and API key of a [`Pair`]).
struct Two {
    first: Pair,
    second: Gateway,
}

impl Two {
    async fn start(db: &TestDb) -> Self {
        let first = Pair::start(config(db), sandbox_config(|_| {})).await;
        let second = crate::support::gateway::start((*first.gateway.state().config).clone()).await;
        Self { first, second }
    }

    /// The first instance's URL, or the second's.
    fn url(&self, second: bool) -> String {
        if second { self.second.url() } else { self.first.url.clone() }
    }

    async fn call(&self, second: bool, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
        call_at(&self.first.http, &self.url(second), &self.first.key, method, body).await
    }

    async fn patch(&self, second: bool, body: Value) -> (u16, Value) {
        self.call(second, reqwest::Method::PATCH, Some(body)).await
    }

    /// The stored settings, read through both instances (the same document), after checking that the
    /// `application` callback is in step with them: there iff `webhooks.url` is set, with that URL and the
    /// secret GET shows.
    async fn in_step(&self, round: usize) -> Value {
        let (code, read) = self.call(false, reqwest::Method::GET, None).await;
        assert_eq!(code, 200, "{read}");
        let (_, other) = self.call(true, reqwest::Method::GET, None).await;
        let doc = read["settings"]["application"].clone();
        assert_eq!(doc, other["settings"]["application"], "round {round}: both instances read one document");
        let url = doc["webhooks"]["url"].as_str().unwrap_or_default();
        let callback = self.first.gateway.state().store.callback("application").await.unwrap();
        if url.is_empty() {
            assert!(callback.is_none(), "round {round}: a callback without webhooks.url: {callback:?}");
            assert!(doc["webhooks"].get("secret").is_none(), "round {round}: {doc}");
        } else {
            let callback =
                callback.unwrap_or_else(|| panic!("round {round}: webhooks.url {url} has no callback"));
            assert_eq!(callback.url, url, "round {round}");
            let secret = doc["webhooks"]["secret"].as_str().unwrap_or_else(|| panic!("round {round}: {doc}"));
            assert_eq!(
                callback.secret, secret,
                "round {round}: the callback signs with another secret than GET shows"
            );
        }
        doc
    }

    async fn stop(self) {
        self.second.shutdown().await.unwrap();
        self.first.stop().await;
    }
}

/// Each round, from no URL: both instances set `webhooks.url` at once (each would make up a secret), or one
/// sets it while the other removes it. Whichever comes last wins, and the callback is that one's.
async fn url_changes_through_two_instances(db: TestDb) {
    let two = Two::start(&db).await;
    for round in 0..40 {
        let (code, r) = two.patch(round % 2 == 0, json!({"webhooks": {"url": ""}})).await;
        assert_eq!(code, 200, "{r}");
        let mine = format!("http://127.0.0.1:9/first/{round}");
        let theirs =
            if round % 4 == 3 { String::new() } else { format!("http://127.0.0.1:9/second/{round}") };
        let (a, b) = tokio::join!(
            two.patch(false, json!({"webhooks": {"url": mine}})),
            two.patch(true, json!({"webhooks": {"url": theirs}})),
        );
        assert_eq!((a.0, b.0), (200, 200), "round {round}: {a:?} {b:?}");
        let doc = two.in_step(round).await;
        let url = doc["webhooks"]["url"].as_str().unwrap();
        assert!(url == mine || url == theirs, "round {round}: {url}");
    }
    two.stop().await;
}

/// Each round, from the defaults: one instance sets `webhooks.url` while the other changes other settings;
/// neither change is lost.
async fn different_settings_through_two_instances(db: TestDb) {
    let two = Two::start(&db).await;
    for round in 0..30 {
        let (code, r) = two.call(round % 2 == 1, reqwest::Method::DELETE, None).await;
        assert_eq!(code, 200, "{r}");
        let url = format!("http://127.0.0.1:9/hook/{round}");
        let backoff = 3000 + 100 * round;
        let (a, b) = tokio::join!(
            two.patch(false, json!({"webhooks": {"url": url}})),
            two.patch(true, json!({"sent_status": false, "callback_backoff_delay_ms": backoff})),
        );
        assert_eq!((a.0, b.0), (200, 200), "round {round}: {a:?} {b:?}");
        let doc = two.in_step(round).await;
        assert_eq!(doc["webhooks"]["url"], url.as_str(), "round {round}: {doc}");
        assert_eq!(doc["sent_status"], false, "round {round}: {doc}");
        assert_eq!(doc["callback_backoff_delay_ms"], backoff, "round {round}: {doc}");
    }
    two.stop().await;
}

/// A session of the test's own on the test's schema (a pool of one connection).
pub(crate) async fn session(db: &TestDb) -> PgPool {
    let TestDb::Postgres { url, schema } = db else { panic!("PostgreSQL only") };
    let options = PgConnectOptions::from_str(url).unwrap().options([("search_path", schema.as_str())]);
    PgPoolOptions::new().max_connections(1).connect_with(options).await.unwrap()
}

/// Takes (`lock`) or releases the settings lock on `session`, as another instance would.
async fn settings_lock(session: &PgPool, lock: bool) {
    let sql = if lock {
        "SELECT pg_advisory_lock($1, hashtext(current_schema()))::text"
    } else {
        "SELECT pg_advisory_unlock($1, hashtext(current_schema()))::text"
    };
    sqlx::query(sql).bind(SETTINGS_LOCK_CLASS).execute(session).await.unwrap();
}

/// Sessions waiting for the settings lock of `session`'s schema (`granted = false`), or holding it.
async fn lock_sessions(session: &PgPool, granted: bool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 \
         AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295) AND objsubid = 2 AND granted = $2",
    )
    .bind(i64::from(SETTINGS_LOCK_CLASS))
    .bind(granted)
    .fetch_one(session)
    .await
    .unwrap()
}

/// Polls `check` every 20 ms until it holds; panics with `what` after 20 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While another instance's session holds the settings lock, a PATCH waits for it (its session is seen
/// waiting), and is made once the lock is released.
async fn a_change_waits_for_another_session(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let other = session(&db).await;
    settings_lock(&other, true).await;
    let (http, base, key) = (pair.http.clone(), pair.url.clone(), pair.key.clone());
    let url = "http://127.0.0.1:9/after-the-lock";
    let patch = tokio::spawn(async move {
        call_at(&http, &base, &key, reqwest::Method::PATCH, Some(json!({"webhooks": {"url": url}}))).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while lock_sessions(&other, false).await == 0 {
        assert!(
            !patch.is_finished(),
            "the change was made while another session held the lock: {:?}",
            patch.await
        );
        assert!(tokio::time::Instant::now() < deadline, "no session waits for the settings lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!patch.is_finished());
    assert!(pair.gateway.state().store.callback("application").await.unwrap().is_none());
    settings_lock(&other, false).await;
    let (code, r) = patch.await.unwrap();
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["webhooks"]["url"], url);
    let callback = pair.gateway.state().store.callback("application").await.unwrap().unwrap();
    assert_eq!(callback.secret, r["settings"]["application"]["webhooks"]["secret"].as_str().unwrap());
    assert_eq!(lock_sessions(&other, true).await, 0, "the lock is released after the change");
    other.close().await;
    pair.stop().await;
}

/// A PATCH whose client gives up while it waits for the lock is still made, whole, once the lock is free,
/// and releases it after: the next change goes through.
async fn a_change_whose_client_left(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let other = session(&db).await;
    settings_lock(&other, true).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let url = "http://127.0.0.1:9/client-left";
    let gone = impatient
        .patch(format!("{}/v1/settings/application", pair.url))
        .bearer_auth(&pair.key)
        .json(&json!({"webhooks": {"url": url}}))
        .send()
        .await;
    assert!(gone.as_ref().is_err_and(reqwest::Error::is_timeout), "{gone:?}");
    until("the change to wait for the settings lock", || async { lock_sessions(&other, false).await == 1 })
        .await;
    settings_lock(&other, false).await;
    until("the change of the client that left to be made", || async {
        let (_, r) = call(&pair, reqwest::Method::GET, None).await;
        r["settings"]["application"]["webhooks"]["url"] == url
    })
    .await;
    let callback = pair.gateway.state().store.callback("application").await.unwrap().unwrap();
    let (_, r) = call(&pair, reqwest::Method::GET, None).await;
    assert_eq!(callback.secret, r["settings"]["application"]["webhooks"]["secret"].as_str().unwrap());
    let next = tokio::time::timeout(
        Duration::from_secs(20),
        call(&pair, reqwest::Method::PATCH, Some(json!({"webhooks": {"url": ""}}))),
    )
    .await
    .expect("the lock was left held");
    assert_eq!(next.0, 200, "{next:?}");
    assert!(pair.gateway.state().store.callback("application").await.unwrap().is_none());
    assert_eq!(lock_sessions(&other, true).await, 0);
    other.close().await;
    pair.stop().await;
}

/// The store's lock: dropped without being released (an error, a cancelled task) it is freed with its
/// session; a wait given up (a request dropped while waiting) leaves no lock behind once granted.
async fn a_lock_dropped_or_given_up(db: TestDb) {
    let (first, second) = (db.open().await, db.open().await);
    let held = first.lock_settings().await.unwrap();
    let given_up = tokio::time::timeout(Duration::from_millis(300), second.lock_settings()).await;
    assert!(given_up.is_err(), "the lock was granted twice");
    drop(held);
    let again = tokio::time::timeout(Duration::from_secs(20), second.lock_settings())
        .await
        .expect("a dropped lock is freed")
        .unwrap();
    let watch = session(&db).await;
    assert_eq!(lock_sessions(&watch, true).await, 1);
    again.release().await;
    assert_eq!(lock_sessions(&watch, true).await, 0, "released");
    let third = tokio::time::timeout(Duration::from_secs(20), first.lock_settings()).await.unwrap().unwrap();
    third.release().await;
    until("no session to hold or wait for the lock", || async {
        lock_sessions(&watch, true).await + lock_sessions(&watch, false).await == 0
    })
    .await;
    watch.close().await;
    first.close().await;
    second.close().await;
}
