//! Why config text was refused, as one sentence: toml's syntax errors
//! and serde's type errors with the line and key they point at, never the
//! value written there (it may be a password).

/// Why config text was refused: its syntax, or what it says.
#[derive(Debug)]
pub enum Problem {
    Syntax(String),
    Meaning(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Syntax(message) | Problem::Meaning(message) => f.write_str(message),
        }
    }
}

/// toml's message on one line, with the line it points at and the key
/// written there. Never a value: the line may hold a password or a token.
pub(super) fn describe_toml_error(err: &toml::de::Error, text: &str) -> String {
    let message = without_value(err.message().trim()).replace('\n', "; ");
    match err.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
            // The key names the setting, which the message may not.
            match text.lines().nth(line - 1).and_then(key_of) {
                Some(key) => format!("line {line} ({key}): {message}"),
                None => format!("line {line}: {message}"),
            }
        }
        None => message,
    }
}

/// What a config line sets, without its value: `key password` for
/// `password = "..."`, `[services.sql.admin]` for a table header; `None`
/// for a line of something else (a multi-line value's, say).
pub(super) fn key_of(line: &str) -> Option<String> {
    let line = line.trim();
    let plausible = |key: &str| {
        !key.is_empty()
            && key.len() <= 80
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ')
            })
    };
    if line.starts_with('[') {
        let brackets = if line.starts_with("[[") { 2 } else { 1 };
        let name = line[brackets..].split(']').next()?.trim();
        let (open, close) = ("[".repeat(brackets), "]".repeat(brackets));
        return plausible(name).then(|| format!("{open}{name}{close}"));
    }
    let (key, _value) = line.split_once('=')?;
    let key = key.trim();
    plausible(key).then(|| format!("key {key}"))
}

/// serde's "invalid type: string \"hunter2\", expected u64" without the
/// value it quotes: "invalid type: a string, expected u64".
pub(super) fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, expected)) = rest.split_once(", expected ") else {
            continue;
        };
        let kind = match found.split([' ', '`', '"']).next().unwrap_or_default() {
            "string" => "a string",
            "integer" => "an integer",
            "floating" => "a number with a fraction",
            "boolean" => "true or false",
            "sequence" => "an array",
            "map" => "a table",
            "character" => "a character",
            _ => "another value",
        };
        return format!("{prefix}{kind}, expected {expected}");
    }
    message.to_owned()
}
