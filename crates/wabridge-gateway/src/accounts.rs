//! Users and API keys: the admin password (argon2), login tokens with `expires_after` (On-Premises
//! compatible) and API keys with scopes for applications (stored as SHA-256: they are long random strings,
//! so a fast hash is enough and lookups stay cheap).
//!
//! [`Accounts::principal`] turns a bearer secret into a [`Principal`]; the authenticator of `auth.rs` falls
//! back to it for every secret that is not one of the configured `api.tokens`. Recently seen credentials
//! are cached for [`CACHE_TTL`] so a busy application does not cost a store read per request; a revocation
//! on this instance takes effect at once, on other instances within the cache's lifetime.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::auth::{Principal, Scope};
use crate::config::AdminConfig;
use crate::store::{Store, StoreError, StoredCredential, now_millis};

/// How long a credential found in the store is trusted without asking again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Users, sessions and API keys.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    admin: AdminConfig,
    cache: Arc<RwLock<HashMap<String, (StoredCredential, Instant)>>>,
    /// Password checks in progress at most (each argon2 run takes ~19 MiB and tens of milliseconds of CPU):
    /// a flood of logins waits here instead of taking the blocking pool's threads and the memory.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Logins waiting for a password check slot; past [`MAX_WAITING_LOGINS`] new ones are turned away.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// Failed logins per client address (`None`: the address is unknown): a budget that refills at
    /// [`FAILED_LOGINS_PER_SEC`] per second up to [`FAILED_LOGIN_BURST`]; while a client's is empty, its logins
    /// are turned away before any check. Clients whose budget is full again are forgotten.
    failures: Arc<FailureBudgets>,
}

/// Client addresses whose failed logins are remembered at most (beyond, those whose budget is full again are
/// forgotten).
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The failed-login budgets of client addresses (see [`Accounts`]).
#[derive(Debug, Default)]
struct FailureBudgets(std::sync::Mutex<HashMap<Option<std::net::IpAddr>, (f64, Instant)>>);

impl FailureBudgets {
    /// Whether `client` may still afford a failed login now (its budget refills with time).
    fn left(&self, client: Option<std::net::IpAddr>) -> bool {
        let budgets = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        budgets.get(&client).is_none_or(|&(left, at)| refilled(left, at) >= 1.0)
    }

    /// A failed login of `client`.
    fn spend(&self, client: Option<std::net::IpAddr>) {
        let mut budgets = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if budgets.len() >= MAX_TRACKED_CLIENTS {
            // Clients whose budget is full again are like new ones.
            budgets.retain(|_, &mut (left, at)| refilled(left, at) < FAILED_LOGIN_BURST);
        }
        let left = budgets.get(&client).map_or(FAILED_LOGIN_BURST, |&(left, at)| refilled(left, at));
        budgets.insert(client, ((left - 1.0).max(0.0), Instant::now()));
    }
}

/// A failure budget `left` at `at`, refilled since.
fn refilled(left: f64, at: Instant) -> f64 {
    (left + at.elapsed().as_secs_f64() * FAILED_LOGINS_PER_SEC).min(FAILED_LOGIN_BURST)
}

/// Logins that may wait for a password check at once (beyond those being checked).
const MAX_WAITING_LOGINS: usize = 16;
/// Failed logins accepted in a row before the budget applies.
const FAILED_LOGIN_BURST: f64 = 20.0;
/// Failed logins per second allowed to one client address after the burst: guessing a password through
/// `/v1/users/login` is slowed to this rate per address (behind a proxy, every client has the proxy's).
const FAILED_LOGINS_PER_SEC: f64 = 1.0;

/// Why a login did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong user or password.
    #[error("wrong user name or password")]
    Refused,
    /// Too many logins at once, or too many failed ones lately.
    #[error("too many login attempts; try again in a few seconds")]
    Busy,
    /// The `new_password` of the request cannot be used.
    #[error("new_password: {0}")]
    NewPassword(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Password checks at once: as many as the machine has cores.
fn password_check_slots() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("admin", &self.admin.user).finish_non_exhaustive()
    }
}

/// A login token, shown once.
#[derive(Debug)]
pub struct Login {
    /// The bearer token.
    pub token: SecretString,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// A new API key, shown once.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: String,
    pub key: SecretString,
    pub created_at: i64,
}

