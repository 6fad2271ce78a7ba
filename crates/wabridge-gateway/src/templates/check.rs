//! Checking a template send against the template's definition: it exists, is approved, has the language,
//! and gets as many parameters of the right kinds as its header, body and dynamic URL buttons need.

use serde_json::Value;
use wabridge_types::template::{ParameterFormat, TemplateDefinition, TemplateStatus};

/// Why a template send cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    /// No template of that name (or in that language) on the WABA.
    Missing(String),
    /// The template exists but is not approved (its status).
    NotApproved(TemplateStatus, String),
    /// A component gets the wrong number of parameters.
    ParamCount(String),
    /// A parameter has the wrong kind, or a wrong `parameter_name`.
    ParamFormat(String),
    /// A component the template needs (a media header, a dynamic URL button) is not in the send.
    ComponentMissing(String),
}

impl TemplateProblem {
    /// What is wrong, for the caller.
    #[must_use]
    pub fn details(&self) -> &str {
        match self {
            Self::Missing(d)
            | Self::NotApproved(_, d)
            | Self::ParamCount(d)
            | Self::ParamFormat(d)
            | Self::ComponentMissing(d) => d,
        }
    }

    /// The On-Premises template error: code and title (`onprem-error-codes.json`, `template_errors`).
    #[must_use]
    pub fn onprem(&self) -> (u32, &'static str) {
        match self {
            Self::Missing(_) | Self::NotApproved(..) => (2001, "Template missing"),
            Self::ParamCount(_) => (2000, "Template param count mismatch"),
            Self::ParamFormat(_) => (2012, "Template parameter format mismatch"),
            Self::ComponentMissing(_) => (2009, "Template required component missing"),
        }
    }

    /// The Graph error code Meta answers the same send with (`cloud-api.md` §2).
    #[must_use]
    pub fn graph_code(&self) -> i64 {
        match self {
            Self::Missing(_) => 132_001,
            Self::NotApproved(TemplateStatus::Paused, _) => 132_015,
            Self::NotApproved(TemplateStatus::Disabled, _) => 132_016,
            Self::NotApproved(..) => 132_001,
            Self::ParamCount(_) | Self::ComponentMissing(_) => 132_000,
            Self::ParamFormat(_) => 132_012,
        }
    }
}

/// Checks `template` (the send's `template` object) against the `definitions` of its WABA.
///
/// # Errors
/// The first problem found.
pub fn check(definitions: &[TemplateDefinition], template: &Value) -> Result<(), TemplateProblem> {
    let name = template.get("name").and_then(Value::as_str).unwrap_or_default();
    let language = match template.get("language") {
        Some(Value::String(code)) => code.as_str(),
        Some(l) => l.get("code").and_then(Value::as_str).unwrap_or_default(),
        None => "",
    };
    let same_name: Vec<&TemplateDefinition> = definitions.iter().filter(|d| d.name == name).collect();
    if same_name.is_empty() {
        return Err(TemplateProblem::Missing(format!("template {name:?} does not exist on this WABA")));
    }
    let Some(def) = same_name.iter().find(|d| d.language == language) else {
        let languages: Vec<&str> = same_name.iter().map(|d| d.language.as_str()).collect();
        return Err(TemplateProblem::Missing(format!(
            "template {name:?} has no {language:?} translation; it exists in: {}",
            languages.join(", ")
        )));
    };
    if !def.is_approved() {
        let status = def.status.clone().unwrap_or(TemplateStatus::Pending);
        let details = format!("template {name:?} ({language}) is {}, not APPROVED", status.as_str());
        return Err(TemplateProblem::NotApproved(status, details));
    }
    let components: &[Value] =
        template.get("components").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let component = |kind: &str| {
        components
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(kind)))
    };
    let params = |c: Option<&Value>| -> Vec<Value> {
        c.and_then(|c| c.get("parameters")).and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let shape = def.shape();
    let header = params(component("header"));
    match shape.header_format.as_deref() {
        Some(media @ ("IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION")) => {
            let kind = media.to_ascii_lowercase();
            match header.as_slice() {
                [] => {
                    return Err(TemplateProblem::ComponentMissing(format!(
                        "header: the template's header is {media}; send a header component with one {kind} parameter"
                    )));
                }
                [p] if param_kind(p) == kind => {}
                [p] => {
                    return Err(TemplateProblem::ParamFormat(format!(
                        "header: expected a {kind} parameter, got {:?}",
                        param_kind(p)
                    )));
                }
                more => return Err(count("header", 1, more.len())),
            }
        }
        _ => {
            if header.len() != shape.header_params.len() {
                return Err(count("header", shape.header_params.len(), header.len()));
            }
            kinds("header", &header, &["text"])?;
        }
    }
    let body = params(component("body"));
    if body.len() != shape.body_params.len() {
        return Err(count("body", shape.body_params.len(), body.len()));
    }
    kinds("body", &body, &["text", "currency", "date_time"])?;
    if def.parameter_format == Some(ParameterFormat::Named) {
        for p in &body {
            let given = p.get("parameter_name").and_then(Value::as_str).unwrap_or_default();
            if !shape.body_params.iter().any(|e| e == given) {
                return Err(TemplateProblem::ParamFormat(format!(
                    "body: parameter_name {given:?} is not one of the template's ({})",
                    shape.body_params.join(", ")
                )));
            }
        }
    }
    for index in &shape.dynamic_url_buttons {
        let given = components.iter().any(|c| {
            c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("button"))
                && match c.get("index") {
                    Some(Value::String(s)) => s.parse::<usize>().ok() == Some(*index),
                    Some(Value::Number(n)) => n.as_u64() == u64::try_from(*index).ok(),
                    _ => false,
                }
                && c.get("parameters").and_then(Value::as_array).is_some_and(|p| p.len() == 1)
        });
        if !given {
            return Err(TemplateProblem::ComponentMissing(format!(
                "button {index}: the template's URL button has a placeholder; send a button component with \
                 sub_type url, index {index} and one text parameter"
            )));
        }
    }
    Ok(())
}

