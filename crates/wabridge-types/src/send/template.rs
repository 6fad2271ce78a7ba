//! Template sends (`"type":"template"`, §1): the template's name and language, and the parameters that
//! fill its header, body and buttons.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::media::{Location, Media};
use super::wire::{
    JsonMap, MapWire, Tagged, map_serde, payload, put_opt, put_tagged, take_opt, take_tagged, to_payload,
};
use crate::limits::{TEMPLATE_BODY_PARAM_MAX, TEMPLATE_BUTTON_INDEX_MAX, TEMPLATE_HEADER_PARAM_MAX};
use crate::validate::{ValidationError, max_chars, required_chars};

/// `template` of a template message: an approved template by name and language, with parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// The template's language.
    pub language: Language,
    /// Parameters per component; absent for a template without variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Template {
    /// The template `name` in language `code` (such as `en_US`), without parameters.
    #[must_use]
    pub fn new(name: impl Into<String>, code: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            language: Language { code: code.into(), policy: None, extra: JsonMap::new() },
            components: None,
            extra: JsonMap::new(),
        }
    }

    /// Adds a component.
    #[must_use]
    pub fn component(mut self, component: Component) -> Self {
        self.components.get_or_insert_with(Vec::new).push(component);
        self
    }

    /// Fills a text header's variable.
    #[must_use]
    pub fn header_text(self, text: impl Into<String>) -> Self {
        self.component(Component::header([Parameter::text(text)]))
    }

    /// Fills a media or location header with one parameter (see [`Parameter::image`] and friends).
    #[must_use]
    pub fn header(self, parameter: Parameter) -> Self {
        self.component(Component::header([parameter]))
    }

    /// Fills the body's positional variables `{{1}}`, `{{2}}`, … in order.
    #[must_use]
    pub fn body_text<S: Into<String>>(self, texts: impl IntoIterator<Item = S>) -> Self {
        self.component(Component::body(texts.into_iter().map(Parameter::text)))
    }

    /// Fills the body's named variables (`{{first_name}}`) from `(name, text)` pairs.
    #[must_use]
    pub fn body_named<N: Into<String>, S: Into<String>>(
        self,
        pairs: impl IntoIterator<Item = (N, S)>,
    ) -> Self {
        self.component(Component::body(pairs.into_iter().map(|(n, t)| Parameter::named_text(n, t))))
    }

    /// Fills the body with any parameters (currency, date and time, …).
    #[must_use]
    pub fn body(self, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        self.component(Component::body(parameters))
    }

    /// Sets the payload returned when the quick-reply button at `index` is tapped.
    #[must_use]
    pub fn quick_reply_button(self, index: u8, payload: impl Into<String>) -> Self {
        self.component(Component::button(ButtonSubType::QuickReply, index, [Parameter::payload(payload)]))
    }

    /// Sets the variable suffix of the URL button at `index`.
    #[must_use]
    pub fn url_button(self, index: u8, suffix: impl Into<String>) -> Self {
        self.component(Component::button(ButtonSubType::Url, index, [Parameter::text(suffix)]))
    }

    /// Sets the code copied by the copy-code button at `index`.
    #[must_use]
    pub fn copy_code_button(self, index: u8, code: impl Into<String>) -> Self {
        self.component(Component::button(ButtonSubType::CopyCode, index, [Parameter::coupon_code(code)]))
    }

    /// Sets the flow token and initial data of the Flow button at `index`.
    #[must_use]
    pub fn flow_button(self, index: u8, flow_token: impl Into<String>, data: Option<Value>) -> Self {
        let action = ParameterAction {
            flow_token: Some(flow_token.into()),
            flow_action_data: data,
            thumbnail_product_retailer_id: None,
            extra: JsonMap::new(),
        };
        self.component(Component::button(ButtonSubType::Flow, index, [Parameter::action(action)]))
    }

    /// Checks name, language and the documented parameter limits.
    pub(crate) fn check(&self) -> Result<(), ValidationError> {
        required_chars(|| "template.name".to_owned(), &self.name, usize::MAX)?;
        required_chars(|| "template.language.code".to_owned(), &self.language.code, usize::MAX)?;
        for (i, component) in self.components.iter().flatten().enumerate() {
            component.check(&format!("template.components[{i}]"))?;
        }
        Ok(())
    }
}

