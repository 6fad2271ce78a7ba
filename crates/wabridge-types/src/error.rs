//! The Graph API error envelope, and what each error code means for a sender.
//!
//! Meta answers a failed call with `{"error":{message,type,code,error_subcode,error_data,fbtrace_id}}`
//! (`cloud-api.md` §2). [`GraphError`] is that object; [`ErrorClass`] says what kind of problem a code
//! is, and [`Classification`] what a sender should do about it: retry (and after how long), fail only this
//! message, or pause the number or the whole WABA because nothing it sends can succeed until someone acts.
//!
//! The classification is ours ([R]), built from `error-codes.json` (`retry_guidance`) and the design's rule
//! "errors by class, not by code": throughput and pair limits slow down or freeze; auth, account and
//! payment errors pause the sender and never fail the backlog; only errors about the message itself fail
//! the message. Codes Meta does not list get [`ErrorClass::Unknown`]; the HTTP status then decides.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The body Meta sends with a failed Graph call: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphError,
}

/// A Graph API error as Meta sends it. Unknown fields are kept in `extra`.
///
/// Parsing is lenient: only `code` is required (a number, a numeric string, or the `(#code)` that starts
/// `message`). A member of an unexpected type — `error_data` sent as a string, `error_subcode` as `"2494010"`
/// — does not fail the parse, which would lose the code and with it the retry decision: a numeric string
/// is read as its number, anything else is left out of its typed field and kept in `extra` under its own
/// name, so serializing gives it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphError {
    /// `"(#131056) (Business Account, Consumer Account) pair rate limit hit"`: the title is embedded.
    #[serde(default)]
    pub message: String,
    /// Usually `"OAuthException"`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `error.error_data`: Meta's explanation, which it says to key logic on together with the code. Parsed
/// as leniently as [`GraphError`]: a member of another type is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Reads the members of a JSON object one by one, moving each that does not read as its type into `extra`.
struct Members {
    fields: Map<String, Value>,
    extra: Map<String, Value>,
}

impl Members {
    fn new(fields: Map<String, Value>) -> Self {
        Self { fields, extra: Map::new() }
    }

    /// Takes `key` as read by `read`; `null` and absent are `None`; a value `read` refuses goes to `extra`.
    fn take<T>(&mut self, key: &str, read: impl FnOnce(&Value) -> Option<T>) -> Option<T> {
        let value = self.fields.remove(key)?;
        if value.is_null() {
            return None;
        }
        let read = read(&value);
        if read.is_none() {
            self.extra.insert(key.to_owned(), value);
        }
        read
    }

    /// What was not taken, odd values included.
    fn rest(mut self) -> Map<String, Value> {
        self.extra.append(&mut self.fields);
        self.extra
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The code in a message Meta formats as `"(#131056) title"`.
fn code_in_message(message: &str) -> Option<i64> {
    let rest = message.trim_start().strip_prefix("(#")?;
    rest.split_once(')')?.0.trim().parse().ok()
}

impl ErrorData {
    fn from_members(fields: Map<String, Value>) -> Self {
        let mut m = Members::new(fields);
        let messaging_product = m.take("messaging_product", text);
        let details = m.take("details", text);
        Self { messaging_product, details, extra: m.rest() }
    }
}

impl<'de> Deserialize<'de> for ErrorData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_members(Map::deserialize(d)?))
    }
}

impl GraphError {
    /// Reads an error object leniently (see the type's documentation); `None` without a usable code.
    fn from_members(fields: Map<String, Value>) -> Option<Self> {
        let mut m = Members::new(fields);
        let message = m.take("message", text).unwrap_or_default();
        let code = m.take("code", integer).or_else(|| code_in_message(&message))?;
        let error_data = m.take("error_data", |v| v.as_object().cloned().map(ErrorData::from_members));
        Some(Self {
            kind: m.take("type", text),
            code,
            error_subcode: m.take("error_subcode", integer),
            error_data,
            error_user_title: m.take("error_user_title", text),
            error_user_msg: m.take("error_user_msg", text),
            is_transient: m.take("is_transient", boolean),
            fbtrace_id: m.take("fbtrace_id", text),
            message,
            extra: m.rest(),
        })
    }
}

