//! `Envelope::events_from_slice` gives exactly what `Envelope::from_slice(..).events()` gives — the same
//! events (payload text included) or the same error — over our fixtures, Meta's examples, and thousands of
//! variants of them: keys added, set to `null`, removed, or given another type, at every level.

use serde_json::{Map, Value, json};
use wabridge_types::webhook::Envelope;

const META_EXAMPLES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference/meta-examples/webhook_payloads.json");

/// Compares both paths on one body; returns whether the body was a valid envelope.
fn same_on(body: &[u8]) -> bool {
    let typed = Envelope::from_slice(body).map(|e| e.events());
    let fast = Envelope::events_from_slice(body);
    match (typed, fast) {
        (Ok(typed), Ok(fast)) => {
            assert_eq!(fast, typed, "events differ for {}", String::from_utf8_lossy(body));
            let text = |events: &[wabridge_types::webhook::WebhookEvent]| {
                events.iter().map(|e| e.payload.to_string()).collect::<Vec<_>>()
            };
            assert_eq!(text(&fast), text(&typed), "payload text differs");
            true
        }
        (Err(typed), Err(fast)) => {
            assert_eq!(fast.to_string(), typed.to_string());
            false
        }
        (typed, fast) => panic!(
            "one path failed: typed {:?}, fast {:?}, body {}",
            typed.map(|e| e.len()),
            fast.map(|e| e.len()),
            String::from_utf8_lossy(body)
        ),
    }
}

/// Every object in `root`, by JSON pointer.
fn object_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(at.clone());
            for (k, v) in map {
                object_pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                object_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The body and variants of it: at every object, an unknown key, a `null` key, and each existing key
/// set to `null`, removed, replaced by a number or by a string.
fn variants(body: &Value) -> Vec<Value> {
    let mut pointers = Vec::new();
    object_pointers(body, String::new(), &mut pointers);
    let mut out = vec![body.clone()];
    let edit = |pointer: &str, f: &dyn Fn(&mut Map<String, Value>)| {
        let mut copy = body.clone();
        if let Some(Value::Object(map)) = copy.pointer_mut(pointer) {
            f(map);
        }
        copy
    };
    for pointer in &pointers {
        out.push(edit(pointer, &|m| drop(m.insert("zz_unknown".into(), json!({"a": 1})))));
        out.push(edit(pointer, &|m| drop(m.insert("zz_null".into(), Value::Null))));
        let Some(Value::Object(map)) = body.pointer(pointer) else { continue };
        for key in map.keys() {
            out.push(edit(pointer, &|m| drop(m.insert(key.clone(), Value::Null))));
            out.push(edit(pointer, &|m| drop(m.remove(key))));
            out.push(edit(pointer, &|m| drop(m.insert(key.clone(), json!(7)))));
            out.push(edit(pointer, &|m| drop(m.insert(key.clone(), json!("x")))));
        }
    }
    out
}

fn bodies() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhook");
    let mut bodies: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    let meta: Value = serde_json::from_slice(&std::fs::read(META_EXAMPLES).unwrap()).unwrap();
    bodies.extend(meta.as_object().unwrap().values().cloned());
    bodies.push(
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "time": 1.5, "changes": []}]}),
    );
    bodies
}

#[test]
fn the_short_path_gives_what_the_typed_path_gives() {
    let (mut valid, mut invalid) = (0, 0);
    for body in bodies() {
        for variant in variants(&body) {
            if same_on(&serde_json::to_vec(&variant).unwrap()) {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    // Both kinds were exercised, many times over.
    assert!(valid > 1_000 && invalid > 50, "valid {valid}, invalid {invalid}");
}

#[test]
fn the_short_path_gives_the_same_error_for_what_is_not_an_envelope() {
    for body in
        [&b"not json"[..], b"{}", b"[]", b"{\"object\":1}", b"{\"object\":\"x\",\"entry\":[]} trailing", b""]
    {
        same_on(body);
    }
}
