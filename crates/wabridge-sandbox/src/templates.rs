//! Message templates: the WABA's definitions, their review, and the checks Meta makes when one is sent
//! (132001 missing, 132015 paused, 132016 disabled, 132000 parameter count, 132012 parameter format,
//! 131009 unknown button sub-type, 132005 text too long once the parameters are filled in).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::{Map, json};
use wabridge_types::send::{ButtonSubType, ComponentKind, Parameter, ParameterValue, Template};
use wabridge_types::template::{
    ParameterFormat, TemplateButton, TemplateCategory, TemplateComponent, TemplateDefinition, TemplateStatus,
};

use crate::error::ApiError;

/// The templates of the WABA, by id (ids increase with creation, which gives the listing order).
#[derive(Debug, Default)]
pub(crate) struct TemplateStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: BTreeMap<u64, Arc<TemplateDefinition>>,
    by_key: HashMap<(String, String), u64>,
    next_id: u64,
}

const FIRST_ID: u64 = 1_192_339_204_654_487;

impl TemplateStore {
    pub(crate) fn new(initial: &[TemplateDefinition]) -> Self {
        let store = Self::default();
        store.replace_all(initial);
        store
    }

    /// Replaces every template with `initial` (ids assigned where missing).
    pub(crate) fn replace_all(&self, initial: &[TemplateDefinition]) {
        let mut inner = write(&self.inner);
        *inner = Inner { next_id: FIRST_ID, ..Inner::default() };
        for t in initial {
            let mut t = t.clone();
            let id = t.id.as_ref().and_then(|id| id.as_str().parse::<u64>().ok()).unwrap_or(inner.next_id);
            t.id = Some(id.to_string().into());
            t.status.get_or_insert(TemplateStatus::Approved);
            inner.next_id = inner.next_id.max(id + 1);
            inner.by_key.insert((t.name.clone(), t.language.clone()), id);
            inner.by_id.insert(id, Arc::new(t));
        }
    }

