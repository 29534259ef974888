//! tsuru's request bodies: an arbitrary `Content-Type` and body through
//! `Encoding::of` and `Fields::decode`, then every accessor.
//!
//! Input: one selector byte, then (for an arbitrary content type) a length
//! byte and that many bytes of content type, then the body.
//!
//! Never panics; and when a body decodes, the accessors agree with each
//! other (`required` succeeds exactly when `one` has a value, `one` is the
//! first of `many`, no accessor hands out an empty value) and the
//! parameters serialise to a JSON object.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use orizuru::api::decode::{Encoding, Fields};

/// Every form name the API's handlers read, plus a few that are not.
const NAMES: &[&str] = &[
    "name",
    "plan",
    "team",
    "description",
    "tags",
    "user",
    "eventid",
    "app-name",
    "app-host",
    "app-hosts",
    "app-internal-hosts",
    "app-pool-name",
    "app-pool-provisioner",
    "app-cluster-name",
    "app-cluster-provisioner",
    "app-cluster-addresses",
    "app-hostname",
    "hostname",
    "unit-hostname",
    "unit-host",
    "job-pool-name",
    "job-cluster-name",
    "parameters",
    "",
    "appName",
    "eventID",
];

/// Content types tsuru sends, and some it does not.
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/vnd.tsuru+json"),
    Some("APPLICATION/X-WWW-FORM-URLENCODED ; charset=UTF-8"),
    Some(""),
    Some("text/plain"),
];

/// `ORIZURU_FUZZ_SKIP_KNOWN=1` skips inputs that hit bugs already reported
/// (see README.md), so a run can look for new ones.
static SKIP_KNOWN: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("ORIZURU_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"));

/// Known bug: a form key `parameters.a.a.a...` nested thousands deep
/// overflows the stack in decode.rs (`listify`, and dropping the result):
/// its depth is not limited. Any key with more than 500 dots is skipped.
pub fn deeply_nested(body: &[u8]) -> bool {
    body.split(|b| *b == b'&')
        .any(|pair| pair.iter().filter(|b| **b == b'.').count() > 500)
}

/// Known bug: serde_json (its `raw_value` feature, which axum turns on)
/// reads an object whose first key is `$serde_json::private::RawValue` as
/// raw JSON text, so parameters holding such a key nested in a group do not
/// survive the ledger's JSON round trip.
fn has_magic_key(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    fn nested(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => has_magic_key(map),
            serde_json::Value::Array(items) => items.iter().any(nested),
            _ => false,
        }
    }
    map.iter()
        .any(|(key, value)| key.starts_with("$serde_json::private::") || nested(value))
}

/// Known bug: form parameters nested 127 groups deep or more are decoded,
/// but serde_json's recursion limit (128) keeps the ledger from reading them back.
fn depth(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    fn nested(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Object(map) => depth(map),
            serde_json::Value::Array(items) => 1 + items.iter().map(nested).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + map.values().map(nested).max().unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    if *SKIP_KNOWN && deeply_nested(data) {
        return;
    }
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let index = usize::from(selector);
    let (content_type, body): (Option<String>, &[u8]) = if index < CONTENT_TYPES.len() {
        (CONTENT_TYPES[index].map(str::to_owned), rest)
    } else {
        // An arbitrary content type: a length byte, then its bytes.
        let Some((&len, rest)) = rest.split_first() else {
            return;
        };
        let len = usize::from(len).min(rest.len());
        let (content_type, body) = rest.split_at(len);
        (
            Some(String::from_utf8_lossy(content_type).into_owned()),
            body,
        )
    };

    let encoding = match Encoding::of(content_type.as_deref()) {
        Ok(encoding) => encoding,
        Err(error) => {
            assert!(
                !error.0.is_empty(),
                "an unknown content type gets a sentence"
            );
            // The host refuses the content type; decode the body both ways anyway.
            for encoding in [Encoding::Form, Encoding::Json] {
                check(encoding, body);
            }
            return;
        }
    };
    check(encoding, body);
});

fn check(encoding: Encoding, body: &[u8]) {
    let fields = match Fields::decode(encoding, body) {
        Ok(fields) => fields,
        Err(error) => {
            assert!(!error.0.trim().is_empty(), "a refused body gets a sentence");
            return;
        }
    };
    // The names the body itself uses, as well as the API's.
    let own_names = own_names(encoding, body);
    for name in NAMES
        .iter()
        .copied()
        .chain(own_names.iter().map(String::as_str))
    {
        let one = fields.one(name);
        let many = fields.many(name);
        assert!(
            many.iter().all(|value| !value.is_empty()),
            "many({name:?}) gave an empty value"
        );
        if let Some(value) = &one {
            assert!(!value.is_empty(), "one({name:?}) gave an empty value");
            assert_eq!(
                many.first(),
                Some(value),
                "one({name:?}) is not the first of many"
            );
        }
        match fields.required(name, "something") {
            Ok(value) => assert_eq!(Some(value), one, "required({name:?}) differs from one"),
            Err(error) => {
                assert!(one.is_none(), "required({name:?}) refused a present value");
                assert!(error.0.contains(name), "the sentence names the field");
            }
        }
    }
    // The ledger keeps the parameters as JSON text and reads them back as a
    // `Map<String, Value>` (ledger/sqlite/instances.rs, ledger/sqlite/changes.rs): they must come back the same.
    if *SKIP_KNOWN && (has_magic_key(fields.parameters()) || depth(fields.parameters()) >= 127) {
        return;
    }
    let text = serde_json::to_string(fields.parameters()).expect("parameters serialise");
    let back: Result<serde_json::Map<String, serde_json::Value>, _> = serde_json::from_str(&text);
    assert_eq!(
        back.as_ref().ok(),
        Some(fields.parameters()),
        "the parameters do not survive the ledger's JSON round trip: {text} reads back as {back:?}"
    );
    // Decoding is a pure function of the bytes.
    assert_eq!(Fields::decode(encoding, body).ok().as_ref(), Some(&fields));
}

/// The field names a body spells, as the accessors are asked for them.
fn own_names(encoding: Encoding, body: &[u8]) -> Vec<String> {
    match encoding {
        Encoding::Form => form_urlencoded::parse(body)
            .map(|(key, _)| key.into_owned())
            .take(16)
            .collect(),
        Encoding::Json => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(object)) => object.keys().take(16).cloned().collect(),
            _ => Vec::new(),
        },
    }
}
