//! Malformed and hostile requests on every route, in both routings: each
//! gets a 4xx with one sentence naming what was wrong, none gets a 5xx, and
//! nothing reaches the ledger. Requests are written by hand on a socket, so
//! the bytes on the wire are exactly the ones in the table (a client library
//! would tidy `..`, `%2e%2e` and bad headers away).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use orizuru::ledger::{Deployments, SqliteLedger};
use orizuru_tests::{Server, Tsuru, password, service};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest body the test host reads, and how long it waits for one.
const CONFIG: &str = "max_request_kb = 16\nrequest_read_timeout_secs = 1\n";

async fn server() -> Server {
    Server::start_config(&format!(
        "{CONFIG}{}{}",
        service("fake", "fake", ""),
        service("queue", "queue", "")
    ))
    .await
}

/// tsuru's two routings of the queue service: the service named by the
/// basic-auth user, and by the path.
const ROUTINGS: [&str; 2] = ["", "/services/queue"];

/// What a handler reads of the body.
#[derive(Clone, Copy, PartialEq)]
enum Reads {
    Nothing,
    /// Form or JSON fields.
    Fields,
    /// The bytes as they came (proxied calls).
    Bytes,
}

/// Every route of the contract, on the instance `{name}`.
const ROUTES: &[(&str, &str, Reads)] = &[
    ("GET", "/resources/plans", Reads::Nothing),
    ("POST", "/resources", Reads::Fields),
    ("GET", "/resources/{name}", Reads::Nothing),
    ("PUT", "/resources/{name}", Reads::Fields),
    ("DELETE", "/resources/{name}", Reads::Fields),
    ("POST", "/resources/{name}", Reads::Fields),
    ("GET", "/resources/{name}/status", Reads::Nothing),
    ("POST", "/resources/{name}/bind-app", Reads::Fields),
    ("DELETE", "/resources/{name}/bind-app", Reads::Fields),
    ("POST", "/resources/{name}/bind", Reads::Fields),
    ("DELETE", "/resources/{name}/bind", Reads::Fields),
    ("PUT", "/resources/{name}/binds/jobs/nightly", Reads::Fields),
    (
        "DELETE",
        "/resources/{name}/binds/jobs/nightly",
        Reads::Fields,
    ),
    (
        "DELETE",
        "/resources/{name}/hostname/web.example.com",
        Reads::Fields,
    ),
    ("POST", "/resources/{name}/backup", Reads::Bytes),
    ("POST", "/authenticated-resources/backup", Reads::Bytes),
    ("GET", "/callback", Reads::Nothing),
];

/// Instance names tsuru's rule (`^[A-Za-z][-a-zA-Z0-9_]+$`) refuses, and
/// the sentence part that names each.
fn bad_names() -> Vec<(String, String)> {
    let not_valid = |shown: &str| format!("instance name {shown} is not valid");
    vec![
        ("9lives".into(), not_valid("\"9lives\"")),
        ("-db".into(), not_valid("\"-db\"")),
        ("a".into(), not_valid("\"a\"")),
        ("my db".into(), not_valid("\"my db\"")),
        ("café".into(), not_valid("\"café\"")),
        ("a\0b".into(), not_valid("\"a\\0b\"")),
        ("db\n".into(), not_valid("\"db\\n\"")),
        ("a/b".into(), not_valid("\"a/b\"")),
        ("a.b".into(), not_valid("\"a.b\"")),
        (
            "a".repeat(1000),
            "is 1000 characters long; use at most 100".into(),
        ),
    ]
}

/// How the body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Delivery {
    /// All of it, with its Content-Length.
    Whole,
    /// A Content-Length 100 bytes past the body, then the write half shut.
    Truncated,
    /// A Content-Length 100 bytes past the body, then silence.
    Stalled,
    /// `Transfer-Encoding: chunked`, the body already framed (badly).
    Chunked,
    /// As `Chunked`, then the write half shut.
    ChunkedCutOff,
}

/// A request, byte for byte.
#[derive(Clone)]
struct Raw {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    delivery: Delivery,
}

