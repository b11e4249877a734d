//! Structured values on the wire: MessagePack through `rmp-serde`, for the
//! queue API ([`crate::queue`]) and the connection manager
//! ([`crate::manager`]).
//!
//! Why MessagePack: it is compact and binary like bincode or postcard, but
//! self-describing - a receiver can decode a body without knowing its Rust
//! type, into [`Value`] (the seeds' dictionaries: maps, lists, strings,
//! numbers, bytes), and programs in other languages (xx_net was Python)
//! read and write it with their own msgpack library. Structs are encoded
//! as maps with field names ([`encode`] uses `to_vec_named`), so a struct
//! sent by one side decodes as a `Value::Map` on the other and vice versa.
//!
//! Decoding is bounded: bodies are already limited by the transport's
//! maximum frame, and nesting deeper than [`MAX_DEPTH`] is refused (a
//! peer cannot make the decoder recurse off the end of a thread's stack).

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Deepest nesting of lists and maps a decoder accepts.
pub const MAX_DEPTH: usize = 64;

/// A dynamically typed value, like a Python dictionary's contents.
///
/// ```
/// use msgcenter::value::{self, Value};
/// let v = Value::map([("op", Value::from("move")), ("x", 3.into()), ("tags", vec![Value::from("a")].into())]);
/// let bytes = value::encode(&v).unwrap();
/// let back: Value = value::decode(&bytes).unwrap();
/// assert_eq!(back, v);
/// assert_eq!(back.get("x").and_then(Value::as_int), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// msgpack nil (Python `None`).
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (msgpack integers above `i64::MAX` are refused).
    Int(i64),
    /// A float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Raw bytes (msgpack bin).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The entry `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if they are bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::List(v)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(l) => s.collect_seq(l),
            Value::Map(m) => s.collect_map(m),
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nil, a bool, a number, a string, bytes, a list or a map with string keys")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} above i64::MAX")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            list.push(v);
        }
        Ok(Value::List(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            m.insert(k, v);
        }
        Ok(Value::Map(m))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Encodes `v` as MessagePack (structs as maps with field names).
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(v).map_err(|e| CodecError(format!("cannot encode: {e}")))
}

/// Decodes one MessagePack value from all of `bytes` (trailing bytes and
/// nesting past [`MAX_DEPTH`] are errors).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut input = bytes;
    let mut de = rmp_serde::Deserializer::new(&mut input);
    de.set_max_depth(MAX_DEPTH);
    let v = T::deserialize(&mut de).map_err(|e| CodecError(format!("cannot decode: {e}")))?;
    let rest = input.len();
    if rest != 0 {
        return Err(CodecError(format!("{rest} bytes after the value")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Move {
        who: String,
        x: i32,
        #[serde(with = "serde_bytes_compat")]
        blob: Vec<u8>,
    }

    /// `Vec<u8>` as msgpack bin (what `serde_bytes` does), without the crate.
    mod serde_bytes_compat {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            match super::Value::deserialize(d)? {
                super::Value::Bytes(b) => Ok(b),
                other => Err(serde::de::Error::custom(format!("bytes, not {other:?}"))),
            }
        }
        use serde::Deserialize;
    }

    #[test]
    fn every_kind_round_trips() {
        let v = Value::map([
            ("nil", Value::Nil),
            ("t", true.into()),
            ("neg", (-5i64).into()),
            ("big", i64::MAX.into()),
            ("f", 1.5.into()),
            ("s", "héllo".into()),
            ("b", vec![0u8, 255, 7].into()),
            ("l", vec![Value::Int(1), Value::from("two")].into()),
            ("m", Value::map([("k", Value::Nil)])),
        ]);
        assert_eq!(decode::<Value>(&encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn structs_and_values_read_each_other() {
        let m = Move {
            who: "ann".into(),
            x: -3,
            blob: vec![1, 2],
        };
        let as_value: Value = decode(&encode(&m).unwrap()).unwrap();
        assert_eq!(as_value.get("who").and_then(Value::as_str), Some("ann"));
        assert_eq!(as_value.get("x").and_then(Value::as_int), Some(-3));
        assert_eq!(
            as_value.get("blob").and_then(Value::as_bytes),
            Some(&[1u8, 2][..])
        );
        let back: Move = decode(&encode(&as_value).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        // Truncated: a 3-element array with one element.
        assert!(decode::<Value>(&[0x93, 0x01]).is_err());
        // Trailing bytes.
        let e = decode::<Value>(&[0x01, 0x02]).unwrap_err();
        assert!(e.0.contains("after the value"), "{e}");
        // u64 above i64::MAX.
        let e = decode::<Value>(&[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(e.0.contains("above i64::MAX"), "{e}");
        // Non-string map key.
        assert!(decode::<Value>(&[0x81, 0x01, 0x02]).is_err());
        // Nesting past the limit: [[[[...]]]] 10,000 deep, no stack overflow.
        let deep = vec![0x91u8; 10_000];
        let e = decode::<Value>(&deep).unwrap_err();
        assert!(e.0.contains("depth"), "{e}");
        // Just under the limit decodes.
        let mut ok = vec![0x91u8; MAX_DEPTH - 1];
        ok.push(0xc0);
        assert!(decode::<Value>(&ok).is_ok());
        // A huge declared length with no data does not allocate it.
        assert!(decode::<Value>(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