impl<'de> Deserialize<'de> for GraphError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let fields = Map::deserialize(d)?;
        Self::from_members(fields).ok_or_else(|| D::Error::custom("a Graph error needs a numeric `code`"))
    }
}

impl GraphError {
    /// Builds an error the way Meta formats it: `message` is `"(#code) title"`, `details` goes in
    /// `error_data`. Used by the sandbox and by tests.
    #[must_use]
    pub fn new(code: i64, details: impl Into<String>) -> Self {
        let title = code_info(code).map_or("Unknown error", |i| i.title);
        Self {
            message: format!("(#{code}) {title}"),
            kind: Some("OAuthException".to_owned()),
            code,
            error_subcode: None,
            error_data: Some(ErrorData {
                messaging_product: Some(crate::MESSAGING_PRODUCT.to_owned()),
                details: Some(details.into()),
                extra: Map::new(),
            }),
            error_user_title: None,
            error_user_msg: None,
            is_transient: None,
            fbtrace_id: None,
            extra: Map::new(),
        }
    }

    /// Sets the trace id (Meta sends one with every error).
    #[must_use]
    pub fn with_trace_id(mut self, id: impl Into<String>) -> Self {
        self.fbtrace_id = Some(id.into());
        self
    }

    /// Sets the subcode (for example 463, an expired token, with code 190).
    #[must_use]
    pub fn with_subcode(mut self, subcode: i64) -> Self {
        self.error_subcode = Some(subcode);
        self
    }

    /// Wraps the error in its `{"error": …}` envelope.
    #[must_use]
    pub fn into_envelope(self) -> GraphErrorEnvelope {
        GraphErrorEnvelope { error: self }
    }

    /// `error_data.details`, Meta's explanation, if any.
    #[must_use]
    pub fn details(&self) -> Option<&str> {
        self.error_data.as_ref().and_then(|d| d.details.as_deref())
    }

    /// The HTTP status Meta answers this code with (`cloud-api.md` §2).
    #[must_use]
    pub fn http_status(&self) -> u16 {
        http_status_for(self.code)
    }

    /// What kind of problem this is.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        self.classification().class
    }

    /// What a sender should do about this error.
    #[must_use]
    pub fn classification(&self) -> Classification {
        Classification::of(self.code).transient(self.is_transient)
    }

    /// Whether trying the same call again later can succeed: exactly [`Classification::retryable`]. Meta's
    /// `is_transient: true` makes an error that would fail the message retryable
    /// ([`Classification::transient`]), never one that pauses the number or the WABA (190, 368, …): retrying
    /// those in place only repeats the refusal.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.classification().retryable
    }

    /// The earliest sensible moment to try again, if a delay is known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.classification().delay
    }

    /// Whether this error stops the sender (number or WABA) rather than failing one message.
    #[must_use]
    pub fn pauses_sender(&self) -> Option<PauseScope> {
        self.classification().pause
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "Graph API error {}", self.code)?;
        } else {
            f.write_str(&self.message)?;
        }
        if let Some(details) = self.details() {
            write!(f, ": {details}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

/// What kind of problem an error code reports. Classes are ours ([R]); see [`Classification::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The token is invalid or expired (0, 190): nothing can be sent until it is replaced.
    Auth,
    /// The token lacks a permission (3, 10, 200–299, 131005).
    Permission,
    /// The account is locked, blocked for policy or not allowed to send (368, 131031, 131037).
    Account,
    /// Billing: the business cannot pay (131042, 131044).
    Payment,
    /// The number's throughput level was exceeded (130429): slow down.
    Throughput,
    /// Too many messages to one user (131056): wait before sending to that user again.
    PairLimit,
    /// The app's or the WABA's call quota (4, 80007).
    CallQuota,
    /// Quality-based limits on the number (131048 spam rate, 131064 messaging limit).
    QualityLimit,
    /// The number is in maintenance during a throughput upgrade (131057): pause briefly.
    Maintenance,
    /// The 24-hour customer-service window is closed (131047): only a template can reach the user.
    WindowClosed,
    /// The user cannot or will not receive this message (131026, 130472, 131049, 131050, 131030, 137000, …).
    Recipient,
    /// A template problem (132000–132016, 131063).
    Template,
    /// A flow problem (132068, 132069).
    Flow,
    /// Media could not be fetched or uploaded (131052, 131053).
    Media,
    /// Phone number registration (33, 131045, 133000–133016).
    Registration,
    /// Meta's side failed or is overloaded (1, 2, 131000, 131016): retry with backoff.
    TransientServer,
    /// The request itself is wrong (100, 131008, 131009, 131021, 131051, 131062, 135000).
    InvalidRequest,
    /// A code this crate does not know.
    Unknown,
}

/// Who is stopped by an error that pauses sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseScope {
    /// Only the recipient: freeze sends to that user (pair limit).
    Recipient,
    /// The business phone number: its queue waits, nothing in it fails.
    Number,
    /// Every number of the WhatsApp Business Account.
    Waba,
}

