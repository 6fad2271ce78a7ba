//! Templates: list one page, follow paging, create, delete.

use serde_json::{Value, json};
use wabridge_cloud::{CloudError, TemplateFilter};
use wabridge_types::template::CreateTemplate;
use wabridge_types::{TemplateId, WabaId};

use crate::harness::{Example, MockServer, WABA_ID, assert_graph_call, assert_json_body, graph_path};

#[tokio::test]
async fn list_one_page_matches_the_reference() {
    let example = Example::find("Templates", "Get all templates (default fields)");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    let page = client.list_templates(&WabaId::new(WABA_ID), &TemplateFilter::default()).await.unwrap();
    assert_eq!(page.data.len(), 2);
    assert_eq!(page.data[0].name, "hello_world");
    assert!(page.data[0].is_approved());
    // No `next`: this is the last page even though a cursor is present.
    assert_eq!(page.next_cursor(), None);

    let req = server.only_request();
    assert_graph_call(&req, "GET", &graph_path(&[WABA_ID, "message_templates"]));
    example.assert_target(&req, &[("{{WABA-ID}}", WABA_ID)]);
    assert!(req.body.is_empty());
}

#[tokio::test]
async fn list_by_name_sends_the_filter() {
    let example = Example::find("Templates", "Get template by name (default fields)");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    let filter = TemplateFilter::default().name("hello_world");
    let page = client.list_templates(&WabaId::new(WABA_ID), &filter).await.unwrap();
    assert_eq!(page.data.len(), 1);
    example.assert_target(
        &server.only_request(),
        &[("{{WABA-ID}}", WABA_ID), ("<TEMPLATE_NAME>", "hello_world")],
    );
}

fn template(name: &str) -> Value {
    json!({"name": name, "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": format!("id-{name}"),
           "components": [{"type": "BODY", "text": "Hi {{1}}"}]})
}

#[tokio::test]
async fn all_templates_follows_the_paging_cursors() {
    let server = MockServer::start().await;
    let next = |after: &str| json!({"cursors": {"before": "B", "after": after}, "next": "https://graph.facebook.com/next"});
    server
        .reply(200, &json!({"data": [template("a"), template("b")], "paging": next("CUR1")}))
        .reply(200, &json!({"data": [template("c")], "paging": next("CUR2")}))
        .reply(
            200,
            &json!({"data": [template("d")], "paging": {"cursors": {"before": "X", "after": "CUR3"}}}),
        );
    let client = server.client().build().unwrap();
    let filter = TemplateFilter::default().status("APPROVED").limit(2);
    let all = client.all_templates(&WabaId::new(WABA_ID), &filter).await.unwrap();
    let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for req in &reqs {
        assert_graph_call(req, "GET", &graph_path(&[WABA_ID, "message_templates"]));
        assert_eq!(req.query_value("status"), Some("APPROVED"));
        assert_eq!(req.query_value("limit"), Some("2"));
    }
    assert_eq!(reqs[0].query_value("after"), None);
    assert_eq!(reqs[1].query_value("after"), Some("CUR1"));
    assert_eq!(reqs[2].query_value("after"), Some("CUR2"));
}

#[tokio::test]
async fn a_repeated_cursor_ends_the_listing() {
    let server = MockServer::start().await;
    let paging = json!({"cursors": {"after": "SAME"}, "next": "https://graph.facebook.com/next"});
    server.reply(200, &json!({"data": [template("a")], "paging": paging}));
    server.reply(200, &json!({"data": [template("b")], "paging": paging}));
    let client = server.client().build().unwrap();
    let all = client.all_templates(&WabaId::new(WABA_ID), &TemplateFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn create_template_sends_the_reference_body() {
    let example = Example::find(
        "Templates",
        "Create template w/ text header, text body, text footer, and 2 quick reply buttons",
    );
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    let create: CreateTemplate = serde_json::from_value(example.body.clone()).unwrap();
    let created = client.create_template(&WabaId::new(WABA_ID), &create).await.unwrap();
    assert_eq!(created.id.as_str(), "1627019861106475");

    let req = server.only_request();
    assert_graph_call(&req, "POST", &graph_path(&[WABA_ID, "message_templates"]));
    example.assert_target(&req, &[("{{WABA-ID}}", WABA_ID)]);
    assert_json_body(&req, &example.body);
}

#[tokio::test]
async fn an_invalid_template_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let create: CreateTemplate = serde_json::from_value(json!({
        "name": "Bad Name", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]
    }))
    .unwrap();
    let err = client.create_template(&WabaId::new(WABA_ID), &create).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn delete_template_by_name_and_by_id() {
    let by_name = Example::find("Templates", "Delete template by name");
    let by_id = Example::find("Templates", "Delete template by ID");
    let server = MockServer::start().await;
    server.reply(200, &by_name.response).reply(200, &by_id.response);
    let client = server.client().build().unwrap();
    let waba = WabaId::new(WABA_ID);
    client.delete_template(&waba, "order_update", None).await.unwrap();
    client.delete_template(&waba, "order_update", Some(&TemplateId::new("5577"))).await.unwrap();

    let reqs = server.requests();
    assert_graph_call(&reqs[0], "DELETE", &graph_path(&[WABA_ID, "message_templates"]));
    by_name.assert_target(&reqs[0], &[("{{WABA-ID}}", WABA_ID), ("<TEMPLATE_NAME>", "order_update")]);
    assert_graph_call(&reqs[1], "DELETE", &graph_path(&[WABA_ID, "message_templates"]));
    by_id.assert_target(
        &reqs[1],
        &[("{{WABA-ID}}", WABA_ID), ("<HSM_ID>", "5577"), ("<NAME>", "order_update")],
    );
}