impl Raw {
    fn new(method: &str, path: impl Into<String>) -> Raw {
        Raw {
            method: method.to_owned(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            delivery: Delivery::Whole,
        }
    }

    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Raw {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Basic auth as `user:password`.
    fn auth(self, user: &str, password: &str) -> Raw {
        let pair = STANDARD.encode(format!("{user}:{password}"));
        self.header("Authorization", format!("Basic {pair}"))
    }

    /// The queue service's own credentials.
    fn with_queue_auth(self) -> Raw {
        self.auth("queue", &password("queue"))
    }

    fn body(mut self, content_type: impl Into<Vec<u8>>, body: impl Into<Vec<u8>>) -> Raw {
        self.body = body.into();
        self.header("Content-Type", content_type)
    }

    fn form(self, body: impl Into<Vec<u8>>) -> Raw {
        self.body("application/x-www-form-urlencoded", body)
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Raw {
        self.body("application/json", body)
    }

    fn delivered(mut self, delivery: Delivery) -> Raw {
        self.delivery = delivery;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: orizuru.test\r\nConnection: close\r\nAccept: application/json\r\n",
            self.method, self.path
        )
        .into_bytes();
        for (name, value) in &self.headers {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        let length = match self.delivery {
            Delivery::Whole => Some(self.body.len()),
            Delivery::Truncated | Delivery::Stalled => Some(self.body.len() + 100),
            Delivery::Chunked | Delivery::ChunkedCutOff => None,
        };
        match length {
            Some(length) => {
                head.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes())
            }
            None => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&self.body);
        head
    }
}

/// A response, as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    body: String,
}

/// Sends `raw` on a fresh connection and reads the response.
async fn send(address: &str, raw: &Raw) -> Reply {
    let shut_write = matches!(raw.delivery, Delivery::Truncated | Delivery::ChunkedCutOff);
    send_bytes(address, &raw.bytes(), shut_write).await
}

async fn send_bytes(address: &str, bytes: &[u8], shut_write: bool) -> Reply {
    let mut stream = TcpStream::connect(address).await.expect("the host accepts");
    // The host may answer and close before it read everything (a head too
    // large): the answer is what counts, so a failed write is not fatal.
    let sent = stream.write_all(bytes).await;
    if sent.is_ok() && shut_write {
        stream.shutdown().await.expect("the write half shuts");
    }
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(reply) = parse_reply(&received) {
                return Some(reply);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return parse_reply_at_end(&received),
                Ok(count) => received.extend_from_slice(&chunk[..count]),
            }
        }
    })
    .await;
    match read {
        Ok(Some(reply)) => reply,
        Ok(None) => panic!(
            "no whole response came back: {:?}",
            String::from_utf8_lossy(&received)
        ),
        Err(_) => panic!(
            "no response within 10s: {:?}",
            String::from_utf8_lossy(&received)
        ),
    }
}

/// A whole response with a Content-Length, once all of it is here.
fn parse_reply(received: &[u8]) -> Option<Reply> {
    let (status, headers, body) = split_reply(received)?;
    let length: usize = header(&headers, "content-length")?.parse().ok()?;
    (body.len() >= length).then(|| Reply {
        status,
        content_type: header(&headers, "content-type"),
        body: String::from_utf8_lossy(&body[..length]).into_owned(),
    })
}

/// Whatever response came before the connection ended.
fn parse_reply_at_end(received: &[u8]) -> Option<Reply> {
    parse_reply(received).or_else(|| {
        let (status, headers, body) = split_reply(received)?;
        Some(Reply {
            status,
            content_type: header(&headers, "content-type"),
            body: String::from_utf8_lossy(body).into_owned(),
        })
    })
}

/// A status, headers (names in lower case), and the bytes after the head.
type Parts<'a> = (u16, Vec<(String, String)>, &'a [u8]);

fn split_reply(received: &[u8]) -> Option<Parts<'_>> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some((status, headers, &received[end + 4..]))
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

/// Percent-encodes everything but unreserved characters, for paths and forms.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One row of the table: what is sent, and what must come back.
struct Case {
    label: String,
    request: Raw,
    status: u16,
    /// A part of the sentence that names the problem.
    says: String,
}