/// `template.language`: the locale code and the (legacy) `deterministic` policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// Such as `en_US`.
    pub code: String,
    /// `deterministic`, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The kind of a template component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// `header`.
    Header,
    /// `body`.
    Body,
    /// `button`.
    Button,
    /// Any other kind (`carousel`, `limited_time_offer`, another spelling …), kept as sent.
    #[serde(untagged)]
    Other(String),
}

/// The sub-type of a button component. Spellings other than Meta's lower case are kept in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonSubType {
    /// `quick_reply`: a payload parameter.
    QuickReply,
    /// `url`: a text parameter appended to the button's URL.
    Url,
    /// `copy_code`: a coupon code parameter.
    CopyCode,
    /// `flow`: an action parameter with the flow token.
    Flow,
    /// `catalog`: an action parameter with the thumbnail product.
    Catalog,
    /// `mpm`: an action parameter with product sections.
    Mpm,
    /// Any other value, kept as sent.
    #[serde(untagged)]
    Other(String),
}

/// A button component's `index` (0 to 9), kept as Meta received it: a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ButtonIndex {
    /// `0`.
    Number(i64),
    /// `"0"`.
    Text(String),
}

impl ButtonIndex {
    /// The index as a number, when it is one.
    #[must_use]
    pub fn value(&self) -> Option<i64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.trim().parse().ok(),
        }
    }
}

/// A template component with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// `header`, `body` or `button`.
    #[serde(rename = "type")]
    pub kind: ComponentKind,
    /// Buttons only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<ButtonSubType>,
    /// Buttons only: the button's position, 0 to 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<ButtonIndex>,
    /// The values of the component's variables. Read from a list, or from a single object, as requests of
    /// Meta's own example collection send it (`"parameters": {"type":"text",…}`); always written as a list.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `parameters` as a list or as one object (read through `Value`, so a bad parameter keeps serde's own
/// precise error).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Parameter>>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(mut list)) => {
            list.iter_mut().for_each(nest_flat_media);
            serde_json::from_value(Value::Array(list)).map(Some).map_err(D::Error::custom)
        }
        Some(mut one) => {
            nest_flat_media(&mut one);
            serde_json::from_value(one).map(|p| Some(vec![p])).map_err(D::Error::custom)
        }
    }
}

/// A media parameter written flat, its fields beside `type` (`{"type":"image","link":…,"caption":…}`, as
/// On-Premises request collections send a template's media header), moved under the member named after its
/// type, the shape Meta takes (`{"type":"image","image":{"link":…}}`). A parameter that has that member, or
/// no `link` or `id`, is left as it is.
fn nest_flat_media(parameter: &mut Value) {
    const MEDIA_FIELDS: [&str; 4] = ["link", "id", "caption", "filename"];
    let Value::Object(fields) = parameter else { return };
    let Some(kind) = fields.get("type").and_then(Value::as_str).map(str::to_owned) else { return };
    if !matches!(kind.as_str(), "image" | "video" | "document")
        || fields.contains_key(&kind)
        || !(fields.contains_key("link") || fields.contains_key("id"))
    {
        return;
    }
    let media: JsonMap =
        MEDIA_FIELDS.iter().filter_map(|f| Some(((*f).to_owned(), fields.remove(*f)?))).collect();
    fields.insert(kind, Value::Object(media));
}

impl Component {
    fn with(kind: ComponentKind, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        Self {
            kind,
            sub_type: None,
            index: None,
            parameters: Some(parameters.into_iter().collect()),
            extra: JsonMap::new(),
        }
    }

    /// A header component.
    #[must_use]
    pub fn header(parameters: impl IntoIterator<Item = Parameter>) -> Self {
        Self::with(ComponentKind::Header, parameters)
    }

    /// A body component.
    #[must_use]
    pub fn body(parameters: impl IntoIterator<Item = Parameter>) -> Self {
        Self::with(ComponentKind::Body, parameters)
    }

    /// A button component; the index is sent as a string, as in Meta's examples.
    #[must_use]
    pub fn button(
        sub_type: ButtonSubType,
        index: u8,
        parameters: impl IntoIterator<Item = Parameter>,
    ) -> Self {
        Self {
            sub_type: Some(sub_type),
            index: Some(ButtonIndex::Text(index.to_string())),
            ..Self::with(ComponentKind::Button, parameters)
        }
    }

