//! Templates: listing with paging and filters, the review lifecycle with its webhook, deletion, and the
//! checks of a template send.

use serde_json::json;
use wabridge_cloud::TemplateFilter;
use wabridge_sandbox::SandboxConfig;
use wabridge_types::send::{ButtonSubType, Component, Media, OutboundMessage, Parameter, Template};
use wabridge_types::template::{CreateTemplate, TemplateStatus};
use wabridge_types::webhook::ChangeValue;

use crate::support::{Harness, USER, WAIT, code, eventually, meta_example_body};

#[tokio::test]
async fn builtin_templates_are_listed_with_paging_and_filters() {
    let h = Harness::for_tests().await;
    let page = h.client.list_templates(&h.waba(), &TemplateFilter::default().limit(2)).await.unwrap();
    assert_eq!(page.data.len(), 2);
    assert_eq!(page.data[0].name, "hello_world");
    assert!(page.next_cursor().is_some());
    let all = h.client.all_templates(&h.waba(), &TemplateFilter::default().limit(1)).await.unwrap();
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["hello_world", "order_update", "welcome_named", "image_offer"]);
    assert!(all.iter().all(|t| t.status == Some(TemplateStatus::Approved)));
    let named = h.client.list_templates(&h.waba(), &TemplateFilter::default().name("order")).await.unwrap();
    assert_eq!(named.data.len(), 1);
    assert!(named.next_cursor().is_none());
    let pending =
        h.client.list_templates(&h.waba(), &TemplateFilter::default().status("PENDING")).await.unwrap();
    assert!(pending.data.is_empty());
    // A limit as large as it gets, after a cursor: the rest of the list, not a dropped connection.
    let cursor = page.next_cursor().unwrap().to_owned();
    let url = format!(
        "{}/v23.0/{}/message_templates?limit={}&after={cursor}",
        h.sandbox.base_url(),
        h.waba().as_str(),
        usize::MAX
    );
    let rest = reqwest::Client::new().get(url).bearer_auth(h.sandbox.access_token()).send().await.unwrap();
    assert_eq!(rest.status(), 200);
    h.sandbox.shutdown().await;
}

fn create(name: &str) -> CreateTemplate {
    serde_json::from_value(json!({
        "name": name, "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Your code is {{1}}", "example": {"body_text": [["1234"]]}}]
    }))
    .unwrap()
}

