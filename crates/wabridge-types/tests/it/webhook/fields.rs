//! Our fixtures of the change fields other than `messages`, and of unknown fields.

use wabridge_types::webhook::{ChangeValue, EventKind, QualityEvent, Scalar};

use super::{fixture, value_at};

#[test]
fn template_updates() {
    let (_, e) = fixture("templates.json");
    let ChangeValue::TemplateStatus(approved) = value_at(&e, 0, 0) else { panic!("template status") };
    assert_eq!(approved.event, "APPROVED");
    assert_eq!(approved.message_template_id.as_ref().unwrap().as_i64(), Some(770_000_000_000_001));
    let ChangeValue::TemplateStatus(paused) = value_at(&e, 0, 1) else { panic!("template status") };
    assert_eq!(paused.reason, None);
    assert!(paused.extra.contains_key("other_info"));
    let ChangeValue::TemplateQuality(quality) = value_at(&e, 0, 2) else { panic!("template quality") };
    assert_eq!(quality.new_quality_score.as_deref(), Some("YELLOW"));
    let ChangeValue::TemplateCategory(category) = value_at(&e, 0, 3) else { panic!("category") };
    assert_eq!(category.new_category.as_deref(), Some("MARKETING"));
    let ChangeValue::TemplateComponents(components) = value_at(&e, 0, 4) else { panic!("components") };
    assert_eq!(components.message_template_buttons.as_ref().unwrap().len(), 2);

    let events = e.events();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|ev| ev.kind == EventKind::Change));
    assert!(events[0].dedupe_key.starts_with("message_template_status_update:"));
    assert!(events[4].dedupe_key.starts_with("message_template_components_update:"));
    assert_eq!(events[2].payload["new_quality_score"], "YELLOW");
}

#[test]
fn phone_number_updates() {
    let (_, e) = fixture("phone_numbers.json");
    let quality = |i: usize| match value_at(&e, 0, i) {
        ChangeValue::PhoneNumberQuality(q) => q,
        other => panic!("not a quality update: {other:?}"),
    };
    assert_eq!(quality(0).event, QualityEvent::Flagged);
    assert_eq!(quality(0).current_limit.as_deref(), Some("TIER_1K"));
    assert_eq!(quality(1).event, QualityEvent::Unflagged);
    assert_eq!(quality(2).event, QualityEvent::Downgrade);
    assert_eq!(quality(3).event, QualityEvent::Upgrade);
    assert_eq!(quality(3).max_daily_conversations_per_business, Some(Scalar::Text("TIER_10K".into())));
    assert_eq!(quality(4).event, QualityEvent::ThroughputUpgrade);
    assert_eq!(quality(5).event, QualityEvent::Other("ONBOARDING".into()));
    let ChangeValue::PhoneNumberName(name) = value_at(&e, 0, 6) else { panic!("name update") };
    assert_eq!(name.decision.as_deref(), Some("APPROVED"));
    assert_eq!(name.rejection_reason, None);
    let ChangeValue::Security(security) = value_at(&e, 0, 7) else { panic!("security") };
    assert_eq!(security.event.as_deref(), Some("PIN_CHANGED"));

    let events = e.events();
    assert_eq!(events.len(), 8);
    assert_eq!(events[4].display_phone_number.as_deref(), Some("15550001111"));
    assert_eq!(events[4].phone_number_id, None);
}

#[test]
fn account_updates() {
    let (_, e) = fixture("account.json");
    let ChangeValue::Account(restriction) = value_at(&e, 0, 0) else { panic!("account update") };
    assert_eq!(restriction.event, "ACCOUNT_RESTRICTION");
    let info = &restriction.restriction_info.as_ref().unwrap()[0];
    assert_eq!(info.restriction_type.as_deref(), Some("RESTRICTED_BIZ_INITIATED_MESSAGING"));
    assert_eq!(info.expiration.as_ref().unwrap().as_i64(), Some(1_750_023_000));
    let ChangeValue::Account(violation) = value_at(&e, 0, 1) else { panic!("account update") };
    assert_eq!(violation.extra["violation_info"]["violation_type"], "SCAM");
    let ChangeValue::AccountReview(review) = value_at(&e, 0, 2) else { panic!("review") };
    assert_eq!(review.decision, "APPROVED");
    let ChangeValue::AccountAlerts(alert) = value_at(&e, 0, 3) else { panic!("alerts") };
    assert_eq!(alert.alert_info.as_ref().unwrap().alert_severity.as_deref(), Some("WARNING"));
    let ChangeValue::BusinessCapability(capability) = value_at(&e, 0, 4) else { panic!("capability") };
    assert_eq!(capability.max_daily_conversation_per_phone.as_ref().unwrap().as_i64(), Some(1000));
    assert_eq!(e.events().len(), 5);
}

#[test]
fn user_preferences() {
    let (_, e) = fixture("user_preferences.json");
    let ChangeValue::UserPreferences(value) = value_at(&e, 0, 0) else { panic!("user preferences") };
    let preference = &value.user_preferences.as_ref().unwrap()[0];
    assert_eq!(preference.value.as_deref(), Some("stop"));
    assert_eq!(preference.category.as_deref(), Some("marketing_messages"));
    let events = e.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Change);
    assert_eq!(events[0].field, "user_preferences");
    assert_eq!(events[0].phone_number_id.as_ref().unwrap().as_str(), "400000000000001");
}

#[test]
fn unknown_fields_and_misfit_values_are_kept() {
    let (_, e) = fixture("unknown_field.json");
    let change = &e.entry[0].changes[0];
    assert_eq!(change.field(), "calls");
    assert!(
        matches!(&change.value, ChangeValue::Other { field, value } if field == "calls" && value["calls"].is_array())
    );
    assert_eq!(change.extra["arrival_hint"], "experimental");
    // A known field whose value does not fit its type.
    let misfit = &e.entry[0].changes[1];
    assert_eq!(misfit.field(), "phone_number_quality_update");
    assert!(matches!(misfit.value, ChangeValue::Other { .. }));
    assert_eq!(e.extra["delivery_attempt"], 2);
    let events = e.events();
    assert_eq!(events.len(), 2);
    assert!(events[0].dedupe_key.starts_with("calls:"));
    assert_eq!(events[0].payload["calls"][0]["id"], "wacid.CALL01");
    assert_eq!(events[0].phone_number_id.as_ref().unwrap().as_str(), "400000000000001");
    assert_eq!(events[1].display_phone_number.as_deref(), Some("15550001111"));
}