fn case(label: impl Into<String>, request: Raw, status: u16, says: impl Into<String>) -> Case {
    Case {
        label: label.into(),
        request,
        status,
        says: says.into(),
    }
}

/// Each route in each routing, on instance `db`: label, method, path, what it reads.
fn routes() -> Vec<(String, &'static str, String, Reads)> {
    ROUTINGS
        .iter()
        .flat_map(|prefix| {
            ROUTES.iter().map(move |(method, path, reads)| {
                let path = format!("{prefix}{}", path.replace("{name}", "db"));
                (format!("{method} {path}"), *method, path, *reads)
            })
        })
        .collect()
}

/// Wrong, missing and malformed credentials, on every route.
fn bad_auth() -> Vec<Case> {
    let needs = "needs basic auth";
    let wrong = "wrong username or password";
    let malformed = "the Authorization header is not valid basic auth";
    let mut cases = Vec::new();
    for (route, method, path, _) in routes() {
        let bare = || Raw::new(method, path.clone());
        let kinds: Vec<(&str, Raw, &str)> = vec![
            ("missing", bare(), needs),
            ("wrong password", bare().auth("queue", "guess"), wrong),
            (
                "unknown user",
                bare().auth("nobody", &password("queue")),
                wrong,
            ),
            ("empty pair", bare().auth("", ""), wrong),
            (
                "bearer",
                bare().header("Authorization", "Bearer abc"),
                malformed,
            ),
            (
                "not base64",
                bare().header("Authorization", "Basic %%%"),
                malformed,
            ),
            (
                "no colon",
                bare().header(
                    "Authorization",
                    format!("Basic {}", STANDARD.encode("queue")),
                ),
                malformed,
            ),
            (
                "binary bytes",
                bare().header("Authorization", b"Basic \xff\xfe".to_vec()),
                malformed,
            ),
        ];
        for (kind, request, says) in kinds {
            cases.push(case(format!("auth/{kind} {route}"), request, 401, says));
        }
        if path.starts_with("/services/queue") {
            let other = bare().auth("fake", &password("fake"));
            cases.push(case(
                format!("auth/another service's {route}"),
                other,
                401,
                wrong,
            ));
        }
    }
    cases
}

/// Services the host does not serve, named by the path.
fn unknown_services() -> Vec<Case> {
    let mut cases: Vec<Case> = ROUTES
        .iter()
        .map(|(method, path, _)| {
            let path = format!("/services/nope{}", path.replace("{name}", "db"));
            let request = Raw::new(method, path.clone()).with_queue_auth();
            case(
                format!("unknown service {method} {path}"),
                request,
                404,
                "no service \"nope\" is served here",
            )
        })
        .collect();
    for (id, shown) in [
        ("Queue", "\"Queue\""),
        ("queue%20", "\"queue \""),
        ("%0Aqueue", "\"\\nqueue\""),
        (&"q".repeat(1000), &format!("\"{}...\"", "q".repeat(40))),
    ] {
        let request = Raw::new("GET", format!("/services/{id}/resources/plans")).with_queue_auth();
        let says = format!("no service {shown} is served here");
        cases.push(case(format!("unknown service {shown}"), request, 404, says));
    }
    let stranger = Raw::new("GET", "/services/nope/resources/plans").auth("nobody", "guess");
    cases.push(case(
        "unknown service, unknown caller",
        stranger,
        401,
        "wrong username or password",
    ));
    cases
}

/// A kind of bad body: its name, Content-Type, bytes, status, and what the sentence says.
type BodyKind<'a> = (&'a str, &'a [u8], &'a [u8], u16, String);