    fn check(&self, path: &str) -> Result<(), ValidationError> {
        let text_max = match self.kind {
            ComponentKind::Header => Some(TEMPLATE_HEADER_PARAM_MAX),
            ComponentKind::Body => Some(TEMPLATE_BODY_PARAM_MAX),
            ComponentKind::Button | ComponentKind::Other(_) => None,
        };
        if self.kind == ComponentKind::Button {
            if self.sub_type.is_none() {
                return Err(ValidationError::Missing { field: format!("{path}.sub_type") });
            }
            let index = self
                .index
                .as_ref()
                .ok_or_else(|| ValidationError::Missing { field: format!("{path}.index") })?;
            let max = i64::from(TEMPLATE_BUTTON_INDEX_MAX);
            if !index.value().is_some_and(|n| (0..=max).contains(&n)) {
                return Err(ValidationError::Invalid {
                    field: format!("{path}.index"),
                    reason: format!("must be a number from 0 to {max}, found {}", index_text(index)),
                });
            }
        }
        for (j, parameter) in self.parameters.iter().flatten().enumerate() {
            let at = format!("{path}.parameters[{j}]");
            match &parameter.value {
                ParameterValue::Text(text) => {
                    if let Some(limit) = text_max {
                        max_chars(|| format!("{at}.text"), text, limit)?;
                    }
                }
                ParameterValue::Image(m) => m.check_source(&format!("{at}.image"))?,
                ParameterValue::Video(m) => m.check_source(&format!("{at}.video"))?,
                ParameterValue::Document(m) => m.check_source(&format!("{at}.document"))?,
                _ => {}
            }
        }
        Ok(())
    }
}

fn index_text(index: &ButtonIndex) -> String {
    match index {
        ButtonIndex::Number(n) => n.to_string(),
        ButtonIndex::Text(s) => format!("{s:?}"),
    }
}

/// One parameter: `{"type":"<kind>","<kind>":…}`, with `parameter_name` for named variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The parameter's type and value.
    pub value: ParameterValue,
    /// The variable's name, for templates with named parameters.
    pub parameter_name: Option<String>,
    /// Members this crate does not know, kept as sent.
    pub extra: JsonMap,
}

/// The value of a template parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterValue {
    /// `text`: header at most 60 characters, body at most 1,024; a URL button's suffix.
    Text(String),
    /// `currency`: an amount with its fallback text.
    Currency(Currency),
    /// `date_time`: a date with its fallback text.
    DateTime(DateTime),
    /// `image` header.
    Image(Media),
    /// `video` header.
    Video(Media),
    /// `document` header.
    Document(Media),
    /// `location` header.
    Location(Location),
    /// `payload` of a quick-reply button.
    Payload(String),
    /// `coupon_code` of a copy-code button.
    CouponCode(String),
    /// `action` of a flow, catalog or multi-product button.
    Action(ParameterAction),
    /// A parameter type this crate does not know, with the member named after it if there was one.
    Unknown {
        /// The `type` value as sent.
        kind: String,
        /// The member named after `kind`.
        value: Option<Value>,
    },
}

impl Tagged for ParameterValue {
    fn kind(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Currency(_) => "currency",
            Self::DateTime(_) => "date_time",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Location(_) => "location",
            Self::Payload(_) => "payload",
            Self::CouponCode(_) => "coupon_code",
            Self::Action(_) => "action",
            Self::Unknown { kind, .. } => kind,
        }
    }

    fn payload(&self) -> Result<Option<Value>, serde_json::Error> {
        match self {
            Self::Text(s) | Self::Payload(s) | Self::CouponCode(s) => to_payload(s),
            Self::Currency(c) => to_payload(c),
            Self::DateTime(d) => to_payload(d),
            Self::Image(m) | Self::Video(m) | Self::Document(m) => to_payload(m),
            Self::Location(l) => to_payload(l),
            Self::Action(a) => to_payload(a),
            Self::Unknown { value, .. } => Ok(value.clone()),
        }
    }

    fn from_parts(kind: String, value: Option<Value>) -> Result<Self, String> {
        Ok(match kind.as_str() {
            "text" => Self::Text(payload(&kind, value)?),
            "currency" => Self::Currency(payload(&kind, value)?),
            "date_time" => Self::DateTime(payload(&kind, value)?),
            "image" => Self::Image(payload(&kind, value)?),
            "video" => Self::Video(payload(&kind, value)?),
            "document" => Self::Document(payload(&kind, value)?),
            "location" => Self::Location(payload(&kind, value)?),
            "payload" => Self::Payload(payload(&kind, value)?),
            "coupon_code" => Self::CouponCode(payload(&kind, value)?),
            "action" => Self::Action(payload(&kind, value)?),
            _ => Self::Unknown { kind, value },
        })
    }
}

