//! Message templates of a WABA: list (one page or all), create, delete (`cloud-api.md` §5).

use std::collections::HashSet;

use wabridge_types::ids::{TemplateId, WabaId};
use wabridge_types::response::Page;
use wabridge_types::template::{CreateTemplate, CreateTemplateResponse, TemplateDefinition};

use super::expect_success;
use crate::client::Client;
use crate::error::CloudError;
use crate::request::Call;

/// Which templates to list: every field is an optional query parameter of
/// `GET /{waba-id}/message_templates`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFilter {
    /// Only templates with this name.
    pub name: Option<String>,
    /// Only templates in this state (`APPROVED`, `PENDING`, …).
    pub status: Option<String>,
    /// Only templates of this category (`MARKETING`, `UTILITY`, `AUTHENTICATION`).
    pub category: Option<String>,
    /// Only templates in this language (`en_US`).
    pub language: Option<String>,
    /// The fields to return, comma separated; Meta's default set when `None`.
    pub fields: Option<String>,
    /// Templates per page.
    pub limit: Option<u32>,
    /// The cursor to start after (`paging.cursors.after` of a previous page).
    pub after: Option<String>,
}

impl TemplateFilter {
    /// Only templates with this name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only templates in this state.
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Templates per page.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Starts after this cursor.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    fn apply(&self, mut call: Call) -> Call {
        let pairs = [
            ("fields", self.fields.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("after", self.after.clone()),
            ("name", self.name.clone()),
            ("status", self.status.clone()),
            ("category", self.category.clone()),
            ("language", self.language.clone()),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                call = call.query(key, value);
            }
        }
        call
    }
}

impl Client {
    /// One page of a WABA's templates.
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn list_templates(
        &self,
        waba: &WabaId,
        filter: &TemplateFilter,
    ) -> Result<Page<TemplateDefinition>, CloudError> {
        self.call(filter.apply(Call::get(&[waba.as_str(), "message_templates"]))).await
    }

    /// Every template of a WABA matching `filter`, following the paging cursors until Meta sends no `next`
    /// (or repeats a cursor, which would otherwise loop forever).
    ///
    /// # Errors
    /// Any error of a call; templates already read are dropped.
    pub async fn all_templates(
        &self,
        waba: &WabaId,
        filter: &TemplateFilter,
    ) -> Result<Vec<TemplateDefinition>, CloudError> {
        let mut filter = filter.clone();
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        loop {
            let page = self.list_templates(waba, &filter).await?;
            let next = page.next_cursor().map(str::to_owned);
            all.extend(page.data);
            match next {
                Some(cursor) if seen.insert(cursor.clone()) => filter.after = Some(cursor),
                _ => return Ok(all),
            }
        }
    }

    /// Submits a template for review. It is checked first ([`CreateTemplate::validate`]).
    ///
    /// # Errors
    /// [`CloudError::Invalid`], or any error of the call.
    pub async fn create_template(
        &self,
        waba: &WabaId,
        template: &CreateTemplate,
    ) -> Result<CreateTemplateResponse, CloudError> {
        template.validate()?;
        self.call(Call::post(&[waba.as_str(), "message_templates"]).json(template)?).await
    }

    /// Deletes a template by name (every language of it), or only the one with `hsm_id`
    /// (`DELETE /{waba-id}/message_templates?name=…[&hsm_id=…]`).
    ///
    /// # Errors
    /// Any error of the call.
    pub async fn delete_template(
        &self,
        waba: &WabaId,
        name: &str,
        hsm_id: Option<&TemplateId>,
    ) -> Result<(), CloudError> {
        let mut call = Call::delete(&[waba.as_str(), "message_templates"]);
        if let Some(id) = hsm_id {
            call = call.query("hsm_id", id.as_str());
        }
        call = call.query("name", name);
        expect_success(&self.execute(&call).await?)
    }
}