/// Bodies tsuru never sends: other content types, broken forms, broken JSON.
fn bad_bodies() -> Vec<Case> {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    const JSON: &[u8] = b"application/json";
    let unsupported = |essence: &str| format!("content type \"{essence}\" is not one tsuru sends");
    let not_json = "the JSON body is not valid JSON";
    let kinds: Vec<BodyKind> = vec![
        (
            "xml",
            b"text/xml",
            b"<name>db</name>",
            415,
            unsupported("text/xml"),
        ),
        (
            "multipart",
            b"multipart/form-data; boundary=x",
            b"--x--",
            415,
            unsupported("multipart/form-data; boundary=x"),
        ),
        (
            "plain text",
            b"text/plain",
            b"db",
            415,
            unsupported("text/plain"),
        ),
        (
            "unreadable content type",
            b"application/\xffjson",
            b"{}",
            415,
            "the Content-Type header is not readable text".into(),
        ),
        (
            "form collision",
            FORM,
            b"parameters.a=1&parameters.a.b=2",
            400,
            "parameter \"a\" is given both as a value and as a group (\"parameters.a.b\")".into(),
        ),
        (
            "form collision reversed",
            FORM,
            b"parameters.a.b=2&parameters.a=1",
            400,
            "parameter \"a\" is given both as a value and as a group".into(),
        ),
        (
            "form value without a name",
            FORM,
            b"=1",
            400,
            "the form body has a value without a name".into(),
        ),
        (
            "form parameters without a name",
            FORM,
            b"parameters=1",
            400,
            "the form field \"parameters\" has no name".into(),
        ),
        (
            "form empty parameter part",
            FORM,
            b"parameters..x=1",
            400,
            "the form field \"parameters..x\" has an empty name part".into(),
        ),
        (
            "json cut off",
            JSON,
            b"{\"name\":",
            400,
            format!("{not_json}: it ends before its value does"),
        ),
        (
            "json list",
            JSON,
            b"[1]",
            400,
            "the JSON body must be an object of fields".into(),
        ),
        (
            "json string",
            JSON,
            b"\"db\"",
            400,
            "the JSON body must be an object of fields".into(),
        ),
        (
            "json parameters not an object",
            JSON,
            b"{\"parameters\": 3}",
            400,
            "the JSON field \"parameters\" must be an object".into(),
        ),
        (
            "json nested list",
            JSON,
            b"{\"tags\": [{\"a\": 1}]}",
            400,
            "the JSON field \"tags\" must be text or a list of texts".into(),
        ),
        (
            "json not utf-8",
            JSON,
            b"{\"name\": \"\xff\"}",
            400,
            format!("{not_json} (it breaks on line 1"),
        ),
        (
            "json trailing text",
            JSON,
            b"{\"name\": \"db\"} and more",
            400,
            format!("{not_json} (it breaks on line 1, character 16)"),
        ),
        (
            "json too deep",
            JSON,
            &[b'['; 1000],
            400,
            format!("{not_json} (it breaks on line 1"),
        ),
    ];
    let mut cases = Vec::new();
    for (route, method, path, reads) in routes() {
        if reads != Reads::Fields {
            continue;
        }
        for (kind, content_type, body, status, says) in &kinds {
            let request = Raw::new(method, path.clone())
                .with_queue_auth()
                .body(*content_type, *body);
            let label = format!("body/{kind} {route}");
            cases.push(case(label, request, *status, says.clone()));
        }
    }
    cases
}

/// Bodies missing the field that names what to act on.
fn missing_fields() -> Vec<Case> {
    let mut cases = Vec::new();
    for prefix in ROUTINGS {
        let create = format!("{prefix}/resources");
        for (kind, request) in [
            (
                "form",
                Raw::new("POST", create.clone())
                    .with_queue_auth()
                    .form("team=t&plan=small"),
            ),
            (
                "json",
                Raw::new("POST", create.clone())
                    .with_queue_auth()
                    .json("{\"team\": \"t\"}"),
            ),
            ("empty", Raw::new("POST", create.clone()).with_queue_auth()),
        ] {
            let says = "the field \"name\" is missing; it names the instance to create";
            cases.push(case(
                format!("missing name ({kind}) POST {create}"),
                request,
                400,
                says,
            ));
        }
        for (method, path) in [
            ("POST", "/resources/db/bind-app"),
            ("DELETE", "/resources/db/bind-app"),
            ("POST", "/resources/db/bind"),
            ("DELETE", "/resources/db/bind"),
            ("POST", "/resources/db"),
        ] {
            let path = format!("{prefix}{path}");
            let request = Raw::new(method, path.clone())
                .with_queue_auth()
                .form("app-hosts=&user=ana");
            let says = "the field \"app-name\" is missing; it names the app to bind or unbind";
            cases.push(case(
                format!("missing app-name {method} {path}"),
                request,
                400,
                says,
            ));
        }
    }
    cases
}