impl MapWire for Parameter {
    fn to_map(&self) -> Result<JsonMap, serde_json::Error> {
        let mut map = self.extra.clone();
        put_tagged(&mut map, &self.value)?;
        put_opt(&mut map, "parameter_name", self.parameter_name.as_ref())?;
        Ok(map)
    }

    fn from_map(mut map: JsonMap) -> Result<Self, String> {
        let parameter_name = take_opt(&mut map, "parameter_name")?;
        let value = take_tagged(&mut map)?;
        Ok(Self { value, parameter_name, extra: map })
    }
}
map_serde!(Parameter);

impl Parameter {
    fn of(value: ParameterValue) -> Self {
        Self { value, parameter_name: None, extra: JsonMap::new() }
    }

    /// A positional text parameter.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::of(ParameterValue::Text(text.into()))
    }

    /// A text parameter for the named variable `{{name}}`.
    #[must_use]
    pub fn named_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self { parameter_name: Some(name.into()), ..Self::text(text) }
    }

    /// An amount in thousandths of the currency's unit (`amount_1000`: 100990 is 100.99), with the text
    /// shown where the amount cannot be localised.
    #[must_use]
    pub fn currency(fallback_value: impl Into<String>, code: impl Into<String>, amount_1000: i64) -> Self {
        Self::of(ParameterValue::Currency(Currency {
            fallback_value: fallback_value.into(),
            code: code.into(),
            amount_1000,
            extra: JsonMap::new(),
        }))
    }

    /// A date and time given by its display text (Meta shows the fallback value as is).
    #[must_use]
    pub fn date_time(fallback_value: impl Into<String>) -> Self {
        Self::of(ParameterValue::DateTime(DateTime::new(fallback_value)))
    }

    /// An image header.
    #[must_use]
    pub fn image(media: impl Into<Media>) -> Self {
        Self::of(ParameterValue::Image(media.into()))
    }

    /// A video header.
    #[must_use]
    pub fn video(media: impl Into<Media>) -> Self {
        Self::of(ParameterValue::Video(media.into()))
    }

    /// A document header.
    #[must_use]
    pub fn document(media: impl Into<Media>) -> Self {
        Self::of(ParameterValue::Document(media.into()))
    }

    /// A location header.
    #[must_use]
    pub fn location(location: Location) -> Self {
        Self::of(ParameterValue::Location(location))
    }

    /// A quick-reply button's payload.
    #[must_use]
    pub fn payload(payload: impl Into<String>) -> Self {
        Self::of(ParameterValue::Payload(payload.into()))
    }

    /// A copy-code button's code.
    #[must_use]
    pub fn coupon_code(code: impl Into<String>) -> Self {
        Self::of(ParameterValue::CouponCode(code.into()))
    }

    /// A flow, catalog or multi-product button's action.
    #[must_use]
    pub fn action(action: ParameterAction) -> Self {
        Self::of(ParameterValue::Action(action))
    }
}

/// `currency` of a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Currency {
    /// Shown where the amount cannot be localised.
    pub fallback_value: String,
    /// ISO 4217 code.
    pub code: String,
    /// The amount times 1,000.
    pub amount_1000: i64,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `date_time` of a parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateTime {
    /// The text shown.
    pub fallback_value: String,
    /// 1 (Monday) to 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<i64>,
    /// The year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i64>,
    /// 1 to 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<i64>,
    /// 1 to 31.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<i64>,
    /// 0 to 23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    /// 0 to 59.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    /// `GREGORIAN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Members this crate does not know, kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl DateTime {
    /// A date given only by its display text.
    #[must_use]
    pub fn new(fallback_value: impl Into<String>) -> Self {
        Self {
            fallback_value: fallback_value.into(),
            day_of_week: None,
            year: None,
            month: None,
            day_of_month: None,
            hour: None,
            minute: None,
            calendar: None,
            extra: JsonMap::new(),
        }
    }
}

/// `action` of a button parameter (flow, catalog, multi-product).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterAction {
    /// Flow buttons: the token echoed in the Flow's responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// Flow buttons: the first screen's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_data: Option<Value>,
    /// Catalog and multi-product buttons: the thumbnail product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_product_retailer_id: Option<String>,
    /// Members this crate does not know (a multi-product button's `sections`), kept as sent.
    #[serde(flatten)]
    pub extra: JsonMap,
}
