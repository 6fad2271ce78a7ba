//! Webhook signatures are checked on the raw bytes, in constant time, against one or several secrets.

use wabridge_types::signature::{SignatureError, appsecret_proof, constant_time_eq, sign, verify};

/// A body as Meta sends it: accented letters and emoji escaped as `\uXXXX` (with a surrogate pair),
/// slashes escaped as `\/`, plus raw UTF-8 accents. Parsing and re-serializing changes these bytes.
const BODY: &[u8] = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"102290129340398\",\"changes\":[{\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550783881\",\"phone_number_id\":\"106540352242922\"},\"contacts\":[{\"profile\":{\"name\":\"Jos\\u00e9 M\\u00fcller\"},\"wa_id\":\"16505551234\"}],\"messages\":[{\"from\":\"16505551234\",\"id\":\"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ=\",\"timestamp\":\"1749416383\",\"type\":\"text\",\"text\":{\"body\":\"Caf\u{e9} cr\u{e8}me \\ud83d\\ude00 \u{1F389} see https:\\/\\/example.com\\/a?b=1\"}}]},\"field\":\"messages\"}]}]}".as_bytes();

#[test]
fn verifies_raw_bytes_exactly() {
    let secret = b"app-secret-1";
    let header = sign(secret, BODY);
    assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
    assert_eq!(verify(Some(&header), BODY, &[secret]), Ok(0));

    // The same JSON re-serialized is different bytes, and its signature does not match: checking after
    // parsing would refuse genuine webhooks.
    let parsed: serde_json::Value = serde_json::from_slice(BODY).unwrap();
    let reserialized = serde_json::to_vec(&parsed).unwrap();
    assert_ne!(reserialized, BODY);
    assert_eq!(verify(Some(&header), &reserialized, &[secret]), Err(SignatureError::Mismatch));
    // One changed byte fails.
    let mut tampered = BODY.to_vec();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    assert_eq!(verify(Some(&header), &tampered, &[secret]), Err(SignatureError::Mismatch));
}

#[test]
fn known_vector() {
    // HMAC-SHA256 test vector of RFC 4231, case 2.
    let header = sign(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(header, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

#[test]
fn rotation_accepts_any_configured_secret() {
    let old = b"old-secret".as_slice();
    let new = b"new-secret".as_slice();
    let by_old = sign(old, BODY);
    let by_new = sign(new, BODY);
    assert_eq!(verify(Some(&by_old), BODY, &[new, old]), Ok(1));
    assert_eq!(verify(Some(&by_new), BODY, &[new, old]), Ok(0));
    assert_eq!(verify(Some(&by_old), BODY, &[new]), Err(SignatureError::Mismatch));
}

#[test]
fn distinct_errors_for_missing_malformed_and_wrong() {
    let secrets = [b"s".as_slice()];
    assert_eq!(verify(None, BODY, &secrets), Err(SignatureError::Missing));
    assert!(matches!(verify(Some("md5=abc"), BODY, &secrets), Err(SignatureError::Malformed(_))));
    assert!(matches!(verify(Some("sha256=abc"), BODY, &secrets), Err(SignatureError::Malformed(_))));
    let not_hex = format!("sha256={}", "zz".repeat(32));
    assert!(matches!(verify(Some(&not_hex), BODY, &secrets), Err(SignatureError::Malformed(_))));
    let wrong = format!("sha256={}", "00".repeat(32));
    assert_eq!(verify(Some(&wrong), BODY, &secrets), Err(SignatureError::Mismatch));
    let none: [&[u8]; 0] = [];
    assert_eq!(verify(Some(&wrong), BODY, &none), Err(SignatureError::NoSecret));
    // Upper-case hex is accepted (hex is case-insensitive).
    let upper = sign(b"s", BODY).to_uppercase().replacen("SHA256=", "sha256=", 1);
    assert_eq!(verify(Some(&upper), BODY, &secrets), Ok(0));
}

#[test]
fn appsecret_proof_is_hmac_of_token() {
    let proof = appsecret_proof("Jefe", "what do ya want for nothing?");
    assert_eq!(proof, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}

/// An empty app secret is no secret: anyone can sign with an empty key, so it never verifies anything.
#[test]
fn empty_secrets_are_no_secret() {
    let forged = sign(b"", BODY);
    let none: [&[u8]; 1] = [b""];
    assert_eq!(verify(Some(&forged), BODY, &none), Err(SignatureError::NoSecret));
    let empties: [&str; 2] = ["", ""];
    assert_eq!(verify(Some(&forged), BODY, &empties), Err(SignatureError::NoSecret));
    // Next to a real secret, the empty one is skipped: the forgery fails, the real signature matches.
    let mixed: [&[u8]; 2] = [b"", b"real-secret"];
    assert_eq!(verify(Some(&forged), BODY, &mixed), Err(SignatureError::Mismatch));
    assert_eq!(verify(Some(&sign(b"real-secret", BODY)), BODY, &mixed), Ok(1));
}
