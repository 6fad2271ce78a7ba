//! Newtype identifiers, so a phone number id is never passed where a WABA id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps an id.
            #[must_use]
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as it travels on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A business phone number's Graph id (`phone_number_id`), not the number itself.
    PhoneNumberId
);
string_id!(
    /// A WhatsApp Business Account id.
    WabaId
);
string_id!(
    /// A WhatsApp user's id: their phone number in international form without `+`.
    WaId
);
string_id!(
    /// A WhatsApp message id (`wamid.…`, at most 128 characters).
    Wamid
);
string_id!(
    /// An uploaded or received media object's id.
    MediaId
);
string_id!(
    /// A message template's id.
    TemplateId
);
