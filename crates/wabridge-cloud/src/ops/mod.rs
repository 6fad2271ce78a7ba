//! The Cloud API's operations, one module per area, all as methods of [`crate::Client`].

mod media;
mod messages;
mod numbers;
mod templates;

pub use media::{MediaDownload, check_media};
pub use numbers::BUSINESS_PROFILE_FIELDS;
pub use templates::TemplateFilter;

use serde_json::Value;

use crate::error::CloudError;
use crate::request::Answer;

/// Reads the answer to an action: `{"success": true}` (or the string `"true"` of older samples). Some actions
/// answer with the changed objects in `data` instead (a callback override, a profile update): that is a
/// success too.
pub(crate) fn expect_success(answer: &Answer) -> Result<(), CloudError> {
    let value: Value = answer.decode()?;
    match value.get("success") {
        None if value.get("data").is_some() => Ok(()),
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(()),
        Some(Value::Bool(false)) => Err(CloudError::Unsuccessful),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Err(CloudError::Unsuccessful),
        _ => Err(CloudError::Decode {
            status: answer.status,
            source: serde::de::Error::custom("expected {\"success\": true} or {\"data\": [...]}"),
        }),
    }
}
