//! Small pieces shared by the webhook types: values that arrive as a number or a string, the handling of
//! explicit `null`s, and payloads keyed by `type`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// A value Meta sends sometimes as a JSON string and sometimes as a number: timestamps (`"1749416383"` in
/// messages, `1602532300000` in `identity.created_timestamp`), coordinates, order quantities and prices,
/// template ids. It is kept as sent, so serializing gives back the same JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// Sent as a string.
    Text(String),
    /// Sent as a number.
    Number(Number),
}

impl Scalar {
    /// A timestamp the way Meta writes them in messages and statuses: unix seconds as a string.
    #[must_use]
    pub fn unix(seconds: i64) -> Self {
        Self::Text(seconds.to_string())
    }

    /// The value as an integer, when it is one (a string is parsed).
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Text(text) => text.trim().parse().ok(),
            Self::Number(number) => number.as_i64(),
        }
    }

    /// The value as a float, when it is a number (a string is parsed).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Text(text) => text.trim().parse().ok(),
            Self::Number(number) => number.as_f64(),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Number(number) => write!(f, "{number}"),
        }
    }
}

impl From<&str> for Scalar {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for Scalar {
    fn from(number: i64) -> Self {
        Self::Number(number.into())
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => serializer.serialize_str(text),
            Self::Number(number) => number.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(text))
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(number.into()))
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(number.into()))
            }

            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Scalar, E> {
                Number::from_f64(number).map(Scalar::Number).ok_or_else(|| E::custom("a finite number"))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A JSON object.
pub(crate) type JsonMap = Map<String, Value>;

/// Reads a JSON object and takes out its keys whose value is an explicit `null`: the derived code would
/// read them as `None` for an `Option` field and forget they were sent. The caller puts them in `extra`.
pub(crate) fn split_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<(JsonMap, JsonMap), D::Error> {
    let mut map = Map::<String, Value>::deserialize(deserializer)?;
    let null_keys: Vec<String> = map.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k.clone()).collect();
    let mut nulls = Map::new();
    for key in null_keys {
        if let Some(value) = map.remove(&key) {
            nulls.insert(key, value);
        }
    }
    Ok((map, nulls))
}

/// Takes `"type"` out of an object when it is a string.
pub(crate) fn take_type(map: &mut Map<String, Value>) -> Option<String> {
    match map.get("type") {
        Some(Value::String(_)) => match map.remove("type") {
            Some(Value::String(kind)) => Some(kind),
            _ => None,
        },
        _ => None,
    }
}

/// Deserializes a typed payload from a borrowed value, so that the value is still there when it does not
/// fit (and can be kept as it is).
pub(crate) fn parse_typed<T: for<'de> Deserialize<'de>>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}

/// Serializes one of our own types into a JSON value. Our types always serialize (maps have string keys),
/// so the error is only mapped, never expected.
pub(crate) fn to_json<T: Serialize, E: serde::ser::Error>(value: &T) -> Result<Value, E> {
    serde_json::to_value(value).map_err(E::custom)
}
