//! Interactive messages (`"type":"interactive"`, §1): reply buttons, lists, CTA URL, flows, products,
//! catalog and location requests. The message and its builders are here; headers, the typed actions
//! and the limit checks have a file each.

mod action;
mod check;
mod header;

use serde_json::Value;

pub use action::{
    ButtonAction, ButtonReply, CatalogMessageAction, CatalogParameters, CtaUrlAction, CtaUrlParameters,
    FlowAction, FlowActionPayload, FlowParameters, ListAction, ListRow, ListSection, LocationRequestAction,
    ProductAction, ProductItem, ProductListAction, ProductSection, ReplyButton,
};
pub use header::{Header, HeaderContent, TextObject};

use super::wire::{JsonMap, MapWire, map_serde, put_opt, take_opt, take_required, to_payload};

/// The `interactive` object: an optional header, body and footer around a typed `action`.
///
/// For an interactive type this crate does not know (for example `order_details`), `action` is
/// [`InteractiveAction::Unknown`] and every member except `type` stays untouched in `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactive {
    /// Text or media header (text only for lists; required for product lists; none for products).
    pub header: Option<Header>,
    /// The message text, at most 1,024 characters.
    pub body: Option<TextObject>,
    /// Small grey text under the body, at most 60 characters.
    pub footer: Option<TextObject>,
    /// The interactive type and its `action`.
    pub action: InteractiveAction,
    /// Members this crate does not know, kept as sent.
    pub extra: JsonMap,
}

/// The interactive type (`interactive.type`) together with its typed `action` object.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractiveAction {
    /// `button`: up to three reply buttons.
    Button(ButtonAction),
    /// `list`: a menu of rows in sections.
    List(ListAction),
    /// `cta_url`: one button opening a URL.
    CtaUrl(CtaUrlAction),
    /// `flow`: opens a WhatsApp Flow.
    Flow(FlowAction),
    /// `product`: one catalog item.
    Product(ProductAction),
    /// `product_list`: up to 30 catalog items in sections.
    ProductList(ProductListAction),
    /// `catalog_message`: the business's catalog.
    CatalogMessage(CatalogMessageAction),
    /// `location_request_message`: asks the user to share their location.
    LocationRequest(LocationRequestAction),
    /// A type this crate does not know; its members are in [`Interactive::extra`].
    Unknown {
        /// The `type` value as sent.
        kind: String,
    },
}

impl InteractiveAction {
    /// The `interactive.type` value.
    #[must_use]
    pub fn kind(&self) -> &str {
        match self {
            Self::Button(_) => "button",
            Self::List(_) => "list",
            Self::CtaUrl(_) => "cta_url",
            Self::Flow(_) => "flow",
            Self::Product(_) => "product",
            Self::ProductList(_) => "product_list",
            Self::CatalogMessage(_) => "catalog_message",
            Self::LocationRequest(_) => "location_request_message",
            Self::Unknown { kind } => kind,
        }
    }

    fn to_value(&self) -> Result<Option<Value>, serde_json::Error> {
        match self {
            Self::Button(a) => to_payload(a),
            Self::List(a) => to_payload(a),
            Self::CtaUrl(a) => to_payload(a),
            Self::Flow(a) => to_payload(a),
            Self::Product(a) => to_payload(a),
            Self::ProductList(a) => to_payload(a),
            Self::CatalogMessage(a) => to_payload(a),
            Self::LocationRequest(a) => to_payload(a),
            Self::Unknown { .. } => Ok(None),
        }
    }

    /// Reads the `action` member for a known type; `None` when the type is not known.
    fn take(kind: &str, map: &mut JsonMap) -> Result<Option<Self>, String> {
        Ok(Some(match kind {
            "button" => Self::Button(take_required(map, "action")?),
            "list" => Self::List(take_required(map, "action")?),
            "cta_url" => Self::CtaUrl(take_required(map, "action")?),
            "flow" => Self::Flow(take_required(map, "action")?),
            "product" => Self::Product(take_required(map, "action")?),
            "product_list" => Self::ProductList(take_required(map, "action")?),
            "catalog_message" => Self::CatalogMessage(take_required(map, "action")?),
            "location_request_message" => Self::LocationRequest(take_required(map, "action")?),
            _ => return Ok(None),
        }))
    }
}

impl MapWire for Interactive {
    fn to_map(&self) -> Result<JsonMap, serde_json::Error> {
        let mut map = self.extra.clone();
        map.insert("type".to_owned(), Value::String(self.action.kind().to_owned()));
        put_opt(&mut map, "header", self.header.as_ref())?;
        put_opt(&mut map, "body", self.body.as_ref())?;
        put_opt(&mut map, "footer", self.footer.as_ref())?;
        put_opt(&mut map, "action", self.action.to_value()?.as_ref())?;
        Ok(map)
    }

