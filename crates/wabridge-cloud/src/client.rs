//! [`Client`] and its [`ClientBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::error::CloudError;
use crate::retry::RetryPolicy;
use crate::time::{Clock, Sleeper, SystemClock, TokioSleeper};
use crate::token::{AccessToken, AppSecret, AppSecretProvider, StaticToken, TokenProvider};

/// Meta's Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The Graph API version used unless [`ClientBuilder::api_version`] says otherwise. Meta keeps a version for
/// about two years (`cloud-api.md` §0); v23.0 is one every call of this crate has been checked against.
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// How long a media upload or download may take unless [`ClientBuilder::media_timeout`] says otherwise:
/// 5 minutes, time for a 100 MB document on a link of about 3 Mbit/s.
pub const DEFAULT_MEDIA_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a whole request may take unless [`ClientBuilder::request_timeout`] says otherwise: 30 s, counted
/// from before the request is sent. A server that may hold a request (wabridge's Cloud-compatible sends wait
/// for the scheduler) must answer well within it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default `User-Agent`: `wabridge-cloud/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("wabridge-cloud/", env!("CARGO_PKG_VERSION"));

/// An async client of the WhatsApp Cloud API. Cheap to clone: clones share one connection pool, token
/// provider and configuration.
///
/// Build one with [`Client::builder`]. Every call returns `Result<_, CloudError>`.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) version: String,
    pub(crate) tokens: Arc<dyn TokenProvider>,
    /// Whether asking the provider again can give a different token (false for a fixed token).
    pub(crate) refreshable: bool,
    /// Where the `appsecret_proof` of every Graph call comes from; `None`: no proof.
    pub(crate) app_secret: Option<Arc<dyn AppSecretProvider>>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) sleeper: Arc<dyn Sleeper>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The whole-request timeout of media uploads and downloads; `None` leaves them to the HTTP client's.
    pub(crate) media_timeout: Option<Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("base_url", &i.base.as_str())
            .field("api_version", &i.version)
            .field("token", &"[redacted]")
            .field("app_secret", &i.app_secret.as_ref().map(|_| "[redacted]"))
            .field("retry", &i.retry)
            .field("media_timeout", &i.media_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client.
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The base URL calls go to (without the version).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The Graph API version in every path.
    #[must_use]
    pub fn api_version(&self) -> &str {
        &self.inner.version
    }
}

/// Configures a [`Client`]. An access token or a token provider is required; everything else has a
/// default.
///
/// ```
/// use std::time::Duration;
/// use wabridge_cloud::{Client, RetryPolicy};
///
/// let client = Client::builder()
///     .access_token("EAAG…")
///     .app_secret("app-secret")
///     .request_timeout(Duration::from_secs(20))
///     .retry(RetryPolicy::default())
///     .build()
///     .expect("valid configuration");
/// assert!(!format!("{client:?}").contains("EAAG"));
/// ```
pub struct ClientBuilder {
    base_url: String,
    version: String,
    tokens: Option<(Arc<dyn TokenProvider>, bool)>,
    app_secret: Option<Arc<dyn AppSecretProvider>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    media_timeout: Option<Duration>,
    user_agent: String,
    retry: Option<RetryPolicy>,
    sleeper: Arc<dyn Sleeper>,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
    no_proxy: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: DEFAULT_API_VERSION.to_owned(),
            tokens: None,
            app_secret: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            media_timeout: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            retry: None,
            sleeper: Arc::new(TokioSleeper),
            clock: Arc::new(SystemClock),
            http: None,
            no_proxy: false,
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_version", &self.version)
            .field("token", &self.tokens.as_ref().map(|_| "[redacted]"))
            .field("app_secret", &self.app_secret.as_ref().map(|_| "[redacted]"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("media_timeout", &self.media_timeout)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The host calls go to; default [`DEFAULT_BASE_URL`]. Point it at the sandbox or a test server.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The Graph API version (`"v23.0"`); default [`DEFAULT_API_VERSION`].
    #[must_use]
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// A fixed access token (a system-user token, typically).
    #[must_use]
    pub fn access_token(mut self, token: impl Into<AccessToken>) -> Self {
        self.tokens = Some((Arc::new(StaticToken(token.into())), false));
        self
    }

    /// A provider asked for the token before each call, and asked to refresh it once when Meta refuses it
    /// (code 190 or HTTP 401).
    #[must_use]
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.tokens = Some((Arc::new(provider), true));
        self
    }

    /// The app secret: every Graph call then carries `appsecret_proof` (required when the app enables
    /// "Require App Secret", `cloud-api.md` §0).
    #[must_use]
    pub fn app_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_secret = Some(Arc::new(AppSecret::new(secret)));
        self
    }

