//! Starting a real gateway on 127.0.0.1:0 for a test, on the test's own database.

use wabridge_gateway::Gateway;
use wabridge_gateway::config::Config;

use super::backend::TestDb;

/// The app secret the test gateways accept.
pub const APP_SECRET: &str = "test-app-secret";
/// The verify token of the test gateways.
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// A configuration for `db`, with an app secret and a verify token.
pub fn config(db: &TestDb) -> Config {
    let mut env = vec![
        ("WABRIDGE_META__APP_SECRETS".to_owned(), format!("[\"{APP_SECRET}\"]")),
        ("WABRIDGE_META__VERIFY_TOKEN".to_owned(), VERIFY_TOKEN.to_owned()),
        ("WABRIDGE_RETENTION__PRUNE_INTERVAL_SECS".to_owned(), "3600".to_owned()),
    ];
    match db {
        TestDb::Sqlite { dir } => {
            env.push(("WABRIDGE_DATA_DIR".to_owned(), dir.display().to_string()));
        }
        TestDb::Postgres { url, schema } => {
            env.push(("WABRIDGE_DATABASE__URL".to_owned(), url.clone()));
            env.push(("WABRIDGE_DATABASE__POSTGRES_SCHEMA".to_owned(), schema.clone()));
            // The media cache's directory, removed with the schema.
            env.push((
                "WABRIDGE_DATA_DIR".to_owned(),
                std::env::temp_dir().join(schema).display().to_string(),
            ));
            env.push(("WABRIDGE_DATABASE__MAX_CONNECTIONS".to_owned(), "8".to_owned()));
        }
    }
    Config::load(None, env).expect("test configuration")
}

/// Starts a gateway with `config` on a free port.
pub async fn start(config: Config) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(config, listener).await.unwrap()
}

/// Posts `body` to `{base_url}/webhook`, signed with [`APP_SECRET`] over its exact bytes.
pub async fn post_webhook(client: &reqwest::Client, base_url: &str, body: &str) -> reqwest::StatusCode {
    client
        .post(format!("{base_url}/webhook"))
        .header(
            wabridge_types::signature::SIGNATURE_HEADER,
            wabridge_types::signature::sign(APP_SECRET.as_bytes(), body.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}
