//! Contact cards (`"type":"contacts"`, §1).

use serde::{Deserialize, Serialize};

use super::wire::JsonMap;
use crate::ids::WaId;
use crate::validate::{ValidationError, count_between, required_chars};

/// One contact card. Meta requires `name.formatted_name` and at least one other name field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact's name.
    pub name: ContactName,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<ContactAddress>>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<ContactEmail>>,
    /// Employer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<ContactOrg>,
    /// Phone numbers; `wa_id` adds a "Message" button in WhatsApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<ContactPhone>>,
    /// Web sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<ContactUrl>>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Contact {
    /// A card with only a name.
    #[must_use]
    pub fn new(name: ContactName) -> Self {
        Self {
            name,
            addresses: None,
            birthday: None,
            emails: None,
            org: None,
            phones: None,
            urls: None,
            extra: JsonMap::new(),
        }
    }

    /// Adds a phone number, with the WhatsApp id behind it when known.
    #[must_use]
    pub fn with_phone(mut self, phone: impl Into<String>, wa_id: Option<WaId>) -> Self {
        let entry = ContactPhone { phone: Some(phone.into()), wa_id, kind: None, extra: JsonMap::new() };
        self.phones.get_or_insert_with(Vec::new).push(entry);
        self
    }

    /// Adds an e-mail address.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        let entry = ContactEmail { email: Some(email.into()), kind: None, extra: JsonMap::new() };
        self.emails.get_or_insert_with(Vec::new).push(entry);
        self
    }

    pub(crate) fn check(&self, path: &str) -> Result<(), ValidationError> {
        let name = &self.name;
        required_chars(|| format!("{path}.name.formatted_name"), &name.formatted_name, usize::MAX)?;
        let others = [&name.first_name, &name.last_name, &name.middle_name, &name.suffix, &name.prefix];
        if !others.iter().any(|f| f.as_deref().is_some_and(|s| !s.trim().is_empty())) {
            return Err(ValidationError::Invalid {
                field: format!("{path}.name"),
                reason: "needs first_name, last_name, middle_name, suffix or prefix besides formatted_name"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Checks a message's `contacts` array: at least one card, each valid.
pub(crate) fn check_contacts(contacts: &[Contact]) -> Result<(), ValidationError> {
    count_between(|| "contacts".to_owned(), contacts.len(), 1, usize::MAX)?;
    contacts.iter().enumerate().try_for_each(|(i, c)| c.check(&format!("contacts[{i}]")))
}

/// `name` of a contact card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactName {
    /// The full name as displayed; required.
    pub formatted_name: String,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Name suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Name prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ContactName {
    /// A name with its display form and given name (Meta needs one field besides `formatted_name`).
    #[must_use]
    pub fn new(formatted_name: impl Into<String>, first_name: impl Into<String>) -> Self {
        Self {
            formatted_name: formatted_name.into(),
            first_name: Some(first_name.into()),
            last_name: None,
            middle_name: None,
            suffix: None,
            prefix: None,
            extra: JsonMap::new(),
        }
    }

    /// Sets the family name.
    #[must_use]
    pub fn with_last_name(mut self, last_name: impl Into<String>) -> Self {
        self.last_name = Some(last_name.into());
        self
    }
}

/// A postal address of a contact card; `type` is `HOME` or `WORK`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactAddress {
    /// Street and number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// Country name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Two-letter country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// `HOME` or `WORK`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// An e-mail address of a contact card; `type` is `HOME` or `WORK`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactEmail {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `HOME` or `WORK`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The employer of a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactOrg {
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A phone number of a contact card; `type` is `CELL`, `MAIN`, `IPHONE`, `HOME` or `WORK`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactPhone {
    /// The number as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The WhatsApp id behind the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<WaId>,
    /// `CELL`, `MAIN`, `IPHONE`, `HOME` or `WORK`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A web site of a contact card; `type` is `HOME` or `WORK`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactUrl {
    /// The URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `HOME` or `WORK`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}
