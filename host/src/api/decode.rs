//! tsuru's request bodies, form-encoded or JSON, decoded to one shape.
//!
//! tsuru sends `application/x-www-form-urlencoded` by default, with repeated
//! keys for lists and dotted keys for nested parameters
//! (`parameters.p2.complex1=v`), and `application/json` with camelCase names
//! (`eventID`, `appHosts`) for services registered with `encoding: json`.
//! Both decode to [`Fields`]: form names, each with its values, plus the
//! parameters as one JSON object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::answer::quoted;

/// A body that cannot be decoded, with a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// A decoded body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    values: BTreeMap<String, Vec<String>>,
    parameters: Map<String, Value>,
}

/// The encodings tsuru uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Form,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; none (or an empty body) reads as form.
    pub fn of(content_type: Option<&str>) -> Result<Self, DecodeError> {
        let Some(content_type) = content_type else {
            return Ok(Encoding::Form);
        };
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-www-form-urlencoded" | "" => Ok(Encoding::Form),
            "application/json" => Ok(Encoding::Json),
            _ if essence.ends_with("+json") => Ok(Encoding::Json),
            _ => Err(DecodeError(format!(
                "the body's content type {} is not one tsuru sends; use application/x-www-form-urlencoded or application/json",
                quoted(content_type)
            ))),
        }
    }
}

impl Fields {
    pub fn decode(encoding: Encoding, body: &[u8]) -> Result<Self, DecodeError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match encoding {
            Encoding::Form => Self::from_form(body),
            Encoding::Json => Self::from_json(body),
        }
    }

    /// Form pairs, with `parameters.*` keys nested.
    pub fn from_form(body: &[u8]) -> Result<Self, DecodeError> {
        let mut fields = Fields::default();
        let mut parameters: Vec<(Vec<String>, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(body) {
            if key.is_empty() {
                return Err(DecodeError(
                    "the form body has a value without a name; send name=value pairs".into(),
                ));
            }
            match key.strip_prefix("parameters.") {
                Some(path) => parameters.push((split_path(path, &key)?, value.into_owned())),
                None if key == "parameters" => {
                    return Err(DecodeError(
                        "the form field \"parameters\" has no name; send each parameter as parameters.<name>=<value>".into(),
                    ));
                }
                None => fields
                    .values
                    .entry(key.into_owned())
                    .or_default()
                    .push(value.into_owned()),
            }
        }
        fields.parameters = nest(parameters)?;
        Ok(fields)
    }

    /// A JSON object, its camelCase names read as tsuru's form names.
    pub fn from_json(body: &[u8]) -> Result<Self, DecodeError> {
        let value: Value = serde_json::from_slice(body).map_err(|err| json_error(&err))?;
        let Value::Object(object) = value else {
            return Err(DecodeError(
                "the JSON body must be an object of fields, not a list or a single value".into(),
            ));
        };
        let mut fields = Fields::default();
        for (key, value) in object {
            if key == "parameters" {
                fields.parameters = match value {
                    Value::Object(parameters) => parameters,
                    Value::Null => Map::new(),
                    _ => {
                        return Err(DecodeError(
                            "the JSON field \"parameters\" must be an object".into(),
                        ));
                    }
                };
                continue;
            }
            let name = form_name(&key);
            let values = match value {
                Value::Null => continue,
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| scalar(item, &key))
                    .collect::<Result<Vec<_>, _>>()?,
                other => vec![scalar(other, &key)?],
            };
            fields.values.entry(name).or_default().extend(values);
        }
        Ok(fields)
    }

    /// The first value of a field; an empty value counts as absent.
    pub fn one(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|values| values.first())
            .filter(|value| !value.is_empty())
            .cloned()
    }

    /// Every non-empty value of a field, in order.
    pub fn many(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|values| {
                values
                    .iter()
                    .filter(|value| !value.is_empty())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The field's value, or a sentence naming what is missing.
    pub fn required(&self, name: &str, why: &str) -> Result<String, DecodeError> {
        self.one(name)
            .ok_or_else(|| DecodeError(format!("the field \"{name}\" is missing; it names {why}")))
    }

    pub fn parameters(&self) -> &Map<String, Value> {
        &self.parameters
    }
}

/// A sentence for a body that is not JSON: serde's own message names its
/// parser's terms, so the person gets where it broke, in words.
fn json_error(err: &serde_json::Error) -> DecodeError {
    DecodeError(match err.classify() {
        serde_json::error::Category::Eof => {
            "the JSON body is not valid JSON: it ends before its value does; send one whole JSON object of fields".to_owned()
        }
        _ => format!(
            "the JSON body is not valid JSON (it breaks on line {}, character {}); send one JSON object of fields",
            err.line(),
            err.column()
        ),
    })
}

/// `eventID` → `eventid`, `appHosts` → `app-hosts`; form names stay as they are.
fn form_name(key: &str) -> String {
    if key.eq_ignore_ascii_case("eventid") {
        return "eventid".into();
    }
    let mut name = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            name.push('-');
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

fn scalar(value: Value, key: &str) -> Result<String, DecodeError> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(DecodeError(format!(
            "the JSON field {} must be text or a list of texts",
            quoted(key)
        ))),
    }
}