/// What a sender should do about an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub class: ErrorClass,
    /// Trying the same call again later can succeed without anyone changing anything.
    pub retryable: bool,
    /// The earliest sensible retry ([R] figures; 131056 is at least the 6-second pair interval).
    pub delay: Option<Duration>,
    /// `Some` when the error stops a recipient, a number or a WABA instead of failing the message.
    pub pause: Option<PauseScope>,
    /// Whether an operator must act (a token, a payment, an account problem): raise an alert.
    pub needs_operator: bool,
}

const fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

impl Classification {
    const fn new(class: ErrorClass) -> Self {
        Self { class, retryable: false, delay: None, pause: None, needs_operator: false }
    }

    const fn retry(mut self, delay: Option<Duration>) -> Self {
        self.retryable = true;
        self.delay = delay;
        self
    }

    const fn not_before(mut self, delay: Option<Duration>) -> Self {
        self.delay = delay;
        self
    }

    const fn pause(mut self, scope: PauseScope) -> Self {
        self.pause = Some(scope);
        self
    }

    const fn operator(mut self) -> Self {
        self.needs_operator = true;
        self
    }

    /// The classification of a Graph error code. Every code of `error-codes.json` has an entry; the
    /// choices marked in the table's `retry_guidance` as "maybe" are made here and documented inline.
    #[must_use]
    pub const fn of(code: i64) -> Self {
        use ErrorClass as C;
        use PauseScope as P;
        match code {
            // Token problems stop every send of the number until the token is replaced.
            0 | 190 => Self::new(C::Auth).pause(P::Number).operator(),
            3 | 10 | 131005 | 200..=299 => Self::new(C::Permission).pause(P::Number).operator(),
            // 368 policy block and 131031 locked account stop the number; so does an unapproved name.
            368 | 131031 | 131037 => Self::new(C::Account).pause(P::Number).operator(),
            131042 | 131044 => Self::new(C::Payment).pause(P::Number).operator(),
            // Short backoff: the level is per second.
            130429 => Self::new(C::Throughput).retry(Some(Duration::from_secs(1))),
            // Pair limit: 1 message per 6 s to the same user; wait at least that long.
            131056 => Self::new(C::PairLimit).retry(secs(6)).pause(P::Recipient),
            // App-level call limit: back off a minute. 17 (user), 32 (page) and 613 (a call-specific limit)
            // are Graph's other call limits: not in Meta's WhatsApp table, but answered by the same Graph API,
            // with HTTP 400, so without them a throttle would fail the message for good [R].
            4 | 17 | 32 | 613 => Self::new(C::CallQuota).retry(secs(60)),
            // The management API's business use-case limit (templates, phone numbers): back off [R].
            80008 => Self::new(C::CallQuota).retry(secs(300)),
            // WABA hourly quota: every number of the WABA waits.
            80007 => Self::new(C::CallQuota).retry(secs(300)).pause(P::Waba),
            // Spam rate limit is quality based: the number waits for an operator [R].
            131048 => Self::new(C::QualityLimit).not_before(secs(3600)).pause(P::Number).operator(),
            // Messaging-limit tier reached: later (the tier is per rolling 24 h).
            131064 => Self::new(C::QualityLimit).retry(secs(3600)),
            // Throughput upgrade: the number is unusable for up to a minute.
            131057 => Self::new(C::Maintenance).retry(secs(60)).pause(P::Number),
            131047 => Self::new(C::WindowClosed),
            // 131049: Meta advises a retry hours later, never immediately: not retried automatically [R].
            131049 => Self::new(C::Recipient).not_before(secs(24 * 3600)),
            131026 | 130472 | 131050 | 131030 | 137000 | 130497 => Self::new(C::Recipient),
            132000 | 132001 | 132005 | 132007 | 132008 | 132012 | 132015 | 132016 | 131063 => {
                Self::new(C::Template)
            }
            132068 => Self::new(C::Flow),
            132069 => Self::new(C::Flow).retry(secs(3600)),
            // 131053 is transient only when the details say the fetch failed; by code alone: no [R].
            131052 | 131053 => Self::new(C::Media),
            // Registration problems stop the number until it is registered again.
            33 | 131045 | 133000 | 133005 | 133006 | 133010 => {
                Self::new(C::Registration).pause(P::Number).operator()
            }
            133004 => Self::new(C::Registration).retry(secs(5)),
            133008 | 133009 => Self::new(C::Registration).retry(secs(3600)),
            133015 => Self::new(C::Registration).retry(secs(300)),
            133016 => Self::new(C::Registration).retry(secs(3600)),
            // Code 1 is "maybe": treated as transient with backoff and a bounded number of attempts [R].
            1 | 2 | 131000 | 131016 => Self::new(C::TransientServer).retry(secs(5)),
            100 | 131008 | 131009 | 131021 | 131051 | 131062 | 135000 => Self::new(C::InvalidRequest),
            _ => Self::new(C::Unknown),
        }
    }

