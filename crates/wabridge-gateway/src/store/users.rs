//! Credentials in the store: the admin user's password hash, login sessions and API keys. Secrets are never
//! stored: sessions and keys by the SHA-256 (hex) of the secret, passwords as argon2 PHC strings.

use std::time::SystemTime;

use sqlx::Row;

use super::{PRUNE_CHUNK, Store, StoreError, now_millis, to_millis};

/// A stored credential found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// Comma-separated scopes (`send,events,admin`); sessions hold every scope.
    pub scopes: String,
    /// Unix ms after which it is refused; `None`: never.
    pub expires_at: Option<i64>,
}

/// An API key as listed (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// The argon2 hash of user `name`'s password, if the user exists.
    pub async fn admin_password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(match self {
            Self::Sqlite(s) => {
                sqlx::query_scalar("SELECT password_hash FROM admin_users WHERE name = ?1")
                    .bind(name)
                    .fetch_optional(&s.writer)
                    .await?
            }
            Self::Postgres(s) => {
                sqlx::query_scalar("SELECT password_hash FROM admin_users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&s.pool)
                    .await?
            }
        })
    }

    /// Creates user `name` with `hash`, or replaces its hash.
    pub async fn set_admin_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let now = now_millis();
        match self {
            Self::Sqlite(s) => {
                sqlx::query(
                    "INSERT INTO admin_users (name, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
                     ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, updated_at = ?3",
                )
                .bind(name)
                .bind(hash)
                .bind(now)
                .execute(&s.writer)
                .await?;
            }
            Self::Postgres(s) => {
                sqlx::query(
                    "INSERT INTO admin_users (name, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, updated_at = $3",
                )
                .bind(name)
                .bind(hash)
                .bind(now)
                .execute(&s.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Creates user `name` with `hash` unless it exists; whether it was created (two instances starting at
    /// once on a new database: only one generated password is stored, and only that one is printed).
    pub async fn insert_admin_password_hash(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let done = match self {
            Self::Sqlite(s) => sqlx::query(
                "INSERT INTO admin_users (name, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(hash)
            .bind(now)
            .execute(&s.writer)
            .await?
            .rows_affected(),
            Self::Postgres(s) => sqlx::query(
                "INSERT INTO admin_users (name, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(hash)
            .bind(now)
            .execute(&s.pool)
            .await?
            .rows_affected(),
        };
        Ok(done == 1)
    }

    /// Stores a login session of `user` by the token's hash.
    pub async fn insert_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        match self {
            Self::Sqlite(s) => {
                sqlx::query(
                    "INSERT INTO api_sessions (token_sha256, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(token_sha256)
                .bind(user)
                .bind(now)
                .bind(expires_at)
                .execute(&s.writer)
                .await?;
            }
            Self::Postgres(s) => {
                sqlx::query(
                    "INSERT INTO api_sessions (token_sha256, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(token_sha256)
                .bind(user)
                .bind(now)
                .bind(expires_at)
                .execute(&s.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Revokes a session; returns whether a live one was found.
    pub async fn revoke_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        let done = match self {
            Self::Sqlite(s) => sqlx::query(
                "UPDATE api_sessions SET revoked_at = ?1 WHERE token_sha256 = ?2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(token_sha256)
            .execute(&s.writer)
            .await?
            .rows_affected(),
            Self::Postgres(s) => sqlx::query(
                "UPDATE api_sessions SET revoked_at = $1 WHERE token_sha256 = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(token_sha256)
            .execute(&s.pool)
            .await?
            .rows_affected(),
        };
        Ok(done == 1)
    }

    /// Revokes the live login sessions of `user` (`of_user`), or of every user but `user` (`!of_user`);
    /// how many.
    pub async fn revoke_sessions(&self, user: &str, of_user: bool) -> Result<u64, StoreError> {
        let now = now_millis();
        let test = if of_user { "=" } else { "<>" };
        Ok(match self {
            Self::Sqlite(s) => sqlx::query(&format!(
                "UPDATE api_sessions SET revoked_at = ?1 WHERE revoked_at IS NULL AND user_name {test} ?2"
            ))
            .bind(now)
            .bind(user)
            .execute(&s.writer)
            .await?
            .rows_affected(),
            Self::Postgres(s) => sqlx::query(&format!(
                "UPDATE api_sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND user_name {test} $2"
            ))
            .bind(now)
            .bind(user)
            .execute(&s.pool)
            .await?
            .rows_affected(),
        })
    }

    /// Deletes the login sessions that expired or were revoked before `older_than`; how many. Such a token is
    /// refused either way (a deleted session is an unknown token): the rows only grew the table, by one per
    /// login.
    ///
    /// The table is walked by its primary key a chunk at a time (no index on the times; a pass reads the table
    /// once, each statement at most a chunk), and the delete checks each row's times again.
    pub async fn prune_sessions(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let cutoff = to_millis(older_than);
        let chunk_len = usize::try_from(PRUNE_CHUNK).unwrap_or(usize::MAX);
        let mut deleted = 0;
        // Token hashes are 64 hex digits: the empty string sorts before every one of them.
        let mut after = String::new();
        loop {
            let chunk: Vec<(String, i64, Option<i64>)> = on_backend!(self, |_w, r, sql, _pg| {
                sqlx::query_as(&sql(
                    "SELECT token_sha256, expires_at, revoked_at FROM api_sessions WHERE token_sha256 > $1 \
                     ORDER BY token_sha256 LIMIT $2",
                ))
                .bind(&after)
                .bind(PRUNE_CHUNK)
                .fetch_all(r)
                .await?
            });
            let mut ended = chunk.iter().filter(|(_, expires_at, revoked_at)| {
                *expires_at < cutoff || revoked_at.is_some_and(|at| at < cutoff)
            });
            if let Some(first) = ended.next() {
                let last = ended.next_back().unwrap_or(first);
                deleted += on_backend!(self, |w, _r, sql, _pg| {
                    sqlx::query(&sql(
                        "DELETE FROM api_sessions WHERE token_sha256 >= $1 AND token_sha256 <= $2 \
                         AND (expires_at < $3 OR revoked_at < $3)",
                    ))
                    .bind(&first.0)
                    .bind(&last.0)
                    .bind(cutoff)
                    .execute(w)
                    .await?
                    .rows_affected()
                });
            }
            match chunk.last() {
                Some((token, _, _)) if chunk.len() >= chunk_len => after.clone_from(token),
                _ => return Ok(deleted),
            }
        }
    }

    /// The live (not revoked) session or API key whose secret hashes to `sha256`.
    pub async fn credential_by_hash(&self, sha256: &str) -> Result<Option<StoredCredential>, StoreError> {
        let (session, key) = match self {
            Self::Sqlite(s) => (
                sqlx::query_scalar::<_, i64>(
                    "SELECT expires_at FROM api_sessions WHERE token_sha256 = ?1 AND revoked_at IS NULL",
                )
                .bind(sha256)
                .fetch_optional(&s.readers)
                .await?,
                sqlx::query_scalar::<_, String>(
                    "SELECT scopes FROM api_keys WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
                )
                .bind(sha256)
                .fetch_optional(&s.readers)
                .await?,
            ),
            Self::Postgres(s) => (
                sqlx::query_scalar::<_, i64>(
                    "SELECT expires_at FROM api_sessions WHERE token_sha256 = $1 AND revoked_at IS NULL",
                )
                .bind(sha256)
                .fetch_optional(&s.pool)
                .await?,
                sqlx::query_scalar::<_, String>(
                    "SELECT scopes FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL",
                )
                .bind(sha256)
                .fetch_optional(&s.pool)
                .await?,
            ),
        };
        Ok(match (session, key) {
            (Some(expires_at), _) => {
                Some(StoredCredential { scopes: "send,events,admin".into(), expires_at: Some(expires_at) })
            }
            (None, Some(scopes)) => Some(StoredCredential { scopes, expires_at: None }),
            (None, None) => None,
        })
    }

    /// Stores a new API key by its secret's hash.
    pub async fn insert_api_key(
        &self,
        id: &str,
        name: &str,
        secret_sha256: &str,
        scopes: &str,
    ) -> Result<i64, StoreError> {
        let now = now_millis();
        match self {
            Self::Sqlite(s) => {
                sqlx::query(
                    "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .bind(id)
                .bind(name)
                .bind(secret_sha256)
                .bind(scopes)
                .bind(now)
                .execute(&s.writer)
                .await?;
            }
            Self::Postgres(s) => {
                sqlx::query(
                    "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(name)
                .bind(secret_sha256)
                .bind(scopes)
                .bind(now)
                .execute(&s.pool)
                .await?;
            }
        }
        Ok(now)
    }

    /// Every API key, oldest first, without secrets.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = "SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id";
        Ok(match self {
            Self::Sqlite(s) => sqlx::query(sql)
                .fetch_all(&s.readers)
                .await?
                .iter()
                .map(|r| {
                    Ok(ApiKeyRecord {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        scopes: r.try_get("scopes")?,
                        created_at: r.try_get("created_at")?,
                        revoked_at: r.try_get("revoked_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Self::Postgres(s) => sqlx::query(sql)
                .fetch_all(&s.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(ApiKeyRecord {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        scopes: r.try_get("scopes")?,
                        created_at: r.try_get("created_at")?,
                        revoked_at: r.try_get("revoked_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        })
    }

    /// Revokes API key `id`; returns the hash of its secret when a live key was revoked.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        let now = now_millis();
        Ok(match self {
            Self::Sqlite(s) => {
                sqlx::query_scalar(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL RETURNING secret_sha256",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&s.writer)
                .await?
            }
            Self::Postgres(s) => {
                sqlx::query_scalar(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING secret_sha256",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&s.pool)
                .await?
            }
        })
    }
}
