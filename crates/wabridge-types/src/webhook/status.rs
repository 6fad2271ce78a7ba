//! Status updates of outbound messages (`statuses[]`), payment updates, and the rule that statuses only
//! move a message forward.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::value::WebhookError;
use super::wire::Scalar;
use crate::ids::{WaId, Wamid};

wire_enum! {
    /// The `status` of a status update.
    StatusKind {
        /// Meta accepted the message and sent it.
        Sent = "sent",
        /// The user's device received it.
        Delivered = "delivered",
        /// The user read it.
        Read = "read",
        /// It could not be delivered; `errors` says why.
        Failed = "failed",
        /// The user played a voice message (ranks with `read`).
        Played = "played",
        /// The user deleted the message.
        Deleted = "deleted",
    }
}

wire_enum! {
    /// `pricing.pricing_model`.
    PricingModel {
        /// Conversation-based pricing (older payloads).
        Cbp = "CBP",
        /// Per-message pricing (since 2025-07).
        Pmp = "PMP",
    }
}

/// An entry of `statuses[]`: what happened to a message the business sent, or a payment update when
/// `type` is `"payment"` (see [`is_payment`](Self::is_payment)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Status {
    /// The outbound message's wamid (for a payment, the id of the order message).
    pub id: Wamid,
    /// What happened.
    pub status: StatusKind,
    /// When, in unix seconds (a string in Meta's payloads; kept as sent).
    pub timestamp: Scalar,
    /// The user the message went to. Absent in payment updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<WaId>,
    /// The recipient's business-scoped user id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// The recipient's parent business-scoped user id (§8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_recipient_user_id: Option<String>,
    /// The data the sender attached to the message (the gateway puts its own message id here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// The conversation the message belongs to (often absent under per-message pricing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// How the message is billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
    /// `"payment"` for payment updates; absent for message statuses.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Keys this crate does not know (for payments: `payment`, `from`), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Status);

/// `statuses[].conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Conversation {
    /// The conversation id.
    pub id: String,
    /// When the conversation window closes (only on the first status of a conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<Scalar>,
    /// Who or what opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ConversationOrigin>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Conversation);

/// `conversation.origin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ConversationOrigin {
    /// `marketing`, `utility`, `authentication`, `service`, `referral_conversion`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(ConversationOrigin);

/// `statuses[].pricing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Pricing {
    /// Whether the message is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// `CBP` or `PMP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<PricingModel>,
    /// Under PMP: `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `marketing`, `utility`, `authentication`, `service`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(Pricing);

impl StatusKind {
    /// The place of a status in a message's life: sent 1, delivered 2, read and played 3, failed 4 (the
    /// highest, so nothing moves a failed message and any order of arrival ends in the same state).
    /// `None` for statuses that never move a message's state (`deleted`, unknown values).
    ///
    /// Ranking `failed` above `read` is our reading (\[R\]): Meta does not fail a message it reported read,
    /// and a total order is what makes reordered webhooks converge.
    #[must_use]
    pub fn rank(&self) -> Option<u8> {
        match self {
            Self::Sent => Some(1),
            Self::Delivered => Some(2),
            Self::Read | Self::Played => Some(3),
            Self::Failed => Some(4),
            Self::Deleted | Self::Other(_) => None,
        }
    }

    /// Whether nothing can move a message on from this status.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Failed)
    }
}

/// Whether a message whose current status is `from` (`None`: no status seen yet) moves to `to`.
///
/// Statuses only move forward: sent < delivered < read (played ranks with read), failed is terminal;
/// duplicates, late arrivals, `deleted` and unknown statuses change nothing. Payment updates are not message
/// statuses: use [`Status::advances`], which refuses them.
#[must_use]
pub fn moves_forward(from: Option<&StatusKind>, to: &StatusKind) -> bool {
    match (from.and_then(StatusKind::rank), to.rank()) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(current), Some(next)) => next > current,
    }
}

impl Status {
    /// A message status in the current shape's minimal form (add the rest with the public fields).
    #[must_use]
    pub fn new(
        id: impl Into<Wamid>,
        status: StatusKind,
        timestamp: impl Into<Scalar>,
        recipient_id: impl Into<WaId>,
    ) -> Self {
        Self {
            id: id.into(),
            status,
            timestamp: timestamp.into(),
            recipient_id: Some(recipient_id.into()),
            recipient_user_id: None,
            parent_recipient_user_id: None,
            biz_opaque_callback_data: None,
            conversation: None,
            pricing: None,
            errors: None,
            kind: None,
            extra: Map::new(),
        }
    }

    /// Sets the recipient's business-scoped user id (current shape, §8).
    #[must_use]
    pub fn with_recipient_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.recipient_user_id = Some(user_id.into());
        self
    }

    /// Whether this is a payment update (`"type": "payment"`), not a message status.
    #[must_use]
    pub fn is_payment(&self) -> bool {
        self.kind.as_deref() == Some("payment")
    }

    /// Whether this status moves a message whose current status is `current` forward. Always `false` for
    /// payment updates.
    #[must_use]
    pub fn advances(&self, current: Option<&StatusKind>) -> bool {
        !self.is_payment() && moves_forward(current, &self.status)
    }

    /// The errors (empty when absent).
    #[must_use]
    pub fn errors(&self) -> &[WebhookError] {
        self.errors.as_deref().unwrap_or_default()
    }
}