    /// Meta's `is_transient: true` wins over the table: an error that would fail the message is tried again
    /// after a short wait instead (errors that pause a recipient, number or WABA keep their pause).
    #[must_use]
    pub const fn transient(mut self, is_transient: Option<bool>) -> Self {
        if matches!(is_transient, Some(true)) && !self.retryable && self.pause.is_none() {
            self.retryable = true;
            if self.delay.is_none() {
                self.delay = secs(5);
            }
        }
        self
    }

    /// The classification for a code, refined by the HTTP status it came with: an unknown code answered
    /// with a 5xx is treated as a transient server error, a 429 as a throughput limit.
    #[must_use]
    pub const fn with_http_status(code: i64, status: u16) -> Self {
        let c = Self::of(code);
        if matches!(c.class, ErrorClass::Unknown) {
            if status >= 500 {
                return Self::new(ErrorClass::TransientServer).retry(secs(5));
            }
            if status == 429 {
                return Self::new(ErrorClass::Throughput).retry(Some(Duration::from_secs(1)));
            }
        }
        c
    }

    /// Whether the error is about the message itself, so that message (and only it) fails.
    #[must_use]
    pub const fn fails_message(&self) -> bool {
        !self.retryable && self.pause.is_none()
    }
}

/// A code's title and HTTP status as in Meta's table (`error-codes.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: i64,
    pub title: &'static str,
    /// `None` where Meta's table gives no status; [`http_status_for`] then answers 400 [R].
    pub http_status: Option<u16>,
}

macro_rules! code_table {
    ($($code:literal => ($title:literal, $status:expr)),* $(,)?) => {
        /// Every code of `error-codes.json` with its title and HTTP status.
        pub const CODES: &[CodeInfo] = &[
            $(CodeInfo { code: $code, title: $title, http_status: $status },)*
        ];
    };
}