/// Names tsuru's rule refuses, in a create's body and in every instance path.
fn bad_instance_names() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, says) in bad_names() {
        let short: String = name.chars().take(12).collect();
        for prefix in ROUTINGS {
            let create = format!("{prefix}/resources");
            let form = Raw::new("POST", create.clone())
                .with_queue_auth()
                .form(format!("name={}&team=t", encoded(&name)));
            let json = Raw::new("POST", create.clone())
                .with_queue_auth()
                .json(serde_json::json!({ "name": name, "team": "t" }).to_string());
            cases.push(case(
                format!("name {short:?} in a form POST {create}"),
                form,
                400,
                says.clone(),
            ));
            cases.push(case(
                format!("name {short:?} in JSON POST {create}"),
                json,
                400,
                says.clone(),
            ));
            for (method, path, reads) in ROUTES {
                if !path.contains("{name}") {
                    continue;
                }
                let label = format!("name {short:?} in the path {method} {prefix}{path}");
                let path = format!("{prefix}{}", path.replace("{name}", &encoded(&name)));
                let mut request = Raw::new(method, path).with_queue_auth();
                if *reads == Reads::Fields {
                    request = request.form("app-name=web");
                }
                cases.push(case(label, request, 400, says.clone()));
            }
        }
    }
    cases
}

/// `..`, encoded dots and slashes, doubled slashes, bytes that are not UTF-8.
fn path_tricks() -> Vec<Case> {
    let dots = |segment: &str| {
        format!("the request path segment \"{segment}\" has a \".\" or \"..\" part")
    };
    let empty = "has an empty segment (\"//\")".to_owned();
    let not_utf8 = |segment: &str| format!("the request path segment \"{segment}\" is not UTF-8");
    let tricks: Vec<(&str, &str, String)> = vec![
        (
            "GET",
            "/resources/..%2F..%2Fetc/status",
            dots("..%2F..%2Fetc"),
        ),
        ("POST", "/resources/%2e%2e/bind-app", dots("%2e%2e")),
        ("POST", "/resources/%2E%2E/bind-app", dots("%2E%2E")),
        ("GET", "/resources/../resources/plans", dots("..")),
        ("GET", "/resources/./status", dots(".")),
        ("GET", "/resources/db/../../admin/services", dots("..")),
        (
            "POST",
            "/resources/db/..%2F..%2Fadmin",
            dots("..%2F..%2Fadmin"),
        ),
        (
            "POST",
            "/resources/db%2F..%2F..%2Fx/bind-app",
            dots("db%2F..%2F..%2Fx"),
        ),
        ("GET", "//resources/plans", empty.clone()),
        ("GET", "/resources//status", empty.clone()),
        ("POST", "/resources/db//bind-app", empty.clone()),
        ("DELETE", "/resources/db/binds//jobs/nightly", empty.clone()),
        ("GET", "/resources/%FF/status", not_utf8("%FF")),
        ("POST", "/resources/db/%C3%28", not_utf8("%C3%28")),
    ];
    let mut cases = Vec::new();
    for prefix in ROUTINGS {
        for (method, path, says) in &tricks {
            let path = format!("{prefix}{path}");
            let request = Raw::new(method, path.clone()).with_queue_auth();
            cases.push(case(
                format!("path {method} {path}"),
                request,
                400,
                says.clone(),
            ));
        }
    }
    for (path, says) in [
        ("/services//resources/plans", empty.clone()),
        ("/services/%2e%2e/resources/plans", dots("%2e%2e")),
        ("/services/%FF/resources/plans", not_utf8("%FF")),
        ("/services/queue/../fake/resources/plans", dots("..")),
    ] {
        let request = Raw::new("GET", path).with_queue_auth();
        cases.push(case(format!("path GET {path}"), request, 400, says));
    }
    cases
}

