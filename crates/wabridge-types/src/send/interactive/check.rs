//! The documented limits of interactive messages (§1), checked before a send.

use std::collections::HashSet;

use super::{
    ButtonAction, CtaUrlAction, Header, HeaderContent, Interactive, InteractiveAction, ListAction,
    ProductListAction,
};
use crate::limits::{
    CTA_DISPLAY_TEXT_MAX, INTERACTIVE_BODY_TEXT_MAX, INTERACTIVE_FOOTER_TEXT_MAX,
    INTERACTIVE_HEADER_TEXT_MAX, LIST_BUTTON_MAX, LIST_ROW_DESCRIPTION_MAX, LIST_ROW_ID_MAX,
    LIST_ROW_TITLE_MAX, LIST_ROWS_TOTAL_MAX, LIST_SECTION_TITLE_MAX, LIST_SECTIONS_MAX,
    PRODUCT_ITEMS_TOTAL_MAX, PRODUCT_SECTIONS_MAX, REPLY_BUTTON_ID_MAX, REPLY_BUTTON_TITLE_MAX,
    REPLY_BUTTONS_MAX,
};
use crate::send::media::check_url;
use crate::validate::{ValidationError, count_between, max_chars, required_chars};

fn field(path: &str) -> impl Fn() -> String + '_ {
    move || path.to_owned()
}

impl Interactive {
    /// Checks header, body, footer and the action against the limits of the interactive type.
    /// Unknown types are only checked for header, body and footer lengths.
    pub(crate) fn check(&self) -> Result<(), ValidationError> {
        if let Some(header) = &self.header {
            check_header(header)?;
        }
        let body_required = matches!(
            self.action,
            InteractiveAction::Button(_)
                | InteractiveAction::List(_)
                | InteractiveAction::CtaUrl(_)
                | InteractiveAction::Flow(_)
                | InteractiveAction::ProductList(_)
        );
        match &self.body {
            Some(body) => {
                required_chars(field("interactive.body.text"), &body.text, INTERACTIVE_BODY_TEXT_MAX)?
            }
            None if body_required => {
                return Err(ValidationError::Missing { field: "interactive.body".to_owned() });
            }
            None => {}
        }
        if let Some(footer) = &self.footer {
            required_chars(field("interactive.footer.text"), &footer.text, INTERACTIVE_FOOTER_TEXT_MAX)?;
        }
        match &self.action {
            InteractiveAction::Button(action) => check_buttons(action),
            InteractiveAction::List(action) => {
                if let Some(h) = &self.header
                    && !matches!(h.content, HeaderContent::Text(_))
                {
                    return Err(ValidationError::Invalid {
                        field: "interactive.header.type".to_owned(),
                        reason: "a list message takes a text header only".to_owned(),
                    });
                }
                check_list(action)
            }
            InteractiveAction::CtaUrl(action) => check_cta_url(action),
            InteractiveAction::Product(_) if self.header.is_some() => Err(ValidationError::Invalid {
                field: "interactive.header".to_owned(),
                reason: "a single-product message takes no header".to_owned(),
            }),
            InteractiveAction::ProductList(action) => {
                if self.header.is_none() {
                    return Err(ValidationError::Missing { field: "interactive.header".to_owned() });
                }
                check_product_list(action)
            }
            InteractiveAction::Flow(_)
            | InteractiveAction::Product(_)
            | InteractiveAction::CatalogMessage(_)
            | InteractiveAction::LocationRequest(_)
            | InteractiveAction::Unknown { .. } => Ok(()),
        }
    }
}

fn check_header(header: &Header) -> Result<(), ValidationError> {
    match &header.content {
        HeaderContent::Text(text) => {
            required_chars(field("interactive.header.text"), text, INTERACTIVE_HEADER_TEXT_MAX)
        }
        HeaderContent::Image(media) => media.check_source("interactive.header.image"),
        HeaderContent::Video(media) => media.check_source("interactive.header.video"),
        HeaderContent::Document(media) => media.check_source("interactive.header.document"),
        HeaderContent::Unknown { .. } => Ok(()),
    }
}

fn check_buttons(action: &ButtonAction) -> Result<(), ValidationError> {
    count_between(field("interactive.action.buttons"), action.buttons.len(), 1, REPLY_BUTTONS_MAX)?;
    let mut titles = HashSet::new();
    for (i, button) in action.buttons.iter().enumerate() {
        let reply = &button.reply;
        required_chars(
            || format!("interactive.action.buttons[{i}].reply.id"),
            &reply.id,
            REPLY_BUTTON_ID_MAX,
        )?;
        let title = || format!("interactive.action.buttons[{i}].reply.title");
        required_chars(title, &reply.title, REPLY_BUTTON_TITLE_MAX)?;
        if !titles.insert(reply.title.as_str()) {
            return Err(ValidationError::Duplicate { field: title(), value: reply.title.clone() });
        }
    }
    Ok(())
}

fn check_list(action: &ListAction) -> Result<(), ValidationError> {
    required_chars(field("interactive.action.button"), &action.button, LIST_BUTTON_MAX)?;
    let sections = &action.sections;
    count_between(field("interactive.action.sections"), sections.len(), 1, LIST_SECTIONS_MAX)?;
    for (i, section) in sections.iter().enumerate() {
        let title = || format!("interactive.action.sections[{i}].title");
        match &section.title {
            Some(t) if sections.len() > 1 => required_chars(title, t, LIST_SECTION_TITLE_MAX)?,
            Some(t) => max_chars(title, t, LIST_SECTION_TITLE_MAX)?,
            None if sections.len() > 1 => return Err(ValidationError::Missing { field: title() }),
            None => {}
        }
        let rows = || format!("interactive.action.sections[{i}].rows");
        count_between(rows, section.rows.len(), 1, usize::MAX)?;
        for (j, row) in section.rows.iter().enumerate() {
            let at = |member: &str| format!("interactive.action.sections[{i}].rows[{j}].{member}");
            required_chars(|| at("id"), &row.id, LIST_ROW_ID_MAX)?;
            required_chars(|| at("title"), &row.title, LIST_ROW_TITLE_MAX)?;
            if let Some(description) = &row.description {
                max_chars(|| at("description"), description, LIST_ROW_DESCRIPTION_MAX)?;
            }
        }
    }
    let total = sections.iter().map(|s| s.rows.len()).sum();
    count_between(field("interactive.action.sections[*].rows"), total, 1, LIST_ROWS_TOTAL_MAX)
}

fn check_cta_url(action: &CtaUrlAction) -> Result<(), ValidationError> {
    let p = &action.parameters;
    required_chars(
        field("interactive.action.parameters.display_text"),
        &p.display_text,
        CTA_DISPLAY_TEXT_MAX,
    )?;
    check_url(field("interactive.action.parameters.url"), &p.url, true)
}

fn check_product_list(action: &ProductListAction) -> Result<(), ValidationError> {
    let sections = &action.sections;
    count_between(field("interactive.action.sections"), sections.len(), 1, PRODUCT_SECTIONS_MAX)?;
    let total = sections.iter().map(|s| s.product_items.len()).sum();
    count_between(field("interactive.action.sections[*].product_items"), total, 1, PRODUCT_ITEMS_TOTAL_MAX)
}