/// `p2.complex1` → `["p2", "complex1"]`; `\.` is a dot inside a name.
/// How deep form parameters may nest (`parameters.a.b.c...`).
const MAX_PARAMETER_DEPTH: usize = 32;

fn split_path(path: &str, key: &str) -> Result<Vec<String>, DecodeError> {
    let mut segments = Vec::new();
    let mut segment = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                segment.push('.');
            }
            '.' => segments.push(std::mem::take(&mut segment)),
            other => segment.push(other),
        }
    }
    segments.push(segment);
    if segments.iter().any(String::is_empty) {
        return Err(DecodeError(format!(
            "the form field {} has an empty name part; write parameters.<name>.<name>=<value>",
            quoted(key)
        )));
    }
    // Deeper nesting than the ledger can read back (serde_json stops at 128
    // levels), or deep enough to exhaust a thread's stack, is refused here.
    if segments.len() > MAX_PARAMETER_DEPTH {
        return Err(DecodeError(format!(
            "the form field {} nests {} levels deep; use at most {MAX_PARAMETER_DEPTH}",
            quoted(key),
            segments.len()
        )));
    }
    // serde_json reads an object whose key starts with `$serde_json::` as
    // something else than the object it is; no parameter needs such a name.
    if let Some(part) = segments.iter().find(|part| part.starts_with('$')) {
        return Err(DecodeError(format!(
            "the form field {} has a name part starting with '$' ({}); name parameters with letters, digits, '-' and '_'",
            quoted(key),
            quoted(part)
        )));
    }
    Ok(segments)
}

/// Builds the parameters object from dotted paths. A repeated path becomes a
/// list; objects keyed `0`, `1`, ... (how tsuru's form encoder writes lists)
/// become lists, so both encodings decode to the same thing.
fn nest(pairs: Vec<(Vec<String>, String)>) -> Result<Map<String, Value>, DecodeError> {
    let mut root = Map::new();
    for (path, value) in pairs {
        let dotted = path.join(".");
        let (last, parents) = path
            .split_last()
            .ok_or_else(|| DecodeError("a parameter has no name".into()))?;
        let mut node = &mut root;
        for (depth, segment) in parents.iter().enumerate() {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match entry {
                Value::Object(object) => object,
                _ => return Err(collision(&parents[..=depth].join("."), &dotted)),
            };
        }
        match node.get_mut(last) {
            None => {
                node.insert(last.clone(), Value::String(value));
            }
            Some(Value::String(first)) => {
                let first = std::mem::take(first);
                node.insert(
                    last.clone(),
                    Value::Array(vec![Value::String(first), Value::String(value)]),
                );
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(_) => return Err(collision(&dotted, &dotted)),
        }
    }
    Ok(listify(root))
}

fn collision(value_at: &str, group_at: &str) -> DecodeError {
    DecodeError(format!(
        "parameter {} is given both as a value and as a group ({}); send one or the other",
        quoted(value_at),
        quoted(&format!("parameters.{group_at}"))
    ))
}

fn listify(object: Map<String, Value>) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| (key, listify_value(value)))
        .collect()
}