/// Methods tsuru never uses on a route.
fn bad_methods() -> Vec<Case> {
    let mut cases = Vec::new();
    for prefix in ROUTINGS {
        for (method, path) in [
            ("PATCH", "/resources/db"),
            ("GET", "/resources"),
            ("DELETE", "/resources"),
            ("PUT", "/resources/plans"),
            ("DELETE", "/resources/db/status"),
            ("GET", "/resources/db/bind-app"),
            ("POST", "/resources/db/binds/jobs/nightly"),
            ("GET", "/resources/db/hostname/web.example.com"),
            ("OPTIONS", "/resources/plans"),
            ("BREW", "/resources/db"),
        ] {
            let path = format!("{prefix}{path}");
            let request = Raw::new(method, path.clone()).with_queue_auth();
            let says = format!(
                "{method} is not a method tsuru uses on \"{}\"",
                path.trim_start_matches(prefix)
            );
            cases.push(case(format!("method {method} {path}"), request, 405, says));
        }
    }
    cases
}

/// Bodies too large, cut off, badly chunked or never finished, on every
/// route that reads one.
fn bad_deliveries() -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, (route, method, path, reads)) in routes().into_iter().enumerate() {
        if reads == Reads::Nothing {
            continue;
        }
        let request = || Raw::new(method, path.clone()).with_queue_auth();
        let too_large = request().form(format!("description={}", "x".repeat(17 * 1024)));
        cases.push(case(
            format!("body/too large {route}"),
            too_large,
            413,
            "the request body is larger than this host accepts (16 KiB); send a smaller one",
        ));
        let truncated = request().form("name=db").delivered(Delivery::Truncated);
        cases.push(case(
            format!("body/truncated {route}"),
            truncated,
            400,
            "the request body ended before the 107 bytes its Content-Length header announced",
        ));
        for (kind, framing, delivery) in [
            (
                "chunk size not hex",
                &b"zz\r\nname=db\r\n0\r\n\r\n"[..],
                Delivery::Chunked,
            ),
            (
                "chunk longer than its size",
                b"3\r\nname=db\r\n0\r\n\r\n",
                Delivery::Chunked,
            ),
            (
                "chunk size overflows",
                b"fffffffffffffffffffff\r\nname=db\r\n0\r\n\r\n",
                Delivery::Chunked,
            ),
            (
                "chunks cut off",
                b"7\r\nname=db\r\n",
                Delivery::ChunkedCutOff,
            ),
        ] {
            let chunked = request().form(framing).delivered(delivery);
            cases.push(case(
                format!("body/{kind} {route}"),
                chunked,
                400,
                "the request body's chunked encoding is broken or cut off",
            ));
        }
        // Each waits out the timeout; a few routes are enough.
        if index % 5 == 1 {
            let stalled = request().form("name=db").delivered(Delivery::Stalled);
            cases.push(case(
                format!("body/stalled {route}"),
                stalled,
                408,
                "the request body did not arrive within 1s; send it whole and at once",
            ));
        }
    }
    cases
}