fn param_kind(p: &Value) -> String {
    p.get("type").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase()
}

fn count(where_: &str, expected: usize, given: usize) -> TemplateProblem {
    TemplateProblem::ParamCount(format!(
        "{where_}: the template expects {expected} parameter(s), the send has {given}"
    ))
}

fn kinds(where_: &str, params: &[Value], allowed: &[&str]) -> Result<(), TemplateProblem> {
    for (i, p) in params.iter().enumerate() {
        let kind = param_kind(p);
        if !allowed.contains(&kind.as_str()) {
            return Err(TemplateProblem::ParamFormat(format!(
                "{where_}: parameter {} has type {kind:?}; expected one of {}",
                i + 1,
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn defs() -> Vec<TemplateDefinition> {
        serde_json::from_value(json!([
            {"name": "order_update", "language": "en_US", "status": "APPROVED", "components": [
                {"type": "BODY", "text": "Hi {{1}}, order {{2}}"},
                {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x/{{1}}"}]}]},
            {"name": "promo", "language": "en_US", "status": "PAUSED", "components": []},
            {"name": "photo", "language": "de", "status": "APPROVED",
             "components": [{"type": "HEADER", "format": "IMAGE"}]}
        ]))
        .unwrap()
    }

    #[test]
    fn sends_are_checked() {
        let d = defs();
        let ok = json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "1"}]}]});
        assert_eq!(check(&d, &ok), Ok(()));
        let missing = check(&d, &json!({"name": "nope", "language": {"code": "en_US"}})).unwrap_err();
        assert_eq!(missing.graph_code(), 132_001);
        let lang = check(&d, &json!({"name": "order_update", "language": {"code": "fr"}})).unwrap_err();
        assert!(lang.details().contains("en_US"), "{lang:?}");
        let paused = check(&d, &json!({"name": "promo", "language": {"code": "en_US"}})).unwrap_err();
        assert_eq!(paused.graph_code(), 132_015);
        let few = json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "A"}]}]});
        assert_eq!(check(&d, &few).unwrap_err().onprem().0, 2000);
        let no_button = json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}]});
        assert_eq!(check(&d, &no_button).unwrap_err().onprem().0, 2009);
        let wrong_media = json!({"name": "photo", "language": {"code": "de"}, "components": [
            {"type": "header", "parameters": [{"type": "video", "video": {"id": "1"}}]}]});
        assert_eq!(check(&d, &wrong_media).unwrap_err().onprem().0, 2012);
    }
}
