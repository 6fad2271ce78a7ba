//! The values of the change fields other than `messages`: templates, phone numbers and the account.
//!
//! Only the keys that wabridge acts on, or that identify what changed, are typed; the rest stay in `extra`.
//! Event names are kept as strings except the phone-number quality events, which drive the rate limiter.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::Scalar;

/// `message_template_status_update`: a template was approved, rejected, paused, disabled, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateStatusUpdate {
    /// `APPROVED`, `REJECTED`, `PENDING`, `PAUSED`, `DISABLED`, …
    pub event: String,
    /// The template's id (a number in Meta's payloads; kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<Scalar>,
    /// The template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// The template's language, e.g. `en_US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// Why, e.g. `NONE`, `INCORRECT_CATEGORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The template's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_category: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateStatusUpdate);

/// `message_template_quality_update`: a template's quality score changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateQualityUpdate {
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_quality_score: Option<String>,
    /// The new score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_quality_score: Option<String>,
    /// The template's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<Scalar>,
    /// The template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// The template's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateQualityUpdate);

/// `template_category_update`: Meta changed (or will change) a template's category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateCategoryUpdate {
    /// The template's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<Scalar>,
    /// The template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// The template's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// The category before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    /// The category now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_category: Option<String>,
    /// The category Meta considers correct, in advance notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_category: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateCategoryUpdate);

/// `message_template_components_update`: a template's text or buttons were edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateComponentsUpdate {
    /// The template's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_id: Option<Scalar>,
    /// The template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_name: Option<String>,
    /// The template's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_language: Option<String>,
    /// The body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_element: Option<String>,
    /// The header text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_title: Option<String>,
    /// The footer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_footer: Option<String>,
    /// The buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_buttons: Option<Vec<TemplateButtonInfo>>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateComponentsUpdate);

/// A button of a template, in `message_template_components_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TemplateButtonInfo {
    /// `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_type: Option<String>,
    /// The button's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_button_text: Option<String>,
    /// Keys this crate does not know (the URL or phone number), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(TemplateButtonInfo);

wire_enum! {
    /// `phone_number_quality_update.event`.
    ///
    /// `FLAGGED`/`UNFLAGGED` are quality events and `UPGRADE`/`DOWNGRADE` messaging-limit tier changes:
    /// neither says anything about messages per second. A throughput upgrade arrives as
    /// `THROUGHPUT_UPGRADE` (\[L\]); on it, re-read the number's `?fields=throughput`.
    QualityEvent {
        /// Quality dropped; the number may be downgraded.
        Flagged = "FLAGGED",
        /// Quality recovered.
        Unflagged = "UNFLAGGED",
        /// The messaging-limit tier went up.
        Upgrade = "UPGRADE",
        /// The messaging-limit tier went down.
        Downgrade = "DOWNGRADE",
        /// The number's throughput level went up (e.g. 80 → 1,000 msg/s).
        ThroughputUpgrade = "THROUGHPUT_UPGRADE",
    }
}

/// `phone_number_quality_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct PhoneNumberQualityUpdate {
    /// The number as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// What happened.
    pub event: QualityEvent,
    /// The messaging-limit tier, e.g. `TIER_1K` (being replaced in 2026 by
    /// `max_daily_conversations_per_business`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_limit: Option<String>,
    /// The daily limit in the newer shape (kept as sent: a tier name or a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<Scalar>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(PhoneNumberQualityUpdate);

/// `phone_number_name_update`: the decision on a requested display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct PhoneNumberNameUpdate {
    /// The number as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// `APPROVED`, `REJECTED`, `PENDING`, `DEFERRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The name asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_verified_name: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(PhoneNumberNameUpdate);

/// `account_update`: the WABA was verified, restricted, banned, found in violation, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AccountUpdate {
    /// E.g. `ACCOUNT_RESTRICTION`, `ACCOUNT_VIOLATION`, `VERIFIED_ACCOUNT`, `DISABLED_UPDATE`.
    pub event: String,
    /// The number concerned, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// What the account may no longer do, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_info: Option<Vec<RestrictionInfo>>,
    /// Keys this crate does not know (`ban_info`, `violation_info`, …), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(AccountUpdate);

/// An entry of `account_update.restriction_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct RestrictionInfo {
    /// E.g. `RESTRICTED_BIZ_INITIATED_MESSAGING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_type: Option<String>,
    /// When the restriction ends (unix seconds; kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Scalar>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(RestrictionInfo);

/// `account_review_update`: the decision on the WABA's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AccountReviewUpdate {
    /// `APPROVED`, `REJECTED`, `PENDING`, `DEFERRED`.
    pub decision: String,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(AccountReviewUpdate);

/// `account_alerts`: an alert about the WABA, a number or the business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AccountAlert {
    /// `WABA`, `PHONE_NUMBER`, `BUSINESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// The id of what the alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// The alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_info: Option<AlertInfo>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(AccountAlert);

/// `account_alerts.alert_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AlertInfo {
    /// `CRITICAL`, `WARNING`, `INFORMATIONAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_severity: Option<String>,
    /// `ACTIVE`, `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_status: Option<String>,
    /// What kind of alert, e.g. `OBA_APPROVED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_type: Option<String>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_description: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(AlertInfo);

/// `business_capability_update`: the business's limits changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct BusinessCapabilityUpdate {
    /// Daily business-initiated conversation (or message) limit (kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversation_per_phone: Option<Scalar>,
    /// Same limit, under its newer name (kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<Scalar>,
    /// How many phone numbers the business may register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_business: Option<Scalar>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(BusinessCapabilityUpdate);

/// `security`: a security setting of a number changed (e.g. its two-step verification PIN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SecurityUpdate {
    /// The number as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// E.g. `PIN_CHANGED`, `PIN_RESET_REQUEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Keys this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
keep_nulls!(SecurityUpdate);