code_table! {
    0 => ("AuthException", Some(401)),
    1 => ("API Unknown", Some(400)),
    2 => ("API Service", Some(503)),
    3 => ("API Method", Some(500)),
    4 => ("API Too Many Calls", Some(400)),
    10 => ("Permission Denied", Some(403)),
    33 => ("Parameter value is not valid", Some(400)),
    100 => ("Invalid parameter", Some(400)),
    190 => ("Access token has expired", Some(401)),
    200 => ("API Permission", Some(403)),
    368 => ("Temporarily blocked for policies violations", Some(403)),
    80007 => ("Rate limit issues", Some(400)),
    130429 => ("Rate limit hit", Some(400)),
    130472 => ("User's number is part of an experiment", Some(400)),
    130497 => ("Business account is restricted from messaging users in this country", Some(403)),
    131000 => ("Something went wrong", Some(500)),
    131005 => ("Access denied", Some(403)),
    131008 => ("Required parameter is missing", Some(400)),
    131009 => ("Parameter value is not valid", Some(400)),
    131016 => ("Service unavailable", Some(500)),
    131021 => ("Recipient cannot be sender", Some(400)),
    131026 => ("Message Undeliverable", Some(400)),
    131030 => ("Recipient phone number not in allowed list", Some(400)),
    131031 => ("Account has been locked", Some(403)),
    131037 => ("Display name not approved", None),
    131042 => ("Business eligibility payment issue", Some(400)),
    131044 => ("Payment issue (calling)", None),
    131045 => ("Incorrect certificate", Some(500)),
    131047 => ("Re-engagement message", Some(400)),
    131048 => ("Spam rate limit hit", Some(400)),
    131049 => ("Not delivered to maintain healthy ecosystem engagement", Some(400)),
    131050 => ("User stopped marketing messages", Some(400)),
    131051 => ("Unsupported message type", Some(400)),
    131052 => ("Media download error", Some(400)),
    131053 => ("Media upload error", Some(400)),
    131056 => ("(Business Account, Consumer Account) pair rate limit hit", Some(400)),
    131057 => ("Account in maintenance mode", Some(500)),
    131062 => ("BSUID recipients not supported", None),
    131063 => ("Marketing templates disabled for Cloud API", None),
    131064 => ("Message failed to reach messaging limit", None),
    132000 => ("Template Param Count Mismatch", Some(400)),
    132001 => ("Template does not exist", Some(404)),
    132005 => ("Template Hydrated Text Too Long", Some(400)),
    132007 => ("Template Format Character Policy Violated", Some(400)),
    132008 => ("Template Parameter Value Invalid", None),
    132012 => ("Template Parameter Format Mismatch", Some(400)),
    132015 => ("Template is Paused", Some(400)),
    132016 => ("Template is Disabled", Some(400)),
    132068 => ("Flow is blocked", Some(400)),
    132069 => ("Flow is throttled", Some(400)),
    133000 => ("Incomplete Deregistration", Some(500)),
    133004 => ("Server Temporarily Unavailable", Some(503)),
    133005 => ("Two step verification PIN Mismatch", Some(400)),
    133006 => ("Phone number re-verification needed", Some(400)),
    133008 => ("Too Many two step verification PIN Guesses", Some(400)),
    133009 => ("Two step verification PIN Guessed Too Fast", Some(400)),
    133010 => ("Phone number Not Registered", Some(400)),
    133015 => ("Please wait a few minutes before attempting to register this phone number", Some(400)),
    133016 => ("Account register deregister rate limit exceeded", Some(400)),
    135000 => ("Generic user error", Some(400)),
    137000 => ("Identity key mismatch", None),
}

/// Title and HTTP status of a code; codes 200–299 share the "API Permission" entry.
#[must_use]
pub fn code_info(code: i64) -> Option<&'static CodeInfo> {
    let key = if (200..=299).contains(&code) { 200 } else { code };
    CODES.iter().find(|c| c.code == key)
}

/// The HTTP status Meta answers a code with; 400 for codes its table leaves without one [R], 500 for codes
/// not in the table at all.
#[must_use]
pub fn http_status_for(code: i64) -> u16 {
    match code_info(code) {
        Some(info) => info.http_status.unwrap_or(400),
        None => 500,
    }
}