impl Accounts {
    /// Makes sure the admin user exists: sets the configured password, or on the very first start generates
    /// one, which is returned (to be printed once) and never stored in clear.
    pub async fn start(store: Store, admin: AdminConfig) -> Result<(Self, Option<SecretString>), StoreError> {
        let accounts = Self {
            store,
            admin,
            cache: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(password_check_slots())),
            waiting: Arc::default(),
            failures: Arc::default(),
        };
        let user = accounts.admin.user.clone();
        // Login tokens of an earlier `admin.user` are no way in either.
        let others = accounts.store.revoke_sessions(&user, false).await?;
        if others > 0 {
            tracing::info!(sessions = others, "login sessions of an earlier admin user revoked");
        }
        let generated = match &accounts.admin.password {
            Some(password) => {
                let stored = accounts.store.admin_password_hash(&user).await?;
                let secret = password.expose_secret().to_owned();
                let unchanged = match stored.clone() {
                    Some(hash) => tokio::task::spawn_blocking(move || verify_password(&secret, &hash))
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                if !unchanged {
                    let hash = hash_password(password.expose_secret())?;
                    accounts.store.set_admin_password_hash(&user, &hash).await?;
                    if stored.is_some() {
                        // A changed password (a leaked one rotated, say) ends the sessions opened with the old.
                        let revoked = accounts.store.revoke_sessions(&user, true).await?;
                        tracing::info!(
                            sessions = revoked,
                            "admin password changed; its login sessions revoked"
                        );
                    }
                }
                None
            }
            None if accounts.store.admin_password_hash(&accounts.admin.user).await?.is_none() => {
                let password = random_secret(18);
                let hash = hash_password(&password)?;
                // Another instance starting at the same moment may have stored its own first: then that
                // one is the password (printed by that instance), and this one is forgotten.
                accounts
                    .store
                    .insert_admin_password_hash(&accounts.admin.user, &hash)
                    .await?
                    .then(|| SecretString::from(password))
            }
            None => None,
        };
        Ok((accounts, generated))
    }

    /// Checks `user`/`password` and opens a session. With `new_password` (the On-Premises API's first
    /// login), the password is changed first and the user's other sessions end; refused when the password
    /// comes from the configuration (`admin.password`, which applies again at every start).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        new_password: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Login, LoginError> {
        if !self.failures.left(client) {
            return Err(LoginError::Busy);
        }
        // Only the configured admin logs in: a row left by an earlier `admin.user` is not a way in.
        let hash = if user == self.admin.user { self.store.admin_password_hash(user).await? } else { None };
        // Off the async workers, a bounded number at once, and a bounded number waiting. For a user that
        // does not exist, the same slow work as a real check, so timing does not tell which users exist.
        let ok = {
            let waiting = WaitingLogin::enter(&self.waiting).ok_or(LoginError::Busy)?;
            let Ok(_slot) = self.password_checks.acquire().await else { return Err(LoginError::Busy) };
            drop(waiting);
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || match hash {
                Some(hash) => verify_password(&password, &hash),
                None => {
                    let _ = hash_password(&password);
                    false
                }
            })
            .await
            .unwrap_or(false)
        };
        if !ok {
            self.failures.spend(client);
            return Err(LoginError::Refused);
        }
        if let Some(new_password) = new_password {
            if self.admin.password.is_some() {
                return Err(LoginError::NewPassword(
                    "the admin password is set in the configuration (admin.password); change it there",
                ));
            }
            check_password_policy(new_password).map_err(LoginError::NewPassword)?;
            let new_password = new_password.to_owned();
            let hash = tokio::task::spawn_blocking(move || hash_password(&new_password))
                .await
                .map_err(|_| StoreError::Inconsistent("password hash"))??;
            self.store.set_admin_password_hash(user, &hash).await?;
            let revoked = self.store.revoke_sessions(user, true).await?;
            // At once on this instance, as a revocation is: the cache does not say whose session an entry is,
            // so it is emptied (it fills again with one store read per live credential).
            self.forget_all();
            tracing::info!(sessions = revoked, "admin password changed at login; its other sessions revoked");
        }
        let token = random_secret(32);
        let ttl = i64::try_from(self.admin.token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at = now_millis().saturating_add(ttl);
        self.store.insert_session(&sha256_hex(&token), user, expires_at).await?;
        Ok(Login { token: SecretString::from(token), expires_at })
    }

    /// Revokes the session of `token`; false when it was not a live session.
    pub async fn logout(&self, token: &SecretString) -> Result<bool, StoreError> {
        let hash = sha256_hex(token.expose_secret());
        self.forget(&hash);
        self.store.revoke_session(&hash).await
    }

    /// Creates an API key with `scopes`.
    pub async fn create_key(&self, name: &str, scopes: &[Scope]) -> Result<NewApiKey, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let key = format!("wbk_{}", random_secret(32));
        let created_at =
            self.store.insert_api_key(&id, name, &sha256_hex(&key), &scopes_text(scopes)).await?;
        Ok(NewApiKey { id, key: SecretString::from(key), created_at })
    }

    /// Revokes API key `id`; false when there was no live key with that id.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        match self.store.revoke_api_key(id).await? {
            Some(hash) => {
                self.forget(&hash);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The principal behind a bearer secret (a session token or an API key), if it is a live one.
    pub async fn principal(&self, secret: &SecretString) -> Result<Option<Principal>, StoreError> {
        let hash = sha256_hex(secret.expose_secret());
        let cached = self.cache.read().ok().and_then(|c| {
            c.get(&hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(cred, _)| cred.clone())
        });
        let credential = match cached {
            Some(c) => c,
            None => {
                let Some(found) = self.store.credential_by_hash(&hash).await? else { return Ok(None) };
                if let Ok(mut cache) = self.cache.write() {
                    if cache.len() > 100_000 {
                        cache.clear();
                    }
                    cache.insert(hash, (found.clone(), Instant::now()));
                }
                found
            }
        };
        if credential.expires_at.is_some_and(|at| at <= now_millis()) {
            return Ok(None);
        }
        Ok(Some(Principal { scopes: parse_scopes(&credential.scopes).unwrap_or_default() }))
    }

    fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    fn forget(&self, hash: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(hash);
        }
    }
}

