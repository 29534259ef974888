//! Parameters as tsuru sends them, read into the author's own types.
//!
//! tsuru's CLI has no types: `-p size_mb=128` arrives as the text `"128"`, in
//! both of tsuru's encodings, while other clients of the JSON encoding may
//! send `128`. A serde [`Deserializer`] over the parameters' JSON reads a
//! whole number, a float or a bool from either, so a plugin declares
//! `size_mb: u64` and writes nothing else. Every refusal is a sentence that
//! names the parameter as the user typed it (`CONTRACT.md` in the SDK folder
//! has them all), and a parameter the author did not declare is refused,
//! naming those that exist.

use std::fmt::{self, Display};

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Reads the parameters' JSON object into `T`; `of` names whose they are
/// (`instance "orders"`) in the sentence of a refusal.
pub(crate) fn decode<T: DeserializeOwned>(json: &str, of: &str) -> crate::Result<T> {
    let value: Value = serde_json::from_str(json).map_err(|err| {
        crate::Error::failed(format!(
            "the host handed the parameters of {of} as text that is not JSON ({err}); report this to the host's operator"
        ))
    })?;
    T::deserialize(Parameter::new(&value, String::new()))
        .map_err(|refusal| crate::Error::invalid(refusal.sentence(of)))
}

/// Why the parameters do not fit, and where.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The dotted name of the parameter (or group, "" for all of them) the
    /// problem was found at; `None` until the container around it says.
    at: Option<String>,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    /// The value is not of the declared type.
    Expected { expected: String, given: String },
    /// A key the group at `at` does not declare.
    Unknown { key: String, known: Vec<String> },
    /// A field the group at `at` requires.
    Missing(String),
    /// The author's own refusal (`deserialize_with`, `try_from`, ...).
    Custom(String),
}

impl Refusal {
    fn new(at: &str, problem: Problem) -> Self {
        Self {
            at: Some(at.to_owned()),
            problem,
        }
    }

    fn expected(at: &str, expected: impl Into<String>, given: &Value) -> Self {
        Self::new(
            at,
            Problem::Expected {
                expected: expected.into(),
                given: shown(given),
            },
        )
    }

    /// Places a refusal raised without knowing where (by a visitor).
    fn at(mut self, path: &str) -> Self {
        self.at.get_or_insert_with(|| path.to_owned());
        self
    }

    fn sentence(&self, of: &str) -> String {
        let at = self.at.as_deref().unwrap_or_default();
        match &self.problem {
            Problem::Expected { expected, given } => {
                format!("parameter \"{at}\" of {of} must be {expected}, not {given}")
            }
            Problem::Unknown { key, known } if known.is_empty() => {
                let key = child(at, key);
                format!("{of} has no parameter \"{key}\"; it takes no parameters")
            }
            Problem::Unknown { key, known } => {
                let known: Vec<String> = known.iter().map(|name| child(at, name)).collect();
                let key = child(at, key);
                format!(
                    "{of} has no parameter \"{key}\"; the parameters are: {}",
                    known.join(", ")
                )
            }
            Problem::Missing(field) => {
                format!("parameter \"{}\" of {of} is missing", child(at, field))
            }
            Problem::Custom(reason) if at.is_empty() => {
                format!("the parameters of {of} are not valid: {reason}")
            }
            Problem::Custom(reason) => {
                format!("parameter \"{at}\" of {of} is not valid: {reason}")
            }
        }
    }
}

impl Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sentence("the instance"))
    }
}

impl std::error::Error for Refusal {}

impl de::Error for Refusal {
    fn custom<T: Display>(reason: T) -> Self {
        Self {
            at: None,
            problem: Problem::Custom(reason.to_string()),
        }
    }

    fn invalid_type(given: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self {
            at: None,
            problem: Problem::Expected {
                expected: expected.to_string(),
                given: unexpected(given),
            },
        }
    }

    fn invalid_value(given: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::invalid_type(given, expected)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self {
            at: None,
            problem: Problem::Expected {
                expected: format!("one of {}", expected.join(", ")),
                given: quoted(variant),
            },
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self {
            at: None,
            problem: Problem::Unknown {
                key: field.to_owned(),
                known: expected.iter().map(|name| (*name).to_owned()).collect(),
            },
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            at: None,
            problem: Problem::Missing(field.to_owned()),
        }
    }
}

/// `key` inside the group at `path`, as the user types it: `p2.complex1`.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A value as the user gave it: text quoted, JSON values as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => quoted(text),
        Value::Object(_) => "a group of parameters".into(),
        Value::Array(_) => "a list".into(),
        other => other.to_string(),
    }
}

fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

fn unexpected(given: de::Unexpected<'_>) -> String {
    match given {
        de::Unexpected::Str(text) => quoted(text),
        de::Unexpected::Bool(value) => value.to_string(),
        de::Unexpected::Unsigned(value) => value.to_string(),
        de::Unexpected::Signed(value) => value.to_string(),
        de::Unexpected::Float(value) => Value::from(value).to_string(),
        de::Unexpected::Unit => "null".into(),
        de::Unexpected::Map => "a group of parameters".into(),
        de::Unexpected::Seq => "a list".into(),
        other => other.to_string(),
    }
}

/// Text that reads as a whole number: an optional sign and digits.
fn whole_number(value: &Value) -> Option<i128> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from)),
        Value::String(text) => {
            let text = text.trim();
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        }
        _ => None,
    }
}

/// Text that reads as a decimal number (`1.5`, `-2`, `1e3`, `.5`); never
/// `nan`, `inf` or `1_000`, which Rust's own parser would take or refuse
/// differently from the other SDKs.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => {
            let text = text.trim();
            let decimal = text.bytes().any(|byte| byte.is_ascii_digit())
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || b"+-.eE".contains(&byte));
            decimal
                .then(|| text.parse::<f64>().ok())
                .flatten()
                .filter(|number| number.is_finite())
        }
        _ => None,
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(value) => Some(*value),
        Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// One value of the parameters, at its dotted path.
struct Parameter<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Parameter<'a> {
    fn new(value: &'a Value, path: String) -> Self {
        Self { value, path }
    }

    fn integer<T: TryFrom<i128> + Bounded>(&self) -> Result<T, Refusal> {
        let number = whole_number(self.value)
            .ok_or_else(|| Refusal::expected(&self.path, "a whole number", self.value))?;
        T::try_from(number).map_err(|_| {
            Refusal::expected(
                &self.path,
                format!("a whole number from {} to {}", T::MIN, T::MAX),
                self.value,
            )
        })
    }

    fn group(&self) -> Result<&'a Map<String, Value>, Refusal> {
        self.value
            .as_object()
            .ok_or_else(|| Refusal::expected(&self.path, "a group of parameters", self.value))
    }
}

