//! The typed `action` objects of the interactive types this crate knows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::send::wire::JsonMap;

/// `action` of a reply-button message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ButtonAction {
    /// 1 to 3 buttons with unique titles.
    pub buttons: Vec<ReplyButton>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One reply button: `{"type":"reply","reply":{"id":…,"title":…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyButton {
    /// Always `reply`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The button's id (returned in the user's reply) and title.
    pub reply: ButtonReply,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ReplyButton {
    /// A reply button; `id` (at most 256 characters) comes back when the user taps it, `title` (at most
    /// 20) is shown.
    #[must_use]
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            kind: "reply".to_owned(),
            reply: ButtonReply { id: id.into(), title: title.into(), extra: JsonMap::new() },
            extra: JsonMap::new(),
        }
    }
}

/// `reply` of a reply button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ButtonReply {
    /// At most 256 characters.
    pub id: String,
    /// At most 20 characters, unique within the message.
    pub title: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a list message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListAction {
    /// The label of the button that opens the list, at most 20 characters.
    pub button: String,
    /// 1 to 10 sections, at most 10 rows in all.
    pub sections: Vec<ListSection>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A section of a list message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSection {
    /// At most 24 characters; required when there is more than one section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The section's rows.
    pub rows: Vec<ListRow>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ListSection {
    /// A titled section.
    #[must_use]
    pub fn new(title: impl Into<String>, rows: impl IntoIterator<Item = ListRow>) -> Self {
        Self { title: Some(title.into()), rows: rows.into_iter().collect(), extra: JsonMap::new() }
    }

    /// A section without title (allowed when it is the only one).
    #[must_use]
    pub fn untitled(rows: impl IntoIterator<Item = ListRow>) -> Self {
        Self { title: None, rows: rows.into_iter().collect(), extra: JsonMap::new() }
    }
}

/// A row of a list message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRow {
    /// At most 200 characters; comes back when the user picks the row.
    pub id: String,
    /// At most 24 characters.
    pub title: String,
    /// At most 72 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ListRow {
    /// A row with id and title.
    #[must_use]
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self { id: id.into(), title: title.into(), description: None, extra: JsonMap::new() }
    }

    /// Adds a description under the title.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// `action` of a CTA URL message: `{"name":"cta_url","parameters":{"display_text":…,"url":…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtaUrlAction {
    /// Always `cta_url`.
    pub name: String,
    /// The button's label and target.
    pub parameters: CtaUrlParameters,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `parameters` of a CTA URL action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtaUrlParameters {
    /// At most 20 characters.
    pub display_text: String,
    /// An `https://` URL.
    pub url: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a flow message: `{"name":"flow","parameters":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowAction {
    /// Always `flow`.
    pub name: String,
    /// Which Flow to open, and how.
    pub parameters: FlowParameters,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `parameters` of a flow action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowParameters {
    /// `"3"` at the time of writing.
    pub flow_message_version: String,
    /// A token the business chooses, echoed in the Flow's responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// The Flow by id (or by `flow_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// The Flow by name (or by `flow_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// The label of the button that opens the Flow.
    pub flow_cta: String,
    /// `navigate` or `data_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<String>,
    /// `draft` to test an unpublished Flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The first screen and its data, for `navigate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_payload: Option<FlowActionPayload>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl FlowParameters {
    /// Opens the Flow `flow_id` with a button labelled `flow_cta` (message version 3).
    #[must_use]
    pub fn by_id(
        flow_id: impl Into<String>,
        flow_token: impl Into<String>,
        flow_cta: impl Into<String>,
    ) -> Self {
        Self {
            flow_message_version: "3".to_owned(),
            flow_token: Some(flow_token.into()),
            flow_id: Some(flow_id.into()),
            flow_name: None,
            flow_cta: flow_cta.into(),
            flow_action: None,
            mode: None,
            flow_action_payload: None,
            extra: JsonMap::new(),
        }
    }

    /// Opens the Flow on `screen` with `data` (`flow_action: navigate`).
    #[must_use]
    pub fn navigate(mut self, screen: impl Into<String>, data: Option<Value>) -> Self {
        self.flow_action = Some("navigate".to_owned());
        self.flow_action_payload =
            Some(FlowActionPayload { screen: Some(screen.into()), data, extra: JsonMap::new() });
        self
    }
}

/// `flow_action_payload` of a flow action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowActionPayload {
    /// The id of the first screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// Data for that screen, as the Flow defines it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a single-product message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductAction {
    /// The catalog's id.
    pub catalog_id: String,
    /// The product's SKU in that catalog.
    pub product_retailer_id: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a multi-product message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductListAction {
    /// The catalog's id.
    pub catalog_id: String,
    /// At most 10 sections, at most 30 products in all.
    pub sections: Vec<ProductSection>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A section of a multi-product message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSection {
    /// The section's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The products shown.
    pub product_items: Vec<ProductItem>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ProductSection {
    /// A titled section of products given by their SKUs.
    #[must_use]
    pub fn new(title: impl Into<String>, product_retailer_ids: impl IntoIterator<Item = String>) -> Self {
        let product_items = product_retailer_ids
            .into_iter()
            .map(|id| ProductItem { product_retailer_id: id, extra: JsonMap::new() })
            .collect();
        Self { title: Some(title.into()), product_items, extra: JsonMap::new() }
    }
}

/// One product of a multi-product section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductItem {
    /// The product's SKU.
    pub product_retailer_id: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a catalog message: `{"name":"catalog_message","parameters":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogMessageAction {
    /// Always `catalog_message`.
    pub name: String,
    /// The thumbnail product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<CatalogParameters>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `parameters` of a catalog message action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogParameters {
    /// The product shown as the catalog's thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_product_retailer_id: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `action` of a location request: `{"name":"send_location"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationRequestAction {
    /// Always `send_location`.
    pub name: String,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}