fn template_events(changes: &[ChangeValue], name: &str) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            ChangeValue::TemplateStatus(u) if u.message_template_name.as_deref() == Some(name) => {
                Some(u.event.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn created_templates_are_reviewed_and_announced() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    let created = h.client.create_template(&h.waba(), &create("login_code")).await.unwrap();
    assert_eq!(created.status, TemplateStatus::Pending);
    // Not sendable while pending.
    let send = OutboundMessage::template(USER, Template::new("login_code", "en_US").body_text(["42"]));
    assert_eq!(code(h.client.send_message(&h.number(), &send).await), (132_001, 404));
    let rejected = h.client.create_template(&h.waba(), &create("please_reject_me")).await.unwrap();
    assert!(eventually(WAIT, || template_events(&receiver.changes(), "login_code") == ["APPROVED"]).await);
    assert!(
        eventually(WAIT, || template_events(&receiver.changes(), "please_reject_me") == ["REJECTED"]).await
    );
    h.client.send_message(&h.number(), &send).await.unwrap();
    // Same name and language again: refused.
    assert_eq!(code(h.client.create_template(&h.waba(), &create("login_code")).await).0, 100);
    // Delete by id, then by name.
    h.client.delete_template(&h.waba(), "please_reject_me", Some(&rejected.id)).await.unwrap();
    h.client.delete_template(&h.waba(), "login_code", None).await.unwrap();
    assert_eq!(code(h.client.delete_template(&h.waba(), "login_code", None).await).0, 100);
    assert_eq!(code(h.client.send_message(&h.number(), &send).await).0, 132_001);
    let all = h.client.all_templates(&h.waba(), &TemplateFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn template_sends_are_checked_like_meta() {
    let h = Harness::for_tests().await;
    let send = |t: Template| OutboundMessage::template(USER, t);
    let cases = vec![
        (Template::new("no_such_template", "en_US"), 132_001, 404),
        (Template::new("hello_world", "pt_BR"), 132_001, 404),
        (Template::new("order_update", "en_US").body_text(["Ana"]), 132_000, 400),
        (Template::new("order_update", "en_US").body_text(["Ana", "#1", "May 5"]), 132_000, 400), // URL button suffix missing
        (Template::new("welcome_named", "en_US").body_text(["Ana", "CODE"]), 132_012, 400),
        (Template::new("image_offer", "en_US").header_text("not an image").body_text(["10%"]), 132_012, 400),
        (Template::new("hello_world", "en_US").body_text(["unexpected"]), 132_000, 400),
        // Named parameters: each name once, and every name given.
        (
            Template::new("welcome_named", "en_US").body([
                Parameter::named_text("first_name", "Ana"),
                Parameter::named_text("first_name", "Bo"),
            ]),
            132_012,
            400,
        ),
        (
            Template::new("welcome_named", "en_US").body([Parameter::named_text("first_name", "Ana")]),
            132_000,
            400,
        ),
        // A button sub_type Meta does not know is refused, not read as the template's button.
        (
            Template::new("welcome_named", "en_US")
                .body([Parameter::named_text("first_name", "Ana"), Parameter::named_text("code", "X1")])
                .component(Component::button(
                    ButtonSubType::Other("hologram".into()),
                    0,
                    [Parameter::payload("p")],
                )),
            131_009,
            400,
        ),
        // Each parameter within its limit, the filled-in body over 1,024 characters.
        (
            Template::new("welcome_named", "en_US").body([
                Parameter::named_text("first_name", "a".repeat(1000)),
                Parameter::named_text("code", "b".repeat(100)),
            ]),
            132_005,
            400,
        ),
        (
            Template::new("order_update", "en_US")
                .body_text(["a".repeat(400), "b".repeat(400), "c".repeat(400)])
                .url_button(0, "1234"),
            132_005,
            400,
        ),
    ];
    for (template, expected, status) in cases {
        let name = template.name.clone();
        assert_eq!(
            code(h.client.send_message(&h.number(), &send(template)).await),
            (expected, status),
            "{name}"
        );
    }
    let good = [
        Template::new("welcome_named", "en_US")
            .body([Parameter::named_text("first_name", "Ana"), Parameter::named_text("code", "X1")]),
        // Names in another order than the text's, a quick-reply payload for its button, and a body of exactly
        // 1,024 characters once filled in.
        Template::new("welcome_named", "en_US")
            .body([Parameter::named_text("code", "X1"), Parameter::named_text("first_name", "a".repeat(990))])
            .quick_reply_button(0, "stop"),
        Template::new("image_offer", "en_US")
            .header(Parameter::image(Media::link("https://example.com/a.jpg")))
            .body_text(["10%"]),
    ];
    for t in good {
        h.client.send_message(&h.number(), &send(t)).await.unwrap();
    }
    // Paused and disabled templates.
    let control = h.sandbox.control();
    let id = control.template_id("hello_world", "en_US").unwrap();
    control.set_template_status(&id, TemplateStatus::Paused).unwrap();
    assert_eq!(
        code(h.client.send_message(&h.number(), &send(Template::new("hello_world", "en_US"))).await),
        (132_015, 400)
    );
    control.set_template_status(&id, TemplateStatus::Disabled).unwrap();
    assert_eq!(
        code(h.client.send_message(&h.number(), &send(Template::new("hello_world", "en_US"))).await),
        (132_016, 400)
    );
    control.set_template_status(&id, TemplateStatus::Approved).unwrap();
    h.client.send_message(&h.number(), &send(Template::new("hello_world", "en_US"))).await.unwrap();
    h.sandbox.shutdown().await;
}

/// Meta's own catalog-template send spells the button's sub_type in upper case (`"CATALOG"`); Meta answers
/// it 200, so the sandbox must too.
#[tokio::test]
async fn meta_catalog_template_example_is_accepted() {
    let h = Harness::for_tests().await;
    let create = meta_example_body("Templates", "Create catalog template");
    let (status, created) =
        h.post_raw(&format!("{}/message_templates", h.waba().as_str()), &create.to_string()).await;
    assert_eq!(status, 200, "{created}");
    let name = create["name"].as_str().unwrap().to_owned();
    // Wait out the review: the template is sendable once approved.
    let mut approved = false;
    for _ in 0..200 {
        let page = h.client.list_templates(&h.waba(), &TemplateFilter::default().name(&name)).await.unwrap();
        if page.data.iter().any(|t| t.status == Some(TemplateStatus::Approved)) {
            approved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(approved, "the catalog template was not approved");

    let mut send = meta_example_body("Messages", "Send Catalog Template Message");
    assert_eq!(send["template"]["components"][1]["sub_type"], "CATALOG", "the example's own spelling");
    send["to"] = json!(USER);
    let (status, body) = h.post_raw(&format!("{}/messages", h.number().as_str()), &send.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["messages"][0]["id"].as_str().unwrap().starts_with("wamid."), "{body}");
    h.sandbox.shutdown().await;
}