    /// Like [`app_secret`](Self::app_secret), with the secret asked of `provider` before each Graph call
    /// (a secret that can be rotated without building a new client).
    #[must_use]
    pub fn app_secret_provider(mut self, provider: impl AppSecretProvider) -> Self {
        self.app_secret = Some(Arc::new(provider));
        self
    }

    /// How long to wait for a connection; default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a whole request may take; default [`DEFAULT_REQUEST_TIMEOUT`] (30 s). A timeout is a
    /// retryable error. Media uploads and downloads have their own, longer timeout
    /// ([`media_timeout`](Self::media_timeout)).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a whole media upload or download may take, its body included; default
    /// [`DEFAULT_MEDIA_TIMEOUT`] (5 min): a 100 MB document on a slow link needs more than the request
    /// timeout. With [`http_client`](Self::http_client), that client's timeout applies to media too unless
    /// this is set.
    #[must_use]
    pub fn media_timeout(mut self, timeout: Duration) -> Self {
        self.media_timeout = Some(timeout);
        self
    }

    /// The `User-Agent` header; default [`DEFAULT_USER_AGENT`].
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Retries retryable failures with this policy (off by default).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// What the retry policy waits with; default [`TokioSleeper`]. Tests pass a
    /// [`crate::time::ManualClock`].
    #[must_use]
    pub fn sleeper(mut self, sleeper: impl Sleeper) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The clock the retry policy's `max_elapsed` is measured on; default [`SystemClock`].
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Ignores the system's proxy settings (`HTTPS_PROXY`, …); by default they apply.
    #[must_use]
    pub fn no_proxy(mut self) -> Self {
        self.no_proxy = true;
        self
    }

    /// Uses this `reqwest::Client` (its own timeouts and user agent then apply instead of the builder's).
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`CloudError::Url`] when the base URL does not parse or is not http(s); [`CloudError::Token`] when
    /// no token or provider was given; [`CloudError::Http`] when the HTTP client cannot be built.
    pub fn build(self) -> Result<Client, CloudError> {
        let base = Url::parse(&self.base_url).map_err(|e| CloudError::Url(format!("base URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CloudError::Url("base URL must be http(s)".to_owned()));
        }
        if crate::request::check_segment(&self.version).is_err() {
            return Err(CloudError::Url(format!(
                "API version {:?} cannot be a URL path segment",
                self.version
            )));
        }
        let (tokens, refreshable) = self
            .tokens
            .ok_or_else(|| CloudError::Token("an access token or a token provider is required".into()))?;
        let (http, media_timeout) = match self.http {
            Some(http) => (http, self.media_timeout),
            None => {
                let mut http = reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .timeout(self.request_timeout)
                    .user_agent(self.user_agent);
                if self.no_proxy {
                    http = http.no_proxy();
                }
                (
                    http.build().map_err(CloudError::http)?,
                    Some(self.media_timeout.unwrap_or(DEFAULT_MEDIA_TIMEOUT)),
                )
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                version: self.version,
                tokens,
                refreshable,
                app_secret: self.app_secret,
                retry: self.retry,
                sleeper: self.sleeper,
                clock: self.clock,
                media_timeout,
            }),
        })
    }
}