    /// Adds a new template as PENDING; refuses a name and language that exist already.
    pub(crate) fn create(&self, mut t: TemplateDefinition) -> Result<Arc<TemplateDefinition>, ApiError> {
        let mut inner = write(&self.inner);
        let key = (t.name.clone(), t.language.clone());
        if inner.by_key.contains_key(&key) {
            let details =
                format!("Content in this language already exists for template {} ({})", key.0, key.1);
            return Err(ApiError::from(
                wabridge_types::GraphError::new(100, details).with_subcode(2_388_024),
            ));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        t.id = Some(id.to_string().into());
        t.status = Some(TemplateStatus::Pending);
        let t = Arc::new(t);
        inner.by_key.insert(key, id);
        inner.by_id.insert(id, t.clone());
        Ok(t)
    }

    /// Sets a template's status; returns the updated definition.
    pub(crate) fn set_status(&self, id: &str, status: TemplateStatus) -> Option<Arc<TemplateDefinition>> {
        let id: u64 = id.parse().ok()?;
        let mut inner = write(&self.inner);
        let current = inner.by_id.get(&id)?;
        let mut updated = (**current).clone();
        updated.status = Some(status);
        let updated = Arc::new(updated);
        inner.by_id.insert(id, updated.clone());
        Some(updated)
    }

    /// Replaces a template's components or category and puts it back to PENDING.
    pub(crate) fn edit(
        &self,
        id: &str,
        components: Option<Vec<TemplateComponent>>,
        category: Option<TemplateCategory>,
    ) -> Option<Arc<TemplateDefinition>> {
        let id: u64 = id.parse().ok()?;
        let mut inner = write(&self.inner);
        let mut updated = (**inner.by_id.get(&id)?).clone();
        if let Some(c) = components {
            updated.components = c;
        }
        if let Some(c) = category {
            updated.category = Some(c);
        }
        updated.status = Some(TemplateStatus::Pending);
        let updated = Arc::new(updated);
        inner.by_id.insert(id, updated.clone());
        Some(updated)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<TemplateDefinition>> {
        let id: u64 = id.parse().ok()?;
        read(&self.inner).by_id.get(&id).cloned()
    }

    /// The template with this name in this language, and whether the name exists in any language.
    pub(crate) fn find(&self, name: &str, language: &str) -> (Option<Arc<TemplateDefinition>>, bool) {
        let inner = read(&self.inner);
        if let Some(id) = inner.by_key.get(&(name.to_owned(), language.to_owned())) {
            return (inner.by_id.get(id).cloned(), true);
        }
        (None, inner.by_key.keys().any(|(n, _)| n == name))
    }

    /// Every template, in id order, with its numeric id.
    pub(crate) fn all(&self) -> Vec<(u64, Arc<TemplateDefinition>)> {
        read(&self.inner).by_id.iter().map(|(id, t)| (*id, t.clone())).collect()
    }

    /// Deletes the templates called `name` (all languages), or only the one with `hsm_id`. Returns how
    /// many were deleted.
    pub(crate) fn delete(&self, name: &str, hsm_id: Option<&str>) -> usize {
        let mut inner = write(&self.inner);
        let doomed: Vec<u64> = inner
            .by_id
            .iter()
            .filter(|(id, t)| t.name == name && hsm_id.is_none_or(|h| h == id.to_string()))
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            if let Some(t) = inner.by_id.remove(id) {
                inner.by_key.remove(&(t.name.clone(), t.language.clone()));
            }
        }
        doomed.len()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks a template send against the definition, as Meta does; returns the template's category
/// (lower case, for pricing) when the send may go.
pub(crate) fn check_send(store: &TemplateStore, send: &Template) -> Result<String, ApiError> {
    let (found, name_exists) = store.find(&send.name, &send.language.code);
    let Some(t) = found else {
        let details = if name_exists {
            format!("template name ({}) does not exist in {}", send.name, send.language.code)
        } else {
            format!("template name ({}) does not exist in the WABA", send.name)
        };
        return Err(ApiError::new(132_001, details));
    };
    match t.status.as_ref() {
        Some(TemplateStatus::Approved) => {}
        Some(TemplateStatus::Paused) => {
            return Err(ApiError::new(132_015, format!("Template {} is paused due to low quality", t.name)));
        }
        Some(TemplateStatus::Disabled) => {
            return Err(ApiError::new(132_016, format!("Template {} has been disabled", t.name)));
        }
        other => {
            let status = other.map_or("UNKNOWN", TemplateStatus::as_str);
            let details = format!("template name ({}) is not approved (status {status})", t.name);
            return Err(ApiError::new(132_001, details));
        }
    }
    check_parameters(&t, send)?;
    let category = match &t.category {
        Some(TemplateCategory::Marketing) => "marketing".to_owned(),
        Some(TemplateCategory::Authentication) => "authentication".to_owned(),
        Some(TemplateCategory::Other(c)) => c.to_ascii_lowercase(),
        Some(TemplateCategory::Utility) | None => "utility".to_owned(),
    };
    Ok(category)
}

/// The longest template body once its parameters are filled in (132005, "hydrated text too long"):
/// 1,024 characters, the length of a template body; 32,768 for a template that has only a body
/// (`cloud-api.md` §1 [R]).
const HYDRATED_BODY_MAX: usize = 1024;
const HYDRATED_BODY_ONLY_MAX: usize = 32_768;
/// The longest text header once filled in: 60 characters, a text header's length.
const HYDRATED_HEADER_MAX: usize = 60;

fn check_parameters(t: &TemplateDefinition, send: &Template) -> Result<(), ApiError> {
    let shape = t.shape();
    let named = t.parameter_format == Some(ParameterFormat::Named);
    let mut header: &[Parameter] = &[];
    let mut body: &[Parameter] = &[];
    let mut buttons: Vec<(i64, &'static str, &[Parameter])> = Vec::new();
    for (i, c) in send.components.iter().flatten().enumerate() {
        let params = c.parameters.as_deref().unwrap_or_default();
        match &c.kind {
            ComponentKind::Header => header = params,
            ComponentKind::Body => body = params,
            ComponentKind::Button => {
                let index = c.index.as_ref().and_then(|i| i.value()).unwrap_or(-1);
                if let Some(sub) = &c.sub_type {
                    buttons.push((index, button_kind(sub, i)?, params));
                }
            }
            ComponentKind::Other(_) => {}
        }
    }
    // Header: a media header takes exactly one parameter of its kind; a text header one per placeholder.
    match shape.header_format.as_deref() {
        Some(format @ ("IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION")) => {
            let [p] = header else {
                return Err(count_error("header", 1, header.len()));
            };
            let matches = matches!(
                (format, &p.value),
                ("IMAGE", ParameterValue::Image(_))
                    | ("VIDEO", ParameterValue::Video(_))
                    | ("DOCUMENT", ParameterValue::Document(_))
                    | ("LOCATION", ParameterValue::Location(_))
            );
            if !matches {
                return Err(ApiError::new(
                    132_012,
                    format!(
                        "header: parameter format does not match format in the created template ({format})"
                    ),
                ));
            }
        }
        _ => check_text_params("header", &shape.header_params, header, named)?,
    }
    check_text_params("body", &shape.body_params, body, named)?;
    // Buttons: URL buttons with a placeholder need a text parameter; quick replies take a payload.
    for index in &shape.dynamic_url_buttons {
        let given = buttons.iter().find(|(i, _, _)| usize::try_from(*i).ok() == Some(*index));
        match given {
            None => return Err(count_error(&format!("button at index {index}"), 1, 0)),
            Some((_, _, [p])) if matches!(p.value, ParameterValue::Text(_)) => {}
            Some((_, _, params)) if params.len() != 1 => {
                return Err(count_error(&format!("button at index {index}"), 1, params.len()));
            }
            Some(_) => {
                return Err(ApiError::new(
                    132_012,
                    format!("button at index {index}: expected a text parameter"),
                ));
            }
        }
    }
    for (index, expected, _) in &buttons {
        let Some(kind) = usize::try_from(*index).ok().and_then(|i| shape.buttons.get(i)) else {
            return Err(ApiError::new(
                132_000,
                format!("button at index {index}: the template has {} buttons", shape.buttons.len()),
            ));
        };
        if kind != expected && !(*expected == "COPY_CODE" && kind == "OTP") {
            return Err(ApiError::new(
                132_012,
                format!("button at index {index}: the template's button is {kind}"),
            ));
        }
    }
    check_hydrated_lengths(t, header, body, named)
}

/// The template button type a send's `sub_type` fills; an unknown sub-type is refused (131009) rather
/// than read as whatever the template's button is.
///
/// Meta reads the sub-type without regard to case: its own "Send Catalog Template Message" example sends
/// `"sub_type": "CATALOG"` and is answered 200. The wire type keeps any spelling other than the lower-case
/// one in `Other` so that a request is forwarded byte for byte as the application wrote it; the
/// case-insensitive reading is therefore done here, where the send is judged, and not in the type.
fn button_kind(sub: &ButtonSubType, component: usize) -> Result<&'static str, ApiError> {
    Ok(match sub {
        ButtonSubType::QuickReply => "QUICK_REPLY",
        ButtonSubType::Url => "URL",
        ButtonSubType::CopyCode => "COPY_CODE",
        ButtonSubType::Flow => "FLOW",
        ButtonSubType::Catalog => "CATALOG",
        ButtonSubType::Mpm => "MPM",
        ButtonSubType::Other(other) => {
            const KNOWN: [(&str, &str); 6] = [
                ("quick_reply", "QUICK_REPLY"),
                ("url", "URL"),
                ("copy_code", "COPY_CODE"),
                ("flow", "FLOW"),
                ("catalog", "CATALOG"),
                ("mpm", "MPM"),
            ];
            if let Some((_, kind)) = KNOWN.iter().find(|(name, _)| name.eq_ignore_ascii_case(other)) {
                return Ok(kind);
            }
            return Err(ApiError::new(
                131_009,
                format!(
                    "Param template.components[{component}].sub_type: {other:?} is not a button sub_type; \
                     expected quick_reply, url, copy_code, flow, catalog or mpm"
                ),
            ));
        }
    })
}

fn check_text_params(
    where_: &str,
    expected: &[String],
    given: &[Parameter],
    named: bool,
) -> Result<(), ApiError> {
    if !named && expected.len() != given.len() {
        return Err(count_error(where_, expected.len(), given.len()));
    }
    let mut names: Vec<&str> = Vec::with_capacity(given.len());
    for (i, p) in given.iter().enumerate() {
        let textual = matches!(
            p.value,
            ParameterValue::Text(_) | ParameterValue::Currency(_) | ParameterValue::DateTime(_)
        );
        if !textual {
            return Err(ApiError::new(
                132_012,
                format!("{where_}: parameter {i} must be text, currency or date_time"),
            ));
        }
        if named {
            let Some(name) = p.parameter_name.as_deref() else {
                return Err(ApiError::new(
                    132_012,
                    format!("{where_}: parameter {i} needs a parameter_name"),
                ));
            };
            if !expected.iter().any(|e| e == name) {
                return Err(ApiError::new(
                    132_012,
                    format!("{where_}: parameter_name {name} is not a parameter of the template"),
                ));
            }
            if names.contains(&name) {
                return Err(ApiError::new(
                    132_012,
                    format!("{where_}: parameter_name {name} is given more than once"),
                ));
            }
            names.push(name);
        }
    }
    if named {
        // Every name given is the template's and none twice: what is left is missing.
        let missing: Vec<&str> = expected.iter().map(String::as_str).filter(|e| !names.contains(e)).collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                132_000,
                format!(
                    "{where_}: number of localizable_params ({}) does not match the expected number of params \
                     ({}): no parameter for {}",
                    given.len(),
                    expected.len(),
                    missing.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// 132005 when the header or body text, with the parameters in place of its placeholders, is longer
/// than Meta lets it be. Runs after the parameter checks, so every placeholder has its parameter.
fn check_hydrated_lengths(
    t: &TemplateDefinition,
    header: &[Parameter],
    body: &[Parameter],
    named: bool,
) -> Result<(), ApiError> {
    let text_of = |kind: &str| {
        t.components.iter().find(|c| c.kind.eq_ignore_ascii_case(kind)).and_then(|c| c.text.as_deref())
    };
    let body_only = t.components.iter().all(|c| c.kind.eq_ignore_ascii_case("BODY"));
    let body_max = if body_only { HYDRATED_BODY_ONLY_MAX } else { HYDRATED_BODY_MAX };
    let header_is_text = t
        .components
        .iter()
        .find(|c| c.kind.eq_ignore_ascii_case("HEADER"))
        .is_some_and(|c| c.format.as_deref().is_none_or(|f| f.eq_ignore_ascii_case("TEXT")));
    let parts = [
        ("header", header_is_text.then(|| text_of("HEADER")).flatten(), header, HYDRATED_HEADER_MAX),
        ("body", text_of("BODY"), body, body_max),
    ];
    for (where_, text, params, max) in parts {
        let Some(text) = text else { continue };
        let length = hydrate(text, params, named).chars().count();
        if length > max {
            return Err(ApiError::new(
                132_005,
                format!(
                    "{where_}: the text with its parameters filled in is {length} characters long; at most {max} allowed"
                ),
            ));
        }
    }
    Ok(())
}

/// `text` with each `{{placeholder}}` replaced by its parameter: `{{n}}` by the n-th, `{{name}}` by the
/// one with that `parameter_name`. A placeholder without a parameter stays as it is.
fn hydrate(text: &str, params: &[Parameter], named: bool) -> String {
    let value = |p: &Parameter| match &p.value {
        ParameterValue::Text(s) => s.clone(),
        ParameterValue::Currency(c) => c.fallback_value.clone(),
        ParameterValue::DateTime(d) => d.fallback_value.clone(),
        _ => String::new(),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let key = after[..end].trim();
        let param = if named {
            params.iter().find(|p| p.parameter_name.as_deref() == Some(key))
        } else {
            key.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|n| params.get(n))
        };
        out.push_str(&rest[..start]);
        match param {
            Some(p) => out.push_str(&value(p)),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn count_error(where_: &str, expected: usize, found: usize) -> ApiError {
    ApiError::new(
        132_000,
        format!(
            "{where_}: number of localizable_params ({found}) does not match the expected number of params ({expected})"
        ),
    )
}

/// The templates present out of the box, all approved.
#[must_use]
pub(crate) fn builtin() -> Vec<TemplateDefinition> {
    vec![
        definition(
            "hello_world",
            TemplateCategory::Utility,
            None,
            vec![
                text_component("HEADER", Some("TEXT"), "Hello World"),
                text_component(
                    "BODY",
                    None,
                    "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp \
                     message notification from the Cloud API, hosted by Meta. Thank you for taking the time to \
                     test with us.",
                ),
                text_component("FOOTER", None, "WhatsApp Business Platform sample message"),
            ],
        ),
        definition(
            "order_update",
            TemplateCategory::Utility,
            None,
            vec![
                text_component(
                    "BODY",
                    None,
                    "Hi {{1}}, your order {{2}} has shipped and will arrive on {{3}}.",
                ),
                buttons(vec![button("URL", "Track order", Some("https://example.com/track/{{1}}"))]),
            ],
        ),
        definition(
            "welcome_named",
            TemplateCategory::Marketing,
            Some(ParameterFormat::Named),
            vec![
                text_component("BODY", None, "Welcome {{first_name}}! Use code {{code}} for 10% off."),
                buttons(vec![button("QUICK_REPLY", "Stop promotions", None)]),
            ],
        ),
        definition(
            "image_offer",
            TemplateCategory::Marketing,
            None,
            vec![
                TemplateComponent {
                    kind: "HEADER".to_owned(),
                    format: Some("IMAGE".to_owned()),
                    text: None,
                    buttons: None,
                    example: Some(json!({"header_handle": ["https://example.com/offer.jpg"]})),
                    extra: Map::new(),
                },
                text_component("BODY", None, "Today only: {{1}} off everything."),
            ],
        ),
    ]
}

fn definition(
    name: &str,
    category: TemplateCategory,
    parameter_format: Option<ParameterFormat>,
    components: Vec<TemplateComponent>,
) -> TemplateDefinition {
    TemplateDefinition {
        id: None,
        name: name.to_owned(),
        language: "en_US".to_owned(),
        status: Some(TemplateStatus::Approved),
        category: Some(category),
        components,
        parameter_format,
        extra: Map::new(),
    }
}

fn text_component(kind: &str, format: Option<&str>, text: &str) -> TemplateComponent {
    TemplateComponent {
        kind: kind.to_owned(),
        format: format.map(str::to_owned),
        text: Some(text.to_owned()),
        buttons: None,
        example: None,
        extra: Map::new(),
    }
}

fn buttons(buttons: Vec<TemplateButton>) -> TemplateComponent {
    TemplateComponent {
        kind: "BUTTONS".to_owned(),
        format: None,
        text: None,
        buttons: Some(buttons),
        example: None,
        extra: Map::new(),
    }
}

fn button(kind: &str, text: &str, url: Option<&str>) -> TemplateButton {
    TemplateButton {
        kind: kind.to_owned(),
        text: Some(text.to_owned()),
        url: url.map(str::to_owned),
        extra: Map::new(),
    }
}

/// Announces a template's status in a `message_template_status_update` webhook.
pub(crate) fn announce_status(shared: &crate::state::Shared, t: &TemplateDefinition, reason: &str) {
    use crate::webhooks::{Event, EventBody};
    let id = t.id.as_ref().map(|id| id.as_str().to_owned()).unwrap_or_default();
    let status = t.status.as_ref().map_or("PENDING", TemplateStatus::as_str);
    let category = match &t.category {
        Some(TemplateCategory::Marketing) => Some("MARKETING".to_owned()),
        Some(TemplateCategory::Utility) => Some("UTILITY".to_owned()),
        Some(TemplateCategory::Authentication) => Some("AUTHENTICATION".to_owned()),
        Some(TemplateCategory::Other(c)) => Some(c.clone()),
        None => None,
    };
    let value = json!({
        "event": status,
        "message_template_id": id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)),
        "message_template_name": t.name,
        "message_template_language": t.language,
        "reason": reason,
        "message_template_category": category,
    });
    let change =
        wabridge_types::webhook::ChangeValue::from_parts("message_template_status_update".to_owned(), value);
    let key = crate::chaos::hash_bytes(format!("template:{id}:{status}").as_bytes());
    shared.hub.emit(shared, Event::new(key, EventBody::Change(change)));
}

/// Schedules the review of a PENDING template: APPROVED, or REJECTED when its name contains one of the
/// configured markers, after the configured delay.
pub(crate) fn schedule_review(shared: &Arc<crate::state::Shared>, t: &TemplateDefinition) {
    let Some(id) = t.id.as_ref().map(|id| id.as_str().to_owned()) else { return };
    let reject =
        shared.config.templates.reject_names_containing.iter().any(|m| !m.is_empty() && t.name.contains(m));
    let delay = shared.config.templates.review_delay;
    let task_shared = shared.clone();
    shared.tasks.spawn(async move {
        tokio::select! {
            () = task_shared.cancel.cancelled() => {}
            () = tokio::time::sleep(delay) => {
                let (status, reason) =
                    if reject { (TemplateStatus::Rejected, "INVALID_FORMAT") } else { (TemplateStatus::Approved, "NONE") };
                if let Some(updated) = task_shared.templates.set_status(&id, status) {
                    announce_status(&task_shared, &updated, reason);
                }
            }
        }
    });
}