/// What must never be in a sentence for a person: debug dumps, parser
/// positions, library and type names.
const NOT_FOR_PEOPLE: &[&str] = &[
    "at line",
    "::",
    "Error(",
    "Error {",
    "Some(",
    "None",
    "serde",
    "hyper",
    "axum",
    "Failed to",
    "Invalid URL",
    "Cannot parse",
    "panicked",
    "String",
    "\\u{",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_4xx_sentence_and_leaves_no_trace() {
    let server = server().await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let table = [
        ("auth", bad_auth()),
        ("unknown service", unknown_services()),
        ("body", bad_bodies()),
        ("missing field", missing_fields()),
        ("instance name", bad_instance_names()),
        ("path trick", path_tricks()),
        ("method", bad_methods()),
        ("delivery", bad_deliveries()),
    ];
    let cases: Vec<(&str, &Case)> = table
        .iter()
        .flat_map(|(kind, cases)| cases.iter().map(move |case| (*kind, case)))
        .collect();

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut samples = BTreeMap::new();
    for (
        kind,
        Case {
            label,
            request,
            status,
            says,
        },
    ) in &cases
    {
        let sent = Instant::now();
        let reply = send(&address, request).await;
        let took = sent.elapsed();
        let body = &reply.body;
        let problems: Vec<String> = [
            (reply.status != *status)
                .then(|| format!("status {} instead of {status}", reply.status)),
            (!(400..500).contains(&reply.status)).then(|| "not a 4xx".to_owned()),
            body.trim().is_empty().then(|| "an empty body".to_owned()),
            (body.contains('\n') || body.contains('\r') || body.contains('\0'))
                .then(|| "more than one line".to_owned()),
            (body.chars().count() > 300).then(|| "a body too long for a sentence".to_owned()),
            (!body.contains(says.as_str())).then(|| format!("no mention of {says:?}")),
            NOT_FOR_PEOPLE
                .iter()
                .find(|word| body.contains(*word))
                .map(|word| format!("{word:?} in the sentence")),
            (!reply
                .content_type
                .as_deref()
                .is_some_and(|kind| kind.starts_with("text/plain")))
            .then(|| format!("content type {:?}", reply.content_type)),
            (took > Duration::from_secs(3)).then(|| format!("an answer after {took:?}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        samples
            .entry(*kind)
            .or_insert_with(|| format!("{} {body:?}", reply.status));
        if !problems.is_empty() {
            failures.push(format!(
                "{label}: {} ({} {body:?})",
                problems.join(", "),
                reply.status
            ));
        }
    }
    let elapsed = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing reached the ledger: no instance of either service at all, and
    // no instance, binding or event under any name the table used.
    let mut names: BTreeSet<String> = bad_names().into_iter().map(|(name, _)| name).collect();
    names.extend(["db", "nope", "web"].map(str::to_owned));
    let ledger = &server.host.ledger;
    for service in ["queue", "fake"] {
        for name in &names {
            assert!(
                ledger
                    .instance(service, name)
                    .await
                    .expect("ledger")
                    .is_none(),
                "{service}/{name:?}"
            );
            assert!(
                ledger
                    .bindings(service, name)
                    .await
                    .expect("ledger")
                    .is_empty(),
                "{service}/{name:?}"
            );
            assert!(
                ledger
                    .events(service, name)
                    .await
                    .expect("ledger")
                    .is_empty(),
                "{service}/{name:?}"
            );
        }
    }
    let whole = SqliteLedger::open(server.data_dir()).expect("the ledger opens");
    for service in ["queue", "fake"] {
        assert_eq!(
            whole.count_instances(service).await.expect("ledger"),
            0,
            "{service}"
        );
    }

    for (kind, sample) in samples {
        println!("{kind:<16} e.g. {sample}");
    }
    println!(
        "{} malformed requests, each a 4xx with a sentence, in {:.2}s",
        cases.len(),
        elapsed.as_secs_f64()
    );
    assert!(cases.len() >= 200, "only {} cases", cases.len());
}

/// What hyper refuses before any handler runs: a broken request line or
/// header, headers too large or too many. hyper answers those itself with a
/// bare status (no sentence is possible there without replacing its
/// parser); the host must stay up and serve the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_hyper_refuses_gets_a_4xx_and_the_host_keeps_serving() {
    let server = server().await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let plans = Raw::new("GET", "/resources/plans")
        .with_queue_auth()
        .bytes();
    let head = |extra: &[u8]| {
        let mut bytes =
            b"GET /resources/plans HTTP/1.1\r\nHost: orizuru.test\r\nConnection: close\r\n"
                .to_vec();
        bytes.extend_from_slice(extra);
        bytes.extend_from_slice(b"\r\n");
        bytes
    };
    let many_headers: Vec<u8> = (0..1000)
        .flat_map(|index| format!("X-Header-{index}: {index}\r\n").into_bytes())
        .collect();
    let huge_header = [b"X-Huge: ".to_vec(), vec![b'a'; 1 << 20], b"\r\n".to_vec()].concat();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "garbage request line",
            b"\x16\x03\x01 hello there\r\n\r\n".to_vec(),
            400,
        ),
        ("no version", b"GET /resources/plans\r\n\r\n".to_vec(), 400),
        (
            "header with a control byte",
            head(b"X-Bad: a\x01b\r\n"),
            400,
        ),
        ("header name with a space", head(b"Bad Header: x\r\n"), 400),
        ("header without a colon", head(b"Authorization\r\n"), 400),
        ("1 MiB header", head(&huge_header), 431),
        ("1000 headers", head(&many_headers), 431),
        (
            "content-length not a number",
            head(b"Content-Length: lots\r\n"),
            400,
        ),
        (
            "two different content-lengths",
            head(b"Content-Length: 1\r\nContent-Length: 2\r\n"),
            400,
        ),
    ];
    for (label, bytes, status) in cases {
        let reply = send_bytes(&address, &bytes, false).await;
        assert_eq!(reply.status, status, "{label}: {:?}", reply.body);
        // hyper answers before any handler: no body, so no sentence.
        assert_eq!(reply.body, "", "{label}");
        let next = send_bytes(&address, &plans, false).await;
        assert_eq!(next.status, 200, "after {label}: {:?}", next.body);
    }
}

/// A client that starts a request and never finishes its headers (slowloris)
/// holds its connection only for `request_read_timeout_secs`: hyper then
/// closes it without an answer (no sentence is possible there), and the
/// host goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_cut_at_the_read_timeout() {
    let server = server().await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&address)
        .await
        .expect("the host accepts");
    stalled
        .write_all(b"GET /resources/plans HTTP/1.1\r\nHost: orizuru.test\r\nX-Slow: ")
        .await
        .expect("the first bytes are sent");
    let started = std::time::Instant::now();
    let mut received = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut received)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "the connection is still open after 10s"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "cut after {waited:?}, before the 1s read timeout"
    );
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    let plans = Raw::new("GET", "/resources/plans")
        .with_queue_auth()
        .bytes();
    assert_eq!(send_bytes(&address, &plans, false).await.status, 200);
}

