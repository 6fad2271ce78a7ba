//! Checking a request against Meta's documented limits before anything is sent.

/// A request that breaks one of the Cloud API's documented limits. Every variant names the field (as a
/// JSON path such as `interactive.action.buttons[1].reply.title`) and, where there is one, the size found
/// and the limit, so the caller can fix the request without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A string is longer than allowed (lengths count Unicode characters, as Meta does).
    #[error("{field} is {found} characters long; at most {limit} allowed")]
    TooLong { field: String, found: usize, limit: usize },
    /// A byte-limited value (for example `biz_opaque_callback_data`) is too large.
    #[error("{field} is {found} bytes long; at most {limit} allowed")]
    TooManyBytes { field: String, found: usize, limit: usize },
    /// A list has more items than allowed.
    #[error("{field} has {found} items; at most {limit} allowed")]
    TooMany { field: String, found: usize, limit: usize },
    /// A list has fewer items than required.
    #[error("{field} has {found} items; at least {limit} required")]
    TooFew { field: String, found: usize, limit: usize },
    /// A required field is missing or empty.
    #[error("{field} is required")]
    Missing { field: String },
    /// Two fields that exclude each other are both set (for example media `id` and `link`).
    #[error("{field}: {first} and {second} cannot both be set")]
    Conflict { field: String, first: &'static str, second: &'static str },
    /// Values that must be unique are not.
    #[error("{field}: the value {value:?} appears more than once")]
    Duplicate { field: String, value: String },
    /// Any other invalid value; `reason` says what was expected.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl ValidationError {
    /// The JSON path of the offending field.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::TooLong { field, .. }
            | Self::TooManyBytes { field, .. }
            | Self::TooMany { field, .. }
            | Self::TooFew { field, .. }
            | Self::Missing { field }
            | Self::Conflict { field, .. }
            | Self::Duplicate { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }
}

/// Fails when `value` has more than `limit` characters.
pub fn max_chars(field: impl FnOnce() -> String, value: &str, limit: usize) -> Result<(), ValidationError> {
    let found = value.chars().count();
    if found > limit {
        return Err(ValidationError::TooLong { field: field(), found, limit });
    }
    Ok(())
}

/// Fails when `value` is empty (after trimming white space) or longer than `limit` characters.
pub fn required_chars(field: impl Fn() -> String, value: &str, limit: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Missing { field: field() });
    }
    max_chars(field, value, limit)
}

/// Fails when a list's length is outside `min..=max`.
pub fn count_between(
    field: impl Fn() -> String,
    found: usize,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    if found < min {
        return Err(ValidationError::TooFew { field: field(), found, limit: min });
    }
    if found > max {
        return Err(ValidationError::TooMany { field: field(), found, limit: max });
    }
    Ok(())
}
