//! Message templates as defined on the WABA (`GET/POST /{waba-id}/message_templates`, `cloud-api.md` §5).
//!
//! These are the definitions, not the send request (that is [`crate::send`]). [`TemplateDefinition`]
//! can tell how many parameters each component expects, so a send can be checked before it leaves.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::TemplateId;
use crate::validate::{ValidationError, required_chars};

/// A template's review state (§5). Unknown states are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
    InAppeal,
    PendingDeletion,
    Deleted,
    LimitExceeded,
    Archived,
    #[serde(untagged)]
    Other(String),
}

impl TemplateStatus {
    /// The wire name (`APPROVED`, …).
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Approved => "APPROVED",
            Self::Pending => "PENDING",
            Self::Rejected => "REJECTED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
            Self::InAppeal => "IN_APPEAL",
            Self::PendingDeletion => "PENDING_DELETION",
            Self::Deleted => "DELETED",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::Archived => "ARCHIVED",
            Self::Other(s) => s,
        }
    }
}

/// `MARKETING`, `UTILITY` or `AUTHENTICATION`. Unknown categories are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
    #[serde(untagged)]
    Other(String),
}

/// Whether body placeholders are `{{1}}` (positional) or `{{first_name}}` (named). Unknown formats are kept,
/// so one new value does not fail a whole page of templates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    Positional,
    Named,
    #[serde(untagged)]
    Other(String),
}

impl ParameterFormat {
    /// The wire name (`POSITIONAL`, `NAMED`, or the unknown value as sent).
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Positional => "POSITIONAL",
            Self::Named => "NAMED",
            Self::Other(s) => s,
        }
    }
}

/// A template as Meta lists it. Listed with `fields=…`, Meta returns only those fields (and `id`): `name` and
/// `language` are then empty unless asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TemplateId>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TemplateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    #[serde(default)]
    pub components: Vec<TemplateComponent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<ParameterFormat>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One component of a template definition: `HEADER`, `BODY`, `FOOTER` or `BUTTONS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponent {
    #[serde(rename = "type")]
    pub kind: String,
    /// Headers: `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT` or `LOCATION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<TemplateButton>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A button of a `BUTTONS` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateButton {
    /// `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `OTP`, `COPY_CODE`, `FLOW`, `CATALOG`, `MPM`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The placeholders of a piece of template text: `{{1}}`, `{{2}}` or `{{name}}`, in order of first use.
#[must_use]
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty() && !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    found
}

/// What a template expects of a send: used to check a send before it leaves (the sandbox answers
/// 132000 / 132012 from the same facts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateShape {
    /// Header format (`TEXT`, `IMAGE`, …), if the template has a header.
    pub header_format: Option<String>,
    /// Placeholders of a text header.
    pub header_params: Vec<String>,
    /// Placeholders of the body.
    pub body_params: Vec<String>,
    /// Button types by index (`QUICK_REPLY`, `URL`, …).
    pub buttons: Vec<String>,
    /// Indexes of URL buttons whose URL has a placeholder (they need a parameter).
    pub dynamic_url_buttons: Vec<usize>,
}

impl TemplateDefinition {
    /// What a send of this template must supply.
    #[must_use]
    pub fn shape(&self) -> TemplateShape {
        let mut shape = TemplateShape::default();
        for c in &self.components {
            match c.kind.to_ascii_uppercase().as_str() {
                "HEADER" => {
                    shape.header_format = c.format.clone().map(|f| f.to_ascii_uppercase());
                    shape.header_params = c.text.as_deref().map(placeholders).unwrap_or_default();
                }
                "BODY" => shape.body_params = c.text.as_deref().map(placeholders).unwrap_or_default(),
                "BUTTONS" => {
                    for (i, b) in c.buttons.iter().flatten().enumerate() {
                        shape.buttons.push(b.kind.to_ascii_uppercase());
                        if b.url.as_deref().is_some_and(|u| !placeholders(u).is_empty()) {
                            shape.dynamic_url_buttons.push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        shape
    }

    /// Whether sends of this template are accepted (only `APPROVED` ones are).
    #[must_use]
    pub fn is_approved(&self) -> bool {
        matches!(self.status, Some(TemplateStatus::Approved))
    }
}

/// `POST /{waba-id}/message_templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTemplate {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub components: Vec<TemplateComponent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<ParameterFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_category_change: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CreateTemplate {
    /// Checks what Meta checks first: a lowercase name of letters, digits and underscores (≤ 512), a
    /// language, and a body.
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_chars(|| "name".into(), &self.name, 512)?;
        if !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(ValidationError::Invalid {
                field: "name".into(),
                reason: "only lowercase letters, digits and underscores are allowed".into(),
            });
        }
        required_chars(|| "language".into(), &self.language, 16)?;
        if !self.components.iter().any(|c| c.kind.eq_ignore_ascii_case("BODY")) {
            return Err(ValidationError::Missing { field: "components[type=BODY]".into() });
        }
        Ok(())
    }
}

/// The answer to a template creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTemplateResponse {
    pub id: TemplateId,
    pub status: TemplateStatus,
    pub category: TemplateCategory,
}
