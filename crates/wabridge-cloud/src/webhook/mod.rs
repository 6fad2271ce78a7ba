//! Meta's webhooks as typed events, and (with the `axum` feature) a router that verifies and dispatches them.
//!
//! [`events`] turns a parsed [`Envelope`] into [`Event`]s: one per incoming message, status update, value
//! level error or other change, each with its business number and a dedupe key (Meta redelivers; see
//! [`Envelope::events`]).

#[cfg(feature = "axum")]
mod router;

#[cfg(feature = "axum")]
pub use router::{WebhookConfig, WebhookConfigError, WebhookHandler, router};
use wabridge_types::ids::{PhoneNumberId, WabaId};
use wabridge_types::webhook::{
    ChangeValue, Contact, Envelope, EventKind, InboundMessage, Status, WebhookError, WebhookEvent,
};

/// Where an event comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct EventContext {
    /// The WABA of the entry.
    pub waba_id: WabaId,
    /// The change's field (`messages`, `message_template_status_update`, …).
    pub field: String,
    /// The business number's Graph id, for `messages` changes.
    pub phone_number_id: Option<PhoneNumberId>,
    /// The business number as displayed, when known.
    pub display_phone_number: Option<String>,
    /// The key that makes a redelivered event a duplicate.
    pub dedupe_key: String,
}

/// A message a user sent to a business number.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// Where it comes from.
    pub context: EventContext,
    /// The sender's contact entry (name, ids), when Meta sent one.
    pub contact: Option<Contact>,
    /// The message.
    pub message: InboundMessage,
}

/// A status update of a message the business sent (or a payment update: see [`Status::is_payment`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// Where it comes from.
    pub context: EventContext,
    /// The recipient's contact entry, when Meta sent one (current payloads do, `cloud-api.md` §8).
    pub contact: Option<Contact>,
    /// The status.
    pub status: Status,
}

/// An error Meta reports for the number outside any message (`value.errors[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReport {
    /// Where it comes from.
    pub context: EventContext,
    /// The error.
    pub error: WebhookError,
}

/// A change of any other field (template status, quality, account updates, …), typed by field.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherChange {
    /// Where it comes from.
    pub context: EventContext,
    /// The value, typed by its field (unknown fields are kept as [`ChangeValue::Other`]).
    pub value: ChangeValue,
}

/// One thing Meta reports in a webhook.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "an event is moved once, into the handler; boxing would only make matching clumsier"
)]
pub enum Event {
    /// A user sent a message.
    Message(IncomingMessage),
    /// A sent message changed status (or a payment changed).
    Status(StatusUpdate),
    /// Meta reported an error outside any message.
    Error(ErrorReport),
    /// Any other change.
    Other(OtherChange),
}

impl Event {
    /// Where the event comes from.
    #[must_use]
    pub fn context(&self) -> &EventContext {
        match self {
            Self::Message(e) => &e.context,
            Self::Status(e) => &e.context,
            Self::Error(e) => &e.context,
            Self::Other(e) => &e.context,
        }
    }
}

/// The events of an envelope, in the order Meta sent them.
#[must_use]
pub fn events(envelope: &Envelope) -> Vec<Event> {
    envelope.events().into_iter().map(Event::from).collect()
}

impl From<WebhookEvent> for Event {
    fn from(event: WebhookEvent) -> Self {
        let context = EventContext {
            waba_id: event.waba_id.clone(),
            field: event.field.clone(),
            phone_number_id: event.phone_number_id.clone(),
            display_phone_number: event.display_phone_number.clone(),
            dedupe_key: event.dedupe_key.clone(),
        };
        let contact = event
            .payload
            .get("contacts")
            .and_then(|c| c.get(0))
            .and_then(|c| serde_json::from_value::<Contact>(c.clone()).ok());
        let typed = match &event.kind {
            EventKind::Message { .. } => event
                .message()
                .map(|message| Self::Message(IncomingMessage { context: context.clone(), contact, message })),
            EventKind::Status { .. } | EventKind::Payment { .. } => event
                .status()
                .map(|status| Self::Status(StatusUpdate { context: context.clone(), contact, status })),
            EventKind::Error { .. } => event
                .payload
                .get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| serde_json::from_value::<WebhookError>(e.clone()).ok())
                .map(|error| Self::Error(ErrorReport { context: context.clone(), error })),
            EventKind::Change => None,
        };
        // Anything that did not type as its kind is still delivered, as the change it came in.
        typed.unwrap_or_else(|| {
            let value = ChangeValue::from_parts(event.field, event.payload);
            Self::Other(OtherChange { context, value })
        })
    }
}
