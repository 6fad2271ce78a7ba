//! The `value` of a `messages` change: which business number, which users, and the messages, statuses and
//! errors themselves.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::InboundMessage;
use super::status::Status;
use super::wire::Scalar;
use crate::ids::{PhoneNumberId, WaId};

/// The value of a `messages` change (also of `user_preferences`).
///
/// The arrays are `Option`s so that an absent array and an empty one stay distinct when serialized again;
/// [`messages`](Self::messages), [`statuses`](Self::statuses), [`errors`](Self::errors) and
/// [`contacts`](Self::contacts) read them as slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct MessagesValue {
    /// Always `"whatsapp"`.
    pub messaging_product: String,
    /// The business phone number the change is about.
    pub metadata: Metadata,
    /// The users involved: senders of inbound messages and, in the current shape, recipients of statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    /// Inbound messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<InboundMessage>>,
    /// Status updates of outbound messages, and payment updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    /// Errors not tied to one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
    /// Marketing opt-in / opt-out changes of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_preferences: Option<Vec<UserPreference>>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(MessagesValue);

/// `metadata`: the business phone number a `messages` change belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Metadata {
    /// The number as displayed, e.g. `"15550783881"`.
    pub display_phone_number: String,
    /// The number's Graph id.
    pub phone_number_id: PhoneNumberId,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Metadata);

/// An entry of `contacts`: a WhatsApp user with their profile and ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Contact {
    /// The user's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The user's WhatsApp id (their phone number). Optional here so that a contact known only by its
    /// business-scoped user id still parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// Business-scoped user id (§8), e.g. `"US.13491208655302741918"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The parent business's scoped user id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// Hash of the user's identity key, when security notifications are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key_hash: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Contact);

/// `contacts[].profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Profile {
    /// The user's profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's WhatsApp username (§8), e.g. `"@name"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Profile);

/// An error in a webhook: in `value.errors`, `messages[].errors` or `statuses[].errors`.
///
/// Not the Graph error of a failed call (that is [`crate::error::GraphError`]): webhook errors have a
/// `title` and `error_data.details` (older payloads put `details` at the top level; see
/// [`details`](Self::details)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct WebhookError {
    /// The error code, e.g. `131051`.
    pub code: i64,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message (usually the title again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `{details}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    /// Link to Meta's error documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(WebhookError);

/// `error_data` of a [`WebhookError`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ErrorData {
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ErrorData);

/// An entry of `user_preferences`: a user's marketing opt-in or opt-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct UserPreference {
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// The user's business-scoped id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// E.g. `"marketing_messages"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// E.g. `"stop"` or `"resume"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the user changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Scalar>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(UserPreference);

impl MessagesValue {
    /// An empty value for a business number; add items with the `with_*` methods.
    #[must_use]
    pub fn new(metadata: Metadata) -> Self {
        Self {
            messaging_product: crate::MESSAGING_PRODUCT.to_owned(),
            metadata,
            contacts: None,
            messages: None,
            statuses: None,
            errors: None,
            user_preferences: None,
            extra: Map::new(),
        }
    }

    /// Adds a contact (unless one with the same `wa_id` and `user_id` is already there).
    #[must_use]
    pub fn with_contact(mut self, contact: Contact) -> Self {
        let contacts = self.contacts.get_or_insert_with(Vec::new);
        if !contacts.iter().any(|c| c.wa_id == contact.wa_id && c.user_id == contact.user_id) {
            contacts.push(contact);
        }
        self
    }

    /// Adds an inbound message.
    #[must_use]
    pub fn with_message(mut self, message: InboundMessage) -> Self {
        self.messages.get_or_insert_with(Vec::new).push(message);
        self
    }

    /// Adds a status.
    #[must_use]
    pub fn with_status(mut self, status: Status) -> Self {
        self.statuses.get_or_insert_with(Vec::new).push(status);
        self
    }

    /// Adds a value-level error.
    #[must_use]
    pub fn with_error(mut self, error: WebhookError) -> Self {
        self.errors.get_or_insert_with(Vec::new).push(error);
        self
    }

    /// The contacts (empty when absent).
    #[must_use]
    pub fn contacts(&self) -> &[Contact] {
        self.contacts.as_deref().unwrap_or_default()
    }

    /// The inbound messages (empty when absent).
    #[must_use]
    pub fn messages(&self) -> &[InboundMessage] {
        self.messages.as_deref().unwrap_or_default()
    }

    /// The statuses, payment updates included (empty when absent).
    #[must_use]
    pub fn statuses(&self) -> &[Status] {
        self.statuses.as_deref().unwrap_or_default()
    }

    /// The value-level errors (empty when absent).
    #[must_use]
    pub fn errors(&self) -> &[WebhookError] {
        self.errors.as_deref().unwrap_or_default()
    }

    /// The contact a user is known by: matched on `wa_id`, or on the business-scoped `user_id`.
    #[must_use]
    pub fn find_contact(&self, wa_id: Option<&str>, user_id: Option<&str>) -> Option<&Contact> {
        self.contacts().iter().find(|c| {
            let by_wa_id = wa_id.is_some() && c.wa_id.as_ref().map(WaId::as_str) == wa_id;
            let by_user_id = user_id.is_some() && c.user_id.as_deref() == user_id;
            by_wa_id || by_user_id
        })
    }
}

impl Metadata {
    /// Metadata for a business number.
    #[must_use]
    pub fn new(display_phone_number: impl Into<String>, phone_number_id: impl Into<PhoneNumberId>) -> Self {
        Self {
            display_phone_number: display_phone_number.into(),
            phone_number_id: phone_number_id.into(),
            extra: Map::new(),
        }
    }
}

impl Contact {
    /// A contact with a profile name, in the older shape (add ids with [`with_user_id`](Self::with_user_id)).
    #[must_use]
    pub fn new(wa_id: impl Into<WaId>, name: impl Into<String>) -> Self {
        Self {
            profile: Some(Profile { name: Some(name.into()), username: None, extra: Map::new() }),
            wa_id: Some(wa_id.into()),
            user_id: None,
            parent_user_id: None,
            identity_key_hash: None,
            extra: Map::new(),
        }
    }

    /// Sets the business-scoped user id (current shape, §8).
    #[must_use]
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
}

impl WebhookError {
    /// An error with a code, title and details, the way Meta writes them in webhooks.
    #[must_use]
    pub fn new(code: i64, title: impl Into<String>, details: impl Into<String>) -> Self {
        let title = title.into();
        Self {
            code,
            title: Some(title.clone()),
            message: Some(title),
            error_data: Some(ErrorData { details: Some(details.into()), extra: Map::new() }),
            href: None,
            extra: Map::new(),
        }
    }

    /// The details: `error_data.details`, or the top-level `details` of older payloads.
    #[must_use]
    pub fn details(&self) -> Option<&str> {
        self.error_data
            .as_ref()
            .and_then(|d| d.details.as_deref())
            .or_else(|| self.extra.get("details").and_then(Value::as_str))
    }
}