/// The range of an integer type, for the sentence that refuses one outside it.
trait Bounded {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! bounded {
    ($($type:ty),*) => {$(
        impl Bounded for $type {
            const MIN: i128 = <$type>::MIN as i128;
            const MAX: i128 = <$type>::MAX as i128;
        }
    )*};
}

bounded!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! integers {
    ($($type:ty => $method:ident, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
            visitor.$visit::<Refusal>(self.integer::<$type>()?).map_err(|err| err.at(&self.path))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Parameter<'de> {
    type Error = Refusal;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        let path = self.path.clone();
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
                (Some(value), _, _) => visitor.visit_u64(value),
                (None, Some(value), _) => visitor.visit_i64(value),
                (_, _, value) => visitor.visit_f64(value.unwrap_or(f64::NAN)),
            },
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visitor.visit_seq(Items::new(items, &self.path)),
            Value::Object(entries) => visitor.visit_map(Entries::new(entries, &self.path)),
        }
        .map_err(|err| err.at(&path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        let value = boolean(self.value)
            .ok_or_else(|| Refusal::expected(&self.path, "true or false", self.value))?;
        visitor
            .visit_bool::<Refusal>(value)
            .map_err(|err| err.at(&self.path))
    }

    integers! {
        i8 => deserialize_i8, visit_i8;
        i16 => deserialize_i16, visit_i16;
        i32 => deserialize_i32, visit_i32;
        i64 => deserialize_i64, visit_i64;
        u8 => deserialize_u8, visit_u8;
        u16 => deserialize_u16, visit_u16;
        u32 => deserialize_u32, visit_u32;
        u64 => deserialize_u64, visit_u64;
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        let value = number(self.value)
            .ok_or_else(|| Refusal::expected(&self.path, "a number", self.value))?;
        visitor
            .visit_f64::<Refusal>(value)
            .map_err(|err| err.at(&self.path))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.value {
            Value::String(text) => visitor
                .visit_borrowed_str::<Refusal>(text)
                .map_err(|err| err.at(&self.path)),
            other => Err(Refusal::expected(&self.path, "text", other)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.value {
            Value::Array(items) => visitor
                .visit_seq(Items::new(items, &self.path))
                .map_err(|err| err.at(&self.path)),
            other => Err(Refusal::expected(&self.path, "a list", other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        let entries = self.group()?;
        visitor
            .visit_map(Entries::new(entries, &self.path))
            .map_err(|err| err.at(&self.path))
    }

    /// A struct's fields are the parameters it takes: any other key is a
    /// mistake of the user's, refused naming the ones it could have been.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        let entries = self.group()?;
        if let Some(key) = entries.keys().find(|key| !fields.contains(&key.as_str())) {
            return Err(Refusal::new(
                &self.path,
                Problem::Unknown {
                    key: key.clone(),
                    known: fields.iter().map(|name| (*name).to_owned()).collect(),
                },
            ));
        }
        visitor
            .visit_map(Entries::new(entries, &self.path))
            .map_err(|err| err.at(&self.path))
    }

    /// An enum of unit variants, from its name as text.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        match self.value {
            Value::String(text) => {
                let variant: BorrowedStrDeserializer<'de, Refusal> =
                    BorrowedStrDeserializer::new(text.trim());
                visitor
                    .visit_enum(variant)
                    .map_err(|err| err.at(&self.path))
            }
            other => Err(Refusal::expected(
                &self.path,
                format!("one of {}", variants.join(", ")),
                other,
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! { unit unit_struct }
}

/// The entries of a group, each deserialized at its own dotted path.
struct Entries<'a> {
    entries: serde_json::map::Iter<'a>,
    path: String,
    value: Option<(String, &'a Value)>,
}

impl<'a> Entries<'a> {
    fn new(entries: &'a Map<String, Value>, path: &str) -> Self {
        Self {
            entries: entries.iter(),
            path: path.to_owned(),
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = Refusal;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refusal> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = child(&self.path, key);
        self.value = Some((path.clone(), value));
        let key: BorrowedStrDeserializer<'de, Refusal> = BorrowedStrDeserializer::new(key);
        seed.deserialize(key).map(Some).map_err(|err| err.at(&path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refusal> {
        let (path, value) = self.value.take().ok_or_else(|| {
            <Refusal as de::Error>::custom("a value was asked for before its key")
        })?;
        seed.deserialize(Parameter::new(value, path.clone()))
            .map_err(|err| err.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The items of a list, at `path.0`, `path.1`, ...
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: String,
}

impl<'a> Items<'a> {
    fn new(items: &'a [Value], path: &str) -> Self {
        Self {
            items: items.iter().enumerate(),
            path: path.to_owned(),
        }
    }
}

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = Refusal;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refusal> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = child(&self.path, &index.to_string());
        seed.deserialize(Parameter::new(value, path.clone()))
            .map(Some)
            .map_err(|err| err.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Queue {
        retention_hours: Option<u64>,
        #[serde(default = "yes")]
        durable: bool,
        max_rate: Option<f64>,
        simulate: Option<String>,
    }

    fn yes() -> bool {
        true
    }

    fn read<T: DeserializeOwned>(json: &str) -> Result<T, String> {
        decode(json, "instance \"orders\"").map_err(|err| match err {
            crate::Error::Invalid(sentence) => sentence,
            other => panic!("not a refusal: {other:?}"),
        })
    }

    #[test]
    fn text_reads_as_the_declared_type() {
        let text: Queue = read(
            r#"{"retention_hours":" 48 ","durable":"False","max_rate":"12.5","simulate":"down"}"#,
        )
        .expect("text reads");
        let typed: Queue =
            read(r#"{"retention_hours":48,"durable":false,"max_rate":12.5,"simulate":"down"}"#)
                .expect("JSON values read");
        assert_eq!(text, typed);
        assert_eq!(
            typed,
            Queue {
                retention_hours: Some(48),
                durable: false,
                max_rate: Some(12.5),
                simulate: Some("down".into()),
            }
        );
        let defaults: Queue = read("{}").expect("all optional");
        assert!(defaults.durable);
        assert_eq!(defaults.retention_hours, None);
        let rate: Queue = read(r#"{"max_rate":"1e3","retention_hours":"+7"}"#).expect("reads");
        assert_eq!(
            (rate.max_rate, rate.retention_hours),
            (Some(1000.0), Some(7))
        );
    }

    #[test]
    fn refusals_name_the_parameter() {
        for (json, sentence) in [
            (
                r#"{"retention_hours":"lots"}"#,
                r#"parameter "retention_hours" of instance "orders" must be a whole number, not "lots""#,
            ),
            (
                r#"{"retention_hours":"1.5"}"#,
                r#"parameter "retention_hours" of instance "orders" must be a whole number, not "1.5""#,
            ),
            (
                r#"{"retention_hours":"-1"}"#,
                r#"parameter "retention_hours" of instance "orders" must be a whole number from 0 to 18446744073709551615, not "-1""#,
            ),
            (
                r#"{"durable":"yes"}"#,
                r#"parameter "durable" of instance "orders" must be true or false, not "yes""#,
            ),
            (
                r#"{"max_rate":"fast"}"#,
                r#"parameter "max_rate" of instance "orders" must be a number, not "fast""#,
            ),
            (
                r#"{"max_rate":"inf"}"#,
                r#"parameter "max_rate" of instance "orders" must be a number, not "inf""#,
            ),
            (
                r#"{"simulate":5}"#,
                r#"parameter "simulate" of instance "orders" must be text, not 5"#,
            ),
            (
                r#"{"colour":"red"}"#,
                r#"instance "orders" has no parameter "colour"; the parameters are: retention_hours, durable, max_rate, simulate"#,
            ),
        ] {
            assert_eq!(read::<Queue>(json).expect_err(json), sentence);
        }
    }

    #[test]
    fn nested_groups_lists_and_enums() {
        #[derive(Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        enum Tier {
            Small,
            Large,
        }
        #[derive(Deserialize, Debug)]
        struct Group {
            size: u8,
            tier: Tier,
        }
        #[derive(Deserialize, Debug)]
        struct Outer {
            p2: Group,
            #[serde(default)]
            zones: Vec<u16>,
        }
        let read_outer = |json: &str| read::<Outer>(json).map(|_| ()).expect_err(json);
        assert_eq!(
            read_outer(r#"{"p2":{"size":"300","tier":"small"}}"#),
            r#"parameter "p2.size" of instance "orders" must be a whole number from 0 to 255, not "300""#
        );
        assert_eq!(
            read_outer(r#"{"p2":{"size":"3","tier":"huge"}}"#),
            r#"parameter "p2.tier" of instance "orders" must be one of small, large, not "huge""#
        );
        assert_eq!(
            read_outer(r#"{"p2":{"size":"3","tier":"large","x":"1"}}"#),
            r#"instance "orders" has no parameter "p2.x"; the parameters are: p2.size, p2.tier"#
        );
        assert_eq!(
            read_outer(r#"{"p2":{"tier":"large"}}"#),
            r#"parameter "p2.size" of instance "orders" is missing"#
        );
        assert_eq!(
            read_outer(r#"{"p2":"big"}"#),
            r#"parameter "p2" of instance "orders" must be a group of parameters, not "big""#
        );
        assert_eq!(
            read_outer(r#"{"p2":{"size":"3","tier":"large"},"zones":["1","x"]}"#),
            r#"parameter "zones.1" of instance "orders" must be a whole number, not "x""#
        );
        let outer: Outer =
            read(r#"{"p2":{"size":"3","tier":" large"},"zones":["1",2]}"#).expect("reads");
        assert_eq!((outer.p2.size, outer.zones), (3, vec![1, 2]));
        assert!(matches!(outer.p2.tier, Tier::Large));
    }

    #[test]
    fn maps_and_values_take_anything() {
        let all: BTreeMap<String, Value> =
            read(r#"{"a":"1","b":{"c":2}}"#).expect("a map of values");
        assert_eq!(all["b"]["c"], 2);
        let text: BTreeMap<String, String> = read(r#"{"a":"1"}"#).expect("a map of text");
        assert_eq!(text["a"], "1");
        #[derive(Deserialize, Debug)]
        struct Nothing {}
        assert_eq!(
            read::<Nothing>(r#"{"a":"1"}"#).expect_err("none taken"),
            r#"instance "orders" has no parameter "a"; it takes no parameters"#
        );
    }

    #[test]
    fn the_authors_own_refusals_are_placed() {
        #[derive(Deserialize, Debug)]
        struct Checked {
            #[serde(deserialize_with = "even")]
            #[allow(dead_code)]
            size: u64,
        }
        fn even<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
            let size = u64::deserialize(deserializer)?;
            if size % 2 == 1 {
                return Err(de::Error::custom("give an even number"));
            }
            Ok(size)
        }
        assert_eq!(
            read::<Checked>(r#"{"size":"3"}"#).expect_err("odd"),
            r#"parameter "size" of instance "orders" is not valid: give an even number"#
        );
    }
}