/// `send,events,admin` from scopes.
#[must_use]
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| scope_name(*s)).collect::<Vec<_>>().join(",")
}

/// The API name of a scope.
#[must_use]
pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Send => "send",
        Scope::Events => "events",
        Scope::Admin => "admin",
    }
}

/// Scopes from their names (comma-separated); `Err` names an unknown one.
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "send" => Ok(Scope::Send),
            "events" => Ok(Scope::Events),
            "admin" => Ok(Scope::Admin),
            other => Err(other.to_owned()),
        })
        .collect()
}

/// SHA-256 of `secret`, hex.
#[must_use]
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `bytes` random bytes as URL-safe base64 without padding.
fn random_secret(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A place in the queue of logins waiting for a password check, given back when dropped.
struct WaitingLogin<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> WaitingLogin<'a> {
    fn enter(waiting: &'a std::sync::atomic::AtomicUsize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_WAITING_LOGINS {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(waiting))
    }
}

impl Drop for WaitingLogin<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The On-Premises API's password rule: 8 to 64 characters, with at least one digit, one uppercase letter,
/// one lowercase letter and one special character.
fn check_password_policy(password: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    if !(8..=64).contains(&len) {
        return Err("a password has 8 to 64 characters");
    }
    if !(has(char::is_ascii_digit)
        && has(|c| c.is_uppercase())
        && has(|c| c.is_lowercase())
        && has(|c| !c.is_alphanumeric() && !c.is_whitespace()))
    {
        return Err(
            "a password needs a digit, an uppercase letter, a lowercase letter and a special character",
        );
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| StoreError::Inconsistent("password salt"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| StoreError::Inconsistent("password hash"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Unix milliseconds as the On-Premises API wrote times: `2018-03-01 15:29:26+00:00`.
#[must_use]
pub fn onprem_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
#[must_use]
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_onprem() {
        assert_eq!(onprem_time(1_519_918_166_000), "2018-03-01 15:29:26+00:00");
        assert_eq!(days_from_civil(2018, 3, 1), 17_591);
        assert_eq!(civil_from_days(17_591), (2018, 3, 1));
    }

    #[test]
    fn failed_logins_are_budgeted_per_client() {
        let budgets = FailureBudgets::default();
        let (a, b) =
            (Some(std::net::IpAddr::from([10, 0, 0, 1])), Some(std::net::IpAddr::from([10, 0, 0, 2])));
        for _ in 0..20 {
            assert!(budgets.left(a));
            budgets.spend(a);
        }
        assert!(!budgets.left(a), "20 failures in a row use up the burst");
        assert!(budgets.left(b) && budgets.left(None), "another client is not held back");
    }

    #[test]
    fn the_onprem_password_rule() {
        assert!(check_password_policy("Secret-42").is_ok());
        assert!(check_password_policy("Se-4").is_err(), "too short");
        assert!(check_password_policy(&format!("Aa1-{}", "x".repeat(61))).is_err(), "too long");
        assert!(check_password_policy("secret-42").is_err(), "no uppercase");
        assert!(check_password_policy("SECRET-42").is_err(), "no lowercase");
        assert!(check_password_policy("Secret-xy").is_err(), "no digit");
        assert!(check_password_policy("Secret42x").is_err(), "no special character");
    }

    #[test]
    fn passwords_and_scopes() {
        let h = hash_password("s3cret!").unwrap_or_default();
        assert!(verify_password("s3cret!", &h) && !verify_password("other", &h));
        assert_eq!(parse_scopes("send, events"), Ok(vec![Scope::Send, Scope::Events]));
        assert!(parse_scopes("send,root").is_err());
    }
}
