//! Login, logout, API keys with scopes, and which routes need a credential — on both backends.

use serde_json::{Value, json};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{ADMIN_PASSWORD, Pair, config, sandbox_config};

each_backend!(
    login_keys_scopes_and_revocation,
    a_renamed_admin_logs_in_under_the_new_name_only,
    the_first_login_changes_a_generated_password,
    a_nul_character_in_a_key_name_or_id_is_refused_not_an_internal_error
);

async fn status(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn login_keys_scopes_and_revocation(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let (url, http) = (&pair.url, &pair.http);

    // Login: On-Premises shape, 7 days, format "YYYY-MM-DD HH:MM:SS+00:00"; a wrong password is 1005.
    let (code, body) =
        status(http.post(format!("{url}/v1/users/login")).basic_auth("admin", Some(ADMIN_PASSWORD))).await;
    assert_eq!(code, 200, "{body}");
    let expires = body["users"][0]["expires_after"].as_str().unwrap();
    assert_eq!(expires.len(), 25, "{expires}");
    assert!(expires.ends_with("+00:00") && expires.as_bytes()[10] == b' ');
    assert_eq!(body["meta"]["api_status"], "stable");
    let token = body["users"][0]["token"].as_str().unwrap().to_owned();
    let (code, body) =
        status(http.post(format!("{url}/v1/users/login")).basic_auth("admin", Some("wrong"))).await;
    assert_eq!(code, 401);
    assert_eq!(body["errors"][0]["code"], 1005);
    assert_eq!(body["errors"][0]["title"], "Access denied");

    // Every /v1 route but /v1/health needs a credential.
    assert_eq!(status(http.get(format!("{url}/v1/health"))).await.0, 200);
    for (method, path) in
        [("POST", "/v1/messages"), ("GET", "/v1/messages/x"), ("GET", "/v1/keys"), ("GET", "/v1/events")]
    {
        let req = http.request(method.parse().unwrap(), format!("{url}{path}"));
        let (code, body) = status(req).await;
        assert_eq!(code, 401, "{method} {path}");
        assert_eq!(body["errors"][0]["code"], 1005);
    }

    // Keys: created by an admin, shown once, listed without the secret, scoped, revocable.
    let (code, body) = status(
        http.post(format!("{url}/v1/keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "shop", "scopes": ["send"]})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let send_key = body["keys"][0]["key"].as_str().unwrap().to_owned();
    let send_key_id = body["keys"][0]["id"].as_str().unwrap().to_owned();
    let (code, list) = status(http.get(format!("{url}/v1/keys")).bearer_auth(&token)).await;
    assert_eq!(code, 200);
    assert!(!list.to_string().contains(&send_key), "the secret is never listed");
    assert!(list["keys"].as_array().unwrap().iter().any(|k| k["id"] == send_key_id.as_str()));
    // A send-only key cannot manage keys nor read events.
    let (code, body) = status(http.get(format!("{url}/v1/keys")).bearer_auth(&send_key)).await;
    assert_eq!((code, body["errors"][0]["code"].clone()), (403, json!(1005)));
    assert_eq!(status(http.get(format!("{url}/v1/events")).bearer_auth(&send_key)).await.0, 403);
    // An events key reads events, also on the WebSocket route (query credential).
    assert_eq!(status(http.get(format!("{url}/v1/events")).bearer_auth(&pair.key)).await.0, 200);
    let ws = format!("{}/v1/events/ws?access_token={}", url.replacen("http", "ws", 1), pair.key);
    assert!(tokio_tungstenite::connect_async(ws).await.is_ok(), "the WebSocket accepts an API key");
    let bad_ws = format!("{}/v1/events/ws?access_token=nope", url.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(bad_ws).await.is_err());
    // A body that is not the key's JSON, or the wrong type: the On-Premises error shape, not axum's text.
    for bad in [json!({"scopes": "send"}), json!(["send"])] {
        let (code, body) = status(http.post(format!("{url}/v1/keys")).bearer_auth(&token).json(&bad)).await;
        assert_eq!((code, body["errors"][0]["code"].clone()), (400, json!(1009)), "{bad}: {body}");
    }
    // Unknown scope: a clear error.
    let (code, body) =
        status(http.post(format!("{url}/v1/keys")).bearer_auth(&token).json(&json!({"scopes": ["root"]})))
            .await;
    assert_eq!((code, body["errors"][0]["code"].clone()), (400, json!(1009)));
    // Revocation and logout take effect at once.
    assert_eq!(status(http.delete(format!("{url}/v1/keys/{send_key_id}")).bearer_auth(&token)).await.0, 200);
    assert_eq!(status(http.get(format!("{url}/v1/messages/x")).bearer_auth(&send_key)).await.0, 401);
    assert_eq!(status(http.delete(format!("{url}/v1/keys/{send_key_id}")).bearer_auth(&token)).await.0, 404);
    // Logout ends a login session: with an API key it is refused, and the key still works.
    let (code, body) =
        status(http.post(format!("{url}/v1/keys")).bearer_auth(&token).json(&json!({"scopes": ["send"]})))
            .await;
    assert_eq!(code, 201, "{body}");
    let key = body["keys"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(status(http.post(format!("{url}/v1/users/logout")).bearer_auth(&key)).await.0, 400);
    assert_eq!(status(http.get(format!("{url}/v1/messages/x")).bearer_auth(&key)).await.0, 404);
    let lowercase =
        http.post(format!("{url}/v1/users/logout")).header("authorization", format!("bearer {token}"));
    assert_eq!(status(lowercase).await.0, 200);
    assert_eq!(status(http.get(format!("{url}/v1/keys")).bearer_auth(&token)).await.0, 401);
    // Secrets are stored hashed: neither the key nor the token is in the database file / tables.
    let store = &pair.gateway.state().store;
    assert!(store.credential_by_hash(&send_key).await.unwrap().is_none());
    pair.stop().await;
}

/// `admin.user` renamed: the old name, with its password, no longer logs in.
async fn a_renamed_admin_logs_in_under_the_new_name_only(db: TestDb) {
    let login = |url: String, user: &'static str| async move {
        let http = reqwest::Client::new();
        let req = http.post(format!("{url}/v1/users/login")).basic_auth(user, Some(ADMIN_PASSWORD));
        status(req).await.0
    };
    let token = |url: String, user: &'static str, password: &'static str| async move {
        let http = reqwest::Client::new();
        let req = http.post(format!("{url}/v1/users/login")).basic_auth(user, Some(password));
        status(req).await.1["users"][0]["token"].as_str().unwrap().to_owned()
    };
    let keys = |url: String, token: String| async move {
        status(reqwest::Client::new().get(format!("{url}/v1/keys")).bearer_auth(token)).await.0
    };
    let gw = crate::support::gateway::start(config(&db)).await;
    assert_eq!(login(gw.url(), "admin").await, 200);
    let old_name = token(gw.url(), "admin", ADMIN_PASSWORD).await;
    gw.shutdown().await.unwrap();
    let mut renamed = config(&db);
    renamed.admin.user = "ops".to_owned();
    let gw = crate::support::gateway::start(renamed.clone()).await;
    assert_eq!(login(gw.url(), "ops").await, 200);
    assert_eq!(login(gw.url(), "admin").await, 401);
    // The old name's login token is no way in either.
    assert_eq!(keys(gw.url(), old_name).await, 401);
    // The same password at the next start keeps the sessions; a changed one ends them.
    let kept = token(gw.url(), "ops", ADMIN_PASSWORD).await;
    gw.shutdown().await.unwrap();
    let gw = crate::support::gateway::start(renamed.clone()).await;
    assert_eq!(keys(gw.url(), kept.clone()).await, 200);
    gw.shutdown().await.unwrap();
    renamed.admin.password = Some("a-new-password".to_owned().into());
    let gw = crate::support::gateway::start(renamed).await;
    assert_eq!(keys(gw.url(), kept).await, 401);
    assert!(token(gw.url(), "ops", "a-new-password").await.len() > 10);
    gw.shutdown().await.unwrap();
}

/// The On-Premises first login: `{"new_password"}` with the Basic credentials changes the password (checked
/// against the On-Premises rule) and ends the other sessions; with `admin.password` configured it is refused.
async fn the_first_login_changes_a_generated_password(db: TestDb) {
    use secrecy::ExposeSecret as _;
    let http = reqwest::Client::new();
    let mut cfg = config(&db);
    cfg.admin.password = None;
    let gw = crate::support::gateway::start(cfg).await;
    let url = gw.url();
    let generated = gw.take_generated_admin_password().expect("a password is generated on the first start");
    let generated = generated.expose_secret().to_owned();
    let login = |password: &str, body: Option<Value>| {
        let req = http.post(format!("{url}/v1/users/login")).basic_auth("admin", Some(password));
        status(match body {
            Some(b) => req.json(&b),
            None => req,
        })
    };
    let (code, before) = login(&generated, None).await;
    assert_eq!(code, 200, "{before}");
    let before = before["users"][0]["token"].as_str().unwrap().to_owned();
    let keys = |token: String| status(http.get(format!("{url}/v1/keys")).bearer_auth(token));
    // Used once, so that this instance knows it (a revocation must still end it at once).
    assert_eq!(keys(before.clone()).await.0, 200);
    // A password outside the rule: 1009, nothing changed.
    let (code, body) = login(&generated, Some(json!({"new_password": "short"}))).await;
    assert_eq!((code, body["errors"][0]["code"].clone()), (400, json!(1009)), "{body}");
    // Wrong current password: 401 even with a good new one.
    assert_eq!(login("wrong", Some(json!({"new_password": "Better-Pass-1"}))).await.0, 401);
    let (code, body) = login(&generated, Some(json!({"new_password": "Better-Pass-1"}))).await;
    assert_eq!(code, 200, "{body}");
    let after = body["users"][0]["token"].as_str().unwrap().to_owned();
    assert_eq!(login(&generated, None).await.0, 401, "the old password no longer works");
    assert_eq!(login("Better-Pass-1", None).await.0, 200);
    assert_eq!(keys(before).await.0, 401, "sessions opened before the change end");
    assert_eq!(keys(after).await.0, 200);
    gw.shutdown().await.unwrap();
    // With the password in the configuration, the configuration decides.
    let gw = crate::support::gateway::start(config(&db)).await;
    let req = http.post(format!("{}/v1/users/login", gw.url())).basic_auth("admin", Some(ADMIN_PASSWORD));
    let (code, body) = status(req.json(&json!({"new_password": "Better-Pass-2"}))).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["errors"][0]["details"].as_str().unwrap().contains("admin.password"), "{body}");
    gw.shutdown().await.unwrap();
}

/// PostgreSQL's text cannot hold a NUL character: a key name with one is invalid (1009) and an id with one is
/// no key's id (404), on both backends — never a 500 from the store.
async fn a_nul_character_in_a_key_name_or_id_is_refused_not_an_internal_error(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let (url, http, admin) = (&pair.url, &pair.http, &pair.key);
    let keys =
        || async { status(http.get(format!("{url}/v1/keys")).bearer_auth(admin)).await.1["keys"].clone() };
    let before = keys().await;
    assert!(before.is_array(), "{before}");
    let (code, body) =
        status(http.post(format!("{url}/v1/keys")).bearer_auth(admin).json(&json!({"name": "a\u{0}"}))).await;
    assert_eq!((code, body["errors"][0]["code"].as_i64()), (400, Some(1009)), "{body}");
    assert!(body["errors"][0]["details"].as_str().unwrap().starts_with("name:"), "{body}");
    assert_eq!(keys().await, before, "no key was made");
    for id in ["%00", "a%00b"] {
        let (code, body) = status(http.delete(format!("{url}/v1/keys/{id}")).bearer_auth(admin)).await;
        assert_eq!((code, body["errors"][0]["code"].as_i64()), (404, Some(1006)), "{id}: {body}");
    }
    pair.stop().await;
}
