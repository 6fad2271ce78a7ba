//! Plumbing shared by the send types: objects shaped `"type":"<kind>","<kind>":{…}`, members taken out
//! of a JSON object one by one, and the explicit `null`s that must survive a round trip.
//!
//! Types whose wire form depends on a `type` member implement [`MapWire`] (to and from a JSON object)
//! and get their serde impls from [`map_serde!`]; everything else derives serde with a flattened `extra`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A JSON object, as kept in every `extra` field.
pub type JsonMap = Map<String, Value>;

/// A type whose wire form is a JSON object assembled by hand (because a `type` member decides the rest).
pub(crate) trait MapWire: Sized {
    /// The object this value serializes to.
    fn to_map(&self) -> Result<JsonMap, serde_json::Error>;
    /// Reads the value from an object; the error says which member was wrong.
    fn from_map(map: JsonMap) -> Result<Self, String>;
}

/// Implements `Serialize` and `Deserialize` through [`MapWire`].
macro_rules! map_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::Error as _;
                $crate::send::wire::MapWire::to_map(self).map_err(S::Error::custom)?.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let map = $crate::send::wire::JsonMap::deserialize(d)?;
                $crate::send::wire::MapWire::from_map(map).map_err(D::Error::custom)
            }
        }
    };
}
pub(crate) use map_serde;

/// An enum written as `"type":"<kind>"` plus a member named after the kind holding its payload.
pub(crate) trait Tagged: Sized {
    /// The `type` value.
    fn kind(&self) -> &str;
    /// The payload stored under the member named [`Tagged::kind`], if any.
    fn payload(&self) -> Result<Option<Value>, serde_json::Error>;
    /// Builds the variant for `kind` from its payload (`None` when the member was absent).
    fn from_parts(kind: String, payload: Option<Value>) -> Result<Self, String>;
}

/// Takes `type` (required, a string) and the member named after it out of `map`.
pub(crate) fn take_tagged<T: Tagged>(map: &mut JsonMap) -> Result<T, String> {
    let kind: String = take_required(map, "type")?;
    let payload = map.remove(&kind);
    T::from_parts(kind, payload)
}

/// Writes `type` and the payload member of `value` into `map`.
pub(crate) fn put_tagged<T: Tagged>(map: &mut JsonMap, value: &T) -> Result<(), serde_json::Error> {
    map.insert("type".to_owned(), Value::String(value.kind().to_owned()));
    if let Some(payload) = value.payload()? {
        map.insert(value.kind().to_owned(), payload);
    }
    Ok(())
}

/// Parses the payload of a known kind; it must be present.
pub(crate) fn payload<T: DeserializeOwned>(kind: &str, payload: Option<Value>) -> Result<T, String> {
    let value = payload.ok_or_else(|| format!("missing field `{kind}`"))?;
    serde_json::from_value(value).map_err(|e| format!("{kind}: {e}"))
}

/// Serializes a payload for [`Tagged::payload`].
pub(crate) fn to_payload<T: Serialize>(value: &T) -> Result<Option<Value>, serde_json::Error> {
    serde_json::to_value(value).map(Some)
}

/// Takes an optional member out of `map` and parses it.
pub(crate) fn take_opt<T: DeserializeOwned>(map: &mut JsonMap, key: &str) -> Result<Option<T>, String> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| format!("{key}: {e}")),
    }
}

/// Takes a required member out of `map` and parses it.
pub(crate) fn take_required<T: DeserializeOwned>(map: &mut JsonMap, key: &str) -> Result<T, String> {
    take_opt(map, key)?.ok_or_else(|| format!("missing field `{key}`"))
}

/// Writes `value` under `key` when it is `Some`.
pub(crate) fn put_opt<T: Serialize>(
    map: &mut JsonMap,
    key: &str,
    value: Option<&T>,
) -> Result<(), serde_json::Error> {
    if let Some(v) = value {
        map.insert(key.to_owned(), serde_json::to_value(v)?);
    }
    Ok(())
}

/// What a parsed body looked like beyond its typed content, so that serializing it again gives back the
/// same JSON: whether `type` was left out (it defaults to text) and where explicit `null`s stood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WireNotes {
    /// The body had no `type` member (allowed for text).
    pub type_omitted: bool,
    /// JSON pointers of object members whose value was `null`.
    pub nulls: Vec<String>,
}

/// Removes every object member whose value is `null`, at any depth, and returns their JSON pointers.
///
/// An explicit `null` means the same as an absent member to Meta, and typed `Option` fields cannot tell
/// the two apart; taking them out before parsing and putting them back when serializing keeps the round
/// trip exact without a three-state type on every optional field.
pub(crate) fn strip_nulls(value: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    strip_at(value, &mut String::new(), &mut found);
    found
}

fn strip_at(value: &mut Value, path: &mut String, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let keep = !v.is_null();
                if !keep {
                    found.push(format!("{path}/{}", escape(key)));
                }
                keep
            });
            for (key, v) in map.iter_mut() {
                let len = path.len();
                path.push('/');
                path.push_str(&escape(key));
                strip_at(v, path, found);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                strip_at(v, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Puts back the `null`s that [`strip_nulls`] took out, where their parent object still exists and the
/// member has not been given a value since.
pub(crate) fn restore_nulls(value: &mut Value, nulls: &[String]) {
    for pointer in nulls {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        if let Some(Value::Object(map)) = value.pointer_mut(parent) {
            map.entry(unescape(last)).or_insert(Value::Null);
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_come_back_where_they_were() {
        let original = serde_json::json!({"a": null, "b": {"c/d": null, "e": [1, null, {"f~": null}]}});
        let mut v = original.clone();
        let nulls = strip_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"b": {"e": [1, null, {}]}}));
        restore_nulls(&mut v, &nulls);
        assert_eq!(v, original);
    }
}