fn listify_value(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let indexed = !object.is_empty()
                && (0..object.len()).all(|index| object.contains_key(&index.to_string()));
            if indexed {
                let mut object = listify(object);
                Value::Array(
                    (0..object.len())
                        .filter_map(|index| object.remove(&index.to_string()))
                        .collect(),
                )
            } else {
                Value::Object(listify(object))
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(listify_value).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(body: &str) -> Result<Fields, DecodeError> {
        Fields::decode(Encoding::Form, body.as_bytes())
    }

    #[test]
    fn form_nests_parameters_and_repeats_lists() {
        let fields = form(
            "name=db&team=t&tags=a&tags=b&parameters.p1=v1&parameters.p2.complex1=x&parameters.p2.complex2=y&parameters.list.0=a&parameters.list.1=b&eventid=e1",
        )
        .expect("valid form");
        assert_eq!(fields.one("name").as_deref(), Some("db"));
        assert_eq!(fields.many("tags"), ["a", "b"]);
        assert_eq!(fields.one("eventid").as_deref(), Some("e1"));
        assert_eq!(
            Value::Object(fields.parameters().clone()),
            json!({"p1": "v1", "p2": {"complex1": "x", "complex2": "y"}, "list": ["a", "b"]})
        );
    }

    #[test]
    fn json_reads_camel_case_as_form_names() {
        let body = json!({
            "name": "db", "eventID": "e1", "appName": "web", "appHosts": ["a.io", "b.io"],
            "appClusterAddresses": ["https://k8s"], "tags": ["x"],
            "parameters": {"p2": {"complex1": "x"}, "n": 3}
        });
        let fields =
            Fields::decode(Encoding::Json, body.to_string().as_bytes()).expect("valid JSON");
        assert_eq!(fields.one("eventid").as_deref(), Some("e1"));
        assert_eq!(fields.one("app-name").as_deref(), Some("web"));
        assert_eq!(fields.many("app-hosts"), ["a.io", "b.io"]);
        assert_eq!(fields.many("app-cluster-addresses"), ["https://k8s"]);
        assert_eq!(
            Value::Object(fields.parameters().clone()),
            json!({"p2": {"complex1": "x"}, "n": 3})
        );
    }

    #[test]
    fn both_encodings_nest_alike() {
        let form =
            form("parameters.p2.complex1=x&parameters.tags.0=a&parameters.tags.1=b").expect("form");
        let json = Fields::decode(
            Encoding::Json,
            br#"{"parameters": {"p2": {"complex1": "x"}, "tags": ["a", "b"]}}"#,
        )
        .expect("json");
        assert_eq!(form.parameters(), json.parameters());
    }

    #[test]
    fn colliding_and_malformed_parameters_are_refused() {
        for (body, expected) in [
            (
                "parameters.a=1&parameters.a.b=2",
                "both as a value and as a group",
            ),
            (
                "parameters.a.b=2&parameters.a=1",
                "both as a value and as a group",
            ),
            ("parameters..x=1", "empty name part"),
            ("parameters.=1", "empty name part"),
            ("parameters=1", "has no name"),
            ("=1", "without a name"),
        ] {
            let err = form(body).expect_err(body);
            assert!(err.0.contains(expected), "{body}: {}", err.0);
        }
    }

    #[test]
    fn bad_json_and_content_types_are_refused() {
        assert!(
            Fields::decode(Encoding::Json, b"{")
                .unwrap_err()
                .0
                .contains("not valid")
        );
        assert!(
            Fields::decode(Encoding::Json, b"[1]")
                .unwrap_err()
                .0
                .contains("must be an object")
        );
        assert!(
            Fields::decode(Encoding::Json, br#"{"parameters": 3}"#)
                .unwrap_err()
                .0
                .contains("must be an object")
        );
        assert!(
            Fields::decode(Encoding::Json, br#"{"name": {"a": 1}}"#)
                .unwrap_err()
                .0
                .contains("text")
        );
        assert!(
            Encoding::of(Some("text/xml"))
                .unwrap_err()
                .0
                .contains("text/xml")
        );
        assert_eq!(
            Encoding::of(Some("application/json; charset=utf-8")),
            Ok(Encoding::Json)
        );
        assert_eq!(Encoding::of(None), Ok(Encoding::Form));
    }

    #[test]
    fn json_errors_are_sentences_without_the_parsers_terms() {
        for (body, expected) in [
            (&b"{\"name\":"[..], "it ends before its value does"),
            (b"{\"name\": \"a\"} x", "it breaks on line 1, character 15"),
            (b"{\"name\": \"\xff\"}", "it breaks on line 1"),
            (b"{name: 1}", "it breaks on line 1, character 2"),
        ] {
            let err = Fields::decode(Encoding::Json, body).expect_err("invalid JSON");
            assert!(
                err.0.starts_with("the JSON body is not valid JSON"),
                "{}",
                err.0
            );
            assert!(err.0.contains(expected), "{}", err.0);
            assert!(!err.0.contains("at line"), "{}", err.0);
        }
    }

    #[test]
    fn repeated_parameter_becomes_a_list_and_escaped_dots_stay() {
        let fields = form("parameters.ip=1&parameters.ip=2&parameters.a\\.b=3").expect("form");
        assert_eq!(
            Value::Object(fields.parameters().clone()),
            json!({"ip": ["1", "2"], "a.b": "3"})
        );
    }
}
