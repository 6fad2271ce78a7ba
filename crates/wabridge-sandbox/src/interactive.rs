//! The checks Meta makes on interactive messages (`cloud-api.md` §1) beyond the lengths and counts that
//! `OutboundMessage::validate` covers: the interactive type is one Meta knows, reply buttons are of type
//! `reply`, `action.name` is the fixed name of its type, and a Flow says which Flow it opens and, when it
//! navigates, on which screen. Missing members are 131008, wrong values 131009, as for the rest of a send.

use wabridge_types::ValidationError;
use wabridge_types::send::{FlowParameters, Interactive, InteractiveAction};

/// Interactive types Meta documents that `wabridge-types` keeps as unknown: the Payments API's order
/// messages (`meta-examples/requests_and_responses.json`). Accepted without further checks.
const OTHER_KNOWN_TYPES: &[&str] = &["order_details", "order_status"];

/// The interactive types, for the details of a refusal.
const ALL_TYPES: &str = "button, list, cta_url, flow, product, product_list, catalog_message, \
                         location_request_message, order_details, order_status";

/// Checks an interactive message; the error names the field.
pub(crate) fn check(interactive: &Interactive) -> Result<(), ValidationError> {
    match &interactive.action {
        InteractiveAction::Button(action) => {
            for (i, button) in action.buttons.iter().enumerate() {
                fixed_value(&format!("interactive.action.buttons[{i}].type"), &button.kind, "reply")?;
            }
            Ok(())
        }
        InteractiveAction::CtaUrl(action) => fixed_value("interactive.action.name", &action.name, "cta_url"),
        InteractiveAction::Flow(action) => {
            fixed_value("interactive.action.name", &action.name, "flow")?;
            check_flow(&action.parameters)
        }
        InteractiveAction::CatalogMessage(action) => {
            fixed_value("interactive.action.name", &action.name, "catalog_message")
        }
        InteractiveAction::LocationRequest(action) => {
            fixed_value("interactive.action.name", &action.name, "send_location")
        }
        InteractiveAction::Unknown { kind } if OTHER_KNOWN_TYPES.contains(&kind.as_str()) => Ok(()),
        InteractiveAction::Unknown { kind } => Err(ValidationError::Invalid {
            field: "interactive.type".to_owned(),
            reason: format!("{kind:?} is not an interactive message type; expected one of {ALL_TYPES}"),
        }),
        InteractiveAction::List(_) | InteractiveAction::Product(_) | InteractiveAction::ProductList(_) => {
            Ok(())
        }
    }
}

/// `value` must be `expected`.
fn fixed_value(field: &str, value: &str, expected: &str) -> Result<(), ValidationError> {
    if value == expected {
        return Ok(());
    }
    Err(ValidationError::Invalid {
        field: field.to_owned(),
        reason: format!("must be {expected:?}, found {value:?}"),
    })
}

/// A Flow is opened by `flow_id` or by `flow_name` (one of them); `flow_action` is `navigate` or
/// `data_exchange`, and `navigate` names its first screen in `flow_action_payload.screen`; `mode` is
/// `draft` or `published`.
///
/// Meta's default `flow_action` is `navigate`; the screen is required here only when `navigate` is
/// written out, so a send that leaves both out (as `FlowParameters::by_id` builds it) stays accepted [R].
fn check_flow(p: &FlowParameters) -> Result<(), ValidationError> {
    const PARAMETERS: &str = "interactive.action.parameters";
    let filled = |v: Option<&str>| v.is_some_and(|s| !s.trim().is_empty());
    match (filled(p.flow_id.as_deref()), filled(p.flow_name.as_deref())) {
        (false, false) => {
            return Err(ValidationError::Missing { field: format!("{PARAMETERS}.flow_id (or flow_name)") });
        }
        (true, true) => {
            return Err(ValidationError::Conflict {
                field: PARAMETERS.to_owned(),
                first: "flow_id",
                second: "flow_name",
            });
        }
        _ => {}
    }
    match p.flow_action.as_deref() {
        None | Some("data_exchange") => {}
        Some("navigate") => {
            let screen = p.flow_action_payload.as_ref().and_then(|payload| payload.screen.as_deref());
            if !filled(screen) {
                return Err(ValidationError::Missing {
                    field: format!("{PARAMETERS}.flow_action_payload.screen"),
                });
            }
        }
        Some(other) => {
            return Err(ValidationError::Invalid {
                field: format!("{PARAMETERS}.flow_action"),
                reason: format!("must be \"navigate\" or \"data_exchange\", found {other:?}"),
            });
        }
    }
    match p.mode.as_deref() {
        None | Some("draft" | "published") => Ok(()),
        Some(other) => Err(ValidationError::Invalid {
            field: format!("{PARAMETERS}.mode"),
            reason: format!("must be \"draft\" or \"published\", found {other:?}"),
        }),
    }
}