/// What the fuzzers found (host/fuzz/README.md): each is now a 4xx sentence,
/// or the right service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_fuzzers_found_is_answered_with_a_sentence() {
    let server = server().await;
    let queue = server.tsuru("queue");
    // Deep nesting would have crashed the host or made an unreadable instance.
    let deep = format!("parameters.{}a", "a.".repeat(5_000));
    let answer = queue
        .form(
            Method::POST,
            "/resources",
            &[("name", "deep"), (&deep, "1")],
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("levels deep; use at most 32"),
        "{}",
        answer.body
    );
    let raw = queue
        .form(
            Method::POST,
            "/resources",
            &[
                ("name", "rawx"),
                ("parameters.p.$serde_json::private::RawValue", "b"),
            ],
        )
        .await;
    assert_eq!(raw.status, 400, "{}", raw.body);
    assert!(raw.body.contains("starting with '$'"), "{}", raw.body);
    assert!(
        server
            .host
            .ledger
            .instance("queue", "rawx")
            .await
            .expect("ledger")
            .is_none()
    );
    // The admin API names a method it does not use.
    let patched = server
        .admin()
        .send(
            server
                .admin()
                .request(Method::PATCH, "/admin/services/queue"),
        )
        .await;
    assert_eq!(patched.status, 405);
    assert!(
        patched
            .body
            .starts_with("PATCH is not a method the admin API uses on"),
        "{}",
        patched.body
    );
    // `/services/<id>/` is the service the path names, at its root.
    let foreign = Tsuru::new(&server.url, "fake", &password("fake"));
    let answer = foreign
        .send(foreign.request(Method::GET, "/services/queue/"))
        .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let own = queue
        .send(queue.request(Method::GET, "/services/queue/"))
        .await;
    assert_eq!(own.status, 404, "{}", own.body);
    assert_eq!(own.body, "the queue service has no service-level route /");
}
