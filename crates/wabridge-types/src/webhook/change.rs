//! A change of an entry: `{"field": "...", "value": {...}}`, with the value typed by the field.

use serde::de::{Deserializer, Error as _};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{
    AccountAlert, AccountReviewUpdate, AccountUpdate, BusinessCapabilityUpdate, PhoneNumberNameUpdate,
    PhoneNumberQualityUpdate, SecurityUpdate, TemplateCategoryUpdate, TemplateComponentsUpdate,
    TemplateQualityUpdate, TemplateStatusUpdate,
};
use super::value::MessagesValue;
use super::wire::parse_typed;

/// One change in an entry. `field` and `value` are siblings on the wire; here the field is implied by the
/// variant of [`value`](Self::value) (see [`field`](Self::field)).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What changed, typed by field.
    pub value: ChangeValue,
    /// Keys beside `field` and `value` that this crate does not know, kept as sent.
    pub extra: Map<String, Value>,
}

/// The value of a change, one variant per webhook field (`cloud-api.md` §3, §8).
///
/// A value that does not have the shape its field's variant expects is kept as [`Other`](Self::Other)
/// with its field, so that one odd change never makes a whole webhook unreadable.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// `messages`: inbound messages, statuses, errors.
    Messages(MessagesValue),
    /// `message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// `message_template_quality_update`.
    TemplateQuality(TemplateQualityUpdate),
    /// `template_category_update`.
    TemplateCategory(TemplateCategoryUpdate),
    /// `message_template_components_update`.
    TemplateComponents(TemplateComponentsUpdate),
    /// `phone_number_quality_update`.
    PhoneNumberQuality(PhoneNumberQualityUpdate),
    /// `phone_number_name_update`.
    PhoneNumberName(PhoneNumberNameUpdate),
    /// `account_update`.
    Account(AccountUpdate),
    /// `account_review_update`.
    AccountReview(AccountReviewUpdate),
    /// `account_alerts`.
    AccountAlerts(AccountAlert),
    /// `business_capability_update`.
    BusinessCapability(BusinessCapabilityUpdate),
    /// `security`.
    Security(SecurityUpdate),
    /// `user_preferences`: same shape as a `messages` value, with `user_preferences[]`.
    UserPreferences(MessagesValue),
    /// Any other field (`flows`, `calls`, `history`, `smb_message_echoes`, fields Meta adds later), or a
    /// value that did not fit its field's type: kept as sent.
    Other {
        /// The field name.
        field: String,
        /// The value as sent.
        value: Value,
    },
}

impl ChangeValue {
    /// The webhook field this value belongs to.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::Messages(_) => "messages",
            Self::TemplateStatus(_) => "message_template_status_update",
            Self::TemplateQuality(_) => "message_template_quality_update",
            Self::TemplateCategory(_) => "template_category_update",
            Self::TemplateComponents(_) => "message_template_components_update",
            Self::PhoneNumberQuality(_) => "phone_number_quality_update",
            Self::PhoneNumberName(_) => "phone_number_name_update",
            Self::Account(_) => "account_update",
            Self::AccountReview(_) => "account_review_update",
            Self::AccountAlerts(_) => "account_alerts",
            Self::BusinessCapability(_) => "business_capability_update",
            Self::Security(_) => "security",
            Self::UserPreferences(_) => "user_preferences",
            Self::Other { field, .. } => field,
        }
    }

    /// Types a value by its field; a value that does not fit is kept as [`Other`](Self::Other).
    #[must_use]
    pub fn from_parts(field: String, value: Value) -> Self {
        let typed = match field.as_str() {
            "messages" => parse_typed(&value).map(Self::Messages),
            "message_template_status_update" => parse_typed(&value).map(Self::TemplateStatus),
            "message_template_quality_update" => parse_typed(&value).map(Self::TemplateQuality),
            "template_category_update" => parse_typed(&value).map(Self::TemplateCategory),
            "message_template_components_update" => parse_typed(&value).map(Self::TemplateComponents),
            "phone_number_quality_update" => parse_typed(&value).map(Self::PhoneNumberQuality),
            "phone_number_name_update" => parse_typed(&value).map(Self::PhoneNumberName),
            "account_update" => parse_typed(&value).map(Self::Account),
            "account_review_update" => parse_typed(&value).map(Self::AccountReview),
            "account_alerts" => parse_typed(&value).map(Self::AccountAlerts),
            "business_capability_update" => parse_typed(&value).map(Self::BusinessCapability),
            "security" => parse_typed(&value).map(Self::Security),
            "user_preferences" => parse_typed(&value).map(Self::UserPreferences),
            _ => None,
        };
        typed.unwrap_or(Self::Other { field, value })
    }

    /// The `messages` (or `user_preferences`) value, when this is one.
    #[must_use]
    pub fn as_messages(&self) -> Option<&MessagesValue> {
        match self {
            Self::Messages(value) | Self::UserPreferences(value) => Some(value),
            _ => None,
        }
    }
}

/// Serializes only the value (what goes under `"value"`).
impl Serialize for ChangeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Messages(v) | Self::UserPreferences(v) => v.serialize(serializer),
            Self::TemplateStatus(v) => v.serialize(serializer),
            Self::TemplateQuality(v) => v.serialize(serializer),
            Self::TemplateCategory(v) => v.serialize(serializer),
            Self::TemplateComponents(v) => v.serialize(serializer),
            Self::PhoneNumberQuality(v) => v.serialize(serializer),
            Self::PhoneNumberName(v) => v.serialize(serializer),
            Self::Account(v) => v.serialize(serializer),
            Self::AccountReview(v) => v.serialize(serializer),
            Self::AccountAlerts(v) => v.serialize(serializer),
            Self::BusinessCapability(v) => v.serialize(serializer),
            Self::Security(v) => v.serialize(serializer),
            Self::Other { value, .. } => value.serialize(serializer),
        }
    }
}

impl Change {
    /// A change carrying a value (its field follows from the value).
    #[must_use]
    pub fn new(value: ChangeValue) -> Self {
        Self { value, extra: Map::new() }
    }

    /// The webhook field, e.g. `"messages"`.
    #[must_use]
    pub fn field(&self) -> &str {
        self.value.field()
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.extra.len()))?;
        map.serialize_entry("field", self.field())?;
        map.serialize_entry("value", &self.value)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = Map::<String, Value>::deserialize(deserializer)?;
        let field = match map.remove("field") {
            Some(Value::String(field)) => field,
            Some(_) => return Err(D::Error::custom("`field` of a change is not a string")),
            None => return Err(D::Error::missing_field("field")),
        };
        let value = map.remove("value").ok_or_else(|| D::Error::missing_field("value"))?;
        Ok(Self { value: ChangeValue::from_parts(field, value), extra: map })
    }
}