    fn from_map(mut map: JsonMap) -> Result<Self, String> {
        let kind: String = take_required(&mut map, "type")?;
        let Some(action) = InteractiveAction::take(&kind, &mut map)? else {
            let action = InteractiveAction::Unknown { kind };
            return Ok(Self { header: None, body: None, footer: None, action, extra: map });
        };
        Ok(Self {
            header: take_opt(&mut map, "header")?,
            body: take_opt(&mut map, "body")?,
            footer: take_opt(&mut map, "footer")?,
            action,
            extra: map,
        })
    }
}
map_serde!(Interactive);

impl Interactive {
    /// An interactive message with only an action; add body, header and footer with the `with_` methods.
    #[must_use]
    pub fn new(action: InteractiveAction) -> Self {
        Self { header: None, body: None, footer: None, action, extra: JsonMap::new() }
    }

    /// Reply buttons (1 to 3) under a body text.
    #[must_use]
    pub fn buttons(body: impl Into<String>, buttons: impl IntoIterator<Item = ReplyButton>) -> Self {
        let action = ButtonAction { buttons: buttons.into_iter().collect(), extra: JsonMap::new() };
        Self::new(InteractiveAction::Button(action)).with_body(body)
    }

    /// A list menu opened by the button labelled `button`.
    #[must_use]
    pub fn list(
        body: impl Into<String>,
        button: impl Into<String>,
        sections: impl IntoIterator<Item = ListSection>,
    ) -> Self {
        let action = ListAction {
            button: button.into(),
            sections: sections.into_iter().collect(),
            extra: JsonMap::new(),
        };
        Self::new(InteractiveAction::List(action)).with_body(body)
    }

    /// One button labelled `display_text` that opens `url` (https).
    #[must_use]
    pub fn cta_url(body: impl Into<String>, display_text: impl Into<String>, url: impl Into<String>) -> Self {
        let parameters =
            CtaUrlParameters { display_text: display_text.into(), url: url.into(), extra: JsonMap::new() };
        let action = CtaUrlAction { name: "cta_url".to_owned(), parameters, extra: JsonMap::new() };
        Self::new(InteractiveAction::CtaUrl(action)).with_body(body)
    }

    /// A button that opens a Flow.
    #[must_use]
    pub fn flow(body: impl Into<String>, parameters: FlowParameters) -> Self {
        let action = FlowAction { name: "flow".to_owned(), parameters, extra: JsonMap::new() };
        Self::new(InteractiveAction::Flow(action)).with_body(body)
    }

    /// One product of a catalog.
    #[must_use]
    pub fn product(catalog_id: impl Into<String>, product_retailer_id: impl Into<String>) -> Self {
        Self::new(InteractiveAction::Product(ProductAction {
            catalog_id: catalog_id.into(),
            product_retailer_id: product_retailer_id.into(),
            extra: JsonMap::new(),
        }))
    }

    /// Several products of a catalog in sections; a product list needs a text header.
    #[must_use]
    pub fn product_list(
        header: impl Into<String>,
        body: impl Into<String>,
        catalog_id: impl Into<String>,
        sections: impl IntoIterator<Item = ProductSection>,
    ) -> Self {
        let action = ProductListAction {
            catalog_id: catalog_id.into(),
            sections: sections.into_iter().collect(),
            extra: JsonMap::new(),
        };
        Self::new(InteractiveAction::ProductList(action)).with_header(Header::text(header)).with_body(body)
    }

    /// The business's catalog, optionally with one product as its thumbnail.
    #[must_use]
    pub fn catalog_message(body: impl Into<String>, thumbnail_product_retailer_id: Option<String>) -> Self {
        let parameters = thumbnail_product_retailer_id
            .map(|id| CatalogParameters { thumbnail_product_retailer_id: Some(id), extra: JsonMap::new() });
        let action =
            CatalogMessageAction { name: "catalog_message".to_owned(), parameters, extra: JsonMap::new() };
        Self::new(InteractiveAction::CatalogMessage(action)).with_body(body)
    }

    /// Asks the user to share their location.
    #[must_use]
    pub fn location_request(body: impl Into<String>) -> Self {
        let action = LocationRequestAction { name: "send_location".to_owned(), extra: JsonMap::new() };
        Self::new(InteractiveAction::LocationRequest(action)).with_body(body)
    }

    /// Sets the header.
    #[must_use]
    pub fn with_header(mut self, header: Header) -> Self {
        self.header = Some(header);
        self
    }

    /// Sets the body text.
    #[must_use]
    pub fn with_body(mut self, text: impl Into<String>) -> Self {
        self.body = Some(TextObject::new(text));
        self
    }

    /// Sets the footer text.
    #[must_use]
    pub fn with_footer(mut self, text: impl Into<String>) -> Self {
        self.footer = Some(TextObject::new(text));
        self
    }
}
