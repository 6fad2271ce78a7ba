//! `GET/POST/DELETE /{waba-id}/message_templates` and `POST /{template-id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Map;
use wabridge_types::response::{Cursors, Page, Paging};
use wabridge_types::template::{CreateTemplate, CreateTemplateResponse, TemplateDefinition, TemplateStatus};

use super::graph::{parse_json, success};
use crate::error::ApiError;
use crate::state::Shared;
use crate::templates::schedule_review;

const DEFAULT_LIMIT: usize = 25;

fn cursor(id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(c: &str) -> Result<u64, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::new(100, format!("Invalid parameter: cursor {c}")))
}

/// Lists templates with Graph paging (`limit`, `after`, `before`) and filters (`name` contains,
/// `status`, `language`, `category`).
pub(super) fn list(
    shared: &Shared,
    version: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| ApiError::new(100, "Param limit must be a positive number"))?,
    };
    let name = params.get("name");
    let status = params.get("status").map(|s| s.to_ascii_uppercase());
    let language = params.get("language");
    let category = params.get("category").map(|s| s.to_ascii_uppercase());
    let matching: Vec<(u64, Arc<TemplateDefinition>)> = shared
        .templates
        .all()
        .into_iter()
        .filter(|(_, t)| name.is_none_or(|n| t.name.contains(n.as_str())))
        .filter(|(_, t)| {
            status.as_deref().is_none_or(|s| t.status.as_ref().is_some_and(|ts| ts.as_str() == s))
        })
        .filter(|(_, t)| language.is_none_or(|l| &t.language == l))
        .filter(|(_, t)| {
            category.as_deref().is_none_or(|c| {
                t.category.as_ref().is_some_and(|tc| {
                    serde_json::to_value(tc).ok().and_then(|v| v.as_str().map(str::to_owned)).as_deref()
                        == Some(c)
                })
            })
        })
        .collect();
    let (start, end) = if let Some(after) = params.get("after") {
        let after = decode_cursor(after)?;
        let start = matching.iter().position(|(id, _)| *id > after).unwrap_or(matching.len());
        (start, start.saturating_add(limit).min(matching.len()))
    } else if let Some(before) = params.get("before") {
        let before = decode_cursor(before)?;
        let end = matching.iter().position(|(id, _)| *id >= before).unwrap_or(matching.len());
        (end.saturating_sub(limit), end)
    } else {
        (0, limit.min(matching.len()))
    };
    let page = &matching[start..end];
    let link = |key: &str, c: &str| {
        let mut query: Vec<String> = params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "after" | "before" | "access_token" | "appsecret_proof"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.sort();
        query.push(format!("{key}={c}"));
        format!(
            "{}/{version}/{}/message_templates?{}",
            shared.base_url,
            shared.config.waba_id,
            query.join("&")
        )
    };
    let paging = page.first().zip(page.last()).map(|((first, _), (last, _))| {
        let (before, after) = (cursor(*first), cursor(*last));
        Paging {
            next: (end < matching.len()).then(|| link("after", &after)),
            previous: (start > 0).then(|| link("before", &before)),
            cursors: Some(Cursors { before: Some(before), after: Some(after) }),
        }
    });
    let data: Vec<&TemplateDefinition> = page.iter().map(|(_, t)| &**t).collect();
    let page = Page { data, paging: Some(paging.unwrap_or_default()), extra: Map::new() };
    Ok(Json(page).into_response())
}

/// Creates a template (PENDING), to be approved or rejected after the review delay.
pub(super) fn create(shared: &Arc<Shared>, body: &[u8]) -> Result<Response, ApiError> {
    let request: CreateTemplate = parse_json(body)?;
    request.validate().map_err(|e| ApiError::new(100, format!("Invalid parameter: {e}")))?;
    let definition = TemplateDefinition {
        id: None,
        name: request.name,
        language: request.language,
        status: None,
        category: Some(request.category.clone()),
        components: request.components,
        parameter_format: request.parameter_format,
        extra: Map::new(),
    };
    let created = shared.templates.create(definition)?;
    schedule_review(shared, &created);
    let id = created.id.clone().unwrap_or_default();
    Ok(Json(CreateTemplateResponse { id, status: TemplateStatus::Pending, category: request.category })
        .into_response())
}

/// Edits a template's components or category; it goes back to review.
pub(super) fn edit(shared: &Arc<Shared>, id: &str, body: &[u8]) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Edit {
        #[serde(default)]
        components: Option<Vec<wabridge_types::template::TemplateComponent>>,
        #[serde(default)]
        category: Option<wabridge_types::template::TemplateCategory>,
    }
    let edit: Edit = parse_json(body)?;
    let updated = shared
        .templates
        .edit(id, edit.components, edit.category)
        .ok_or_else(|| ApiError::unknown_object(id, "post"))?;
    schedule_review(shared, &updated);
    Ok(success())
}

/// Deletes by `name` (every language), or by `hsm_id` and `name` (one template).
pub(super) fn delete(shared: &Shared, params: &HashMap<String, String>) -> Result<Response, ApiError> {
    let Some(name) = params.get("name") else {
        return Err(ApiError::new(131_008, "The parameter name is required."));
    };
    let deleted = shared.templates.delete(name, params.get("hsm_id").map(String::as_str));
    if deleted == 0 {
        let e = wabridge_types::GraphError::new(100, format!("Message template \"{name}\" not found"))
            .with_subcode(2_593_002);
        return Err(ApiError::from(e));
    }
    Ok(success())
}
