//! Connections no client gets to keep: a connection that sends nothing, one
//! with unfinished headers and an idle keep-alive connection are all closed
//! by the host after `request_read_timeout_secs`, while tsuru is served
//! beside hundreds of them; an HTTP/2 client is told, in HTTP/2, to use
//! HTTP/1.1; and past `max_connections` a connection is answered 503 and
//! closed, until the open ones close.

use std::time::Duration;

use orizuru::connections::{FULL, HTTP1_ONLY};
use orizuru_tests::{Server, service};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the host to close a connection before it
/// fails: a guard against hanging, far past any timeout the tests set.
const GUARD: Duration = Duration::from_secs(30);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn connect(server: &Server) -> TcpStream {
    let address = server.url.trim_start_matches("http://");
    TcpStream::connect(address)
        .await
        .expect("the host accepts connections")
}

/// Everything the host sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
                // A reset closes it as well.
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(err) => panic!("{what}: reading failed: {err}"),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the host still held the connection open after {GUARD:?}; got {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// Sends a keep-alive request and reads its whole answer.
async fn one_request(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: orizuru\r\n\r\n")
        .await
        .expect("the request is sent");
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.ends_with(b"alive\n") {
        let read = tokio::time::timeout(GUARD, stream.read(&mut buffer))
            .await
            .expect("the host answers")
            .expect("the answer is read");
        assert!(read > 0, "closed before answering: {received:?}");
        received.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// One value of `/metrics`, asked on a connection of its own.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let page = reqwest::get(format!("{}/metrics", server.url))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn idle_and_half_open_connections_are_closed_while_tsuru_is_served() {
    let server = Server::start_config(&format!(
        "request_read_timeout_secs = 1\nmax_connections = 2000\n{}",
        service("fake", "fake", "")
    ))
    .await;

    let mut silent = Vec::new();
    let mut half_open = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..200 {
        silent.push(connect(&server).await);
    }
    for index in 0..200 {
        let mut stream = connect(&server).await;
        let partial = if index % 2 == 0 {
            "POST /resources HTTP/1.1\r\nhost: orizuru\r\ncontent-ty".to_owned()
        } else {
            "GET /resources/pla".to_owned()
        };
        stream
            .write_all(partial.as_bytes())
            .await
            .expect("half a request is sent");
        half_open.push(stream);
    }
    for _ in 0..100 {
        let mut stream = connect(&server).await;
        let answer = one_request(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        idle.push(stream);
    }

    // tsuru is answered beside them.
    let tsuru = server.tsuru("fake");
    assert_eq!(tsuru.get("/resources/plans").await.status, 200);
    let created = tsuru
        .form(Method::POST, "/resources", &[("name", "db1")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let bound = tsuru.bind_app("db1", "web").await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    assert_eq!(bound.json()["SOMEVAR"], "somevalue");

    // The host closes every one of them, with nothing to say to those that
    // never finished a request.
    for stream in &mut silent {
        assert!(until_closed(stream, "a silent connection").await.is_empty());
    }
    for stream in &mut half_open {
        assert!(
            until_closed(stream, "a connection with half a request")
                .await
                .is_empty()
        );
    }
    for stream in &mut idle {
        assert!(
            until_closed(stream, "an idle keep-alive connection")
                .await
                .is_empty()
        );
    }

    // All of them are freed: the only open connection is the one asking.
    let mut open = None;
    for _ in 0..300 {
        open = metric(&server, "orizuru_connections_open").await;
        if open == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, Some(1.0), "connections still counted as open");
    assert_eq!(tsuru.get("/resources/db1/status").await.status, 204);
}

/// An HTTP/2 frame header.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes();
    let mut frame = length[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// What an HTTP/2 client is sent: an empty SETTINGS frame, then a GOAWAY
/// with HTTP_1_1_REQUIRED and the sentence, then the end.
fn assert_told_to_use_http1(received: &[u8], what: &str) {
    assert!(
        received.len() > 9 + 17,
        "{what}: too short an answer: {received:?}"
    );
    assert_eq!(&received[..9], &frame(4, 0, 0, &[])[..], "{what}: SETTINGS");
    let goaway = &received[9..];
    assert_eq!(goaway[3], 7, "{what}: a GOAWAY frame");
    assert_eq!(
        &goaway[13..17],
        &[0, 0, 0, 0xd],
        "{what}: HTTP_1_1_REQUIRED"
    );
    assert_eq!(
        String::from_utf8_lossy(&goaway[17..]),
        HTTP1_ONLY,
        "{what}: the sentence"
    );
}

#[tokio::test]
async fn http2_clients_are_told_to_use_http1_and_closed() {
    let server = Server::start_config(&format!(
        "request_read_timeout_secs = 1\n{}",
        service("fake", "fake", "")
    ))
    .await;

    // A client with prior knowledge that opens and then waits.
    let mut idle = connect(&server).await;
    idle.write_all(&[PREFACE, &frame(4, 0, 0, &[])].concat())
        .await
        .expect("the preface is sent");
    let received = until_closed(&mut idle, "an idle HTTP/2 connection").await;
    assert_told_to_use_http1(&received, "an idle HTTP/2 connection");

    // One whose HEADERS frame never ends (no END_HEADERS, no CONTINUATION).
    let mut unfinished = connect(&server).await;
    unfinished
        .write_all(
            &[
                PREFACE,
                &frame(4, 0, 0, &[]),
                &frame(1, 0x1, 1, &[0x82, 0x86]),
            ]
            .concat(),
        )
        .await
        .expect("the frames are sent");
    let received = until_closed(&mut unfinished, "unfinished HTTP/2 headers").await;
    assert_told_to_use_http1(&received, "unfinished HTTP/2 headers");

    // The preface sent a few bytes at a time is still recognised.
    let mut slow = connect(&server).await;
    for chunk in PREFACE.chunks(5) {
        slow.write_all(chunk).await.expect("a piece is sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = until_closed(&mut slow, "a slow HTTP/2 preface").await;
    assert_told_to_use_http1(&received, "a slow HTTP/2 preface");

    // HTTP/1.1 is served as ever.
    assert_eq!(
        server.tsuru("fake").get("/resources/plans").await.status,
        200
    );
}

#[tokio::test]
async fn past_max_connections_a_connection_is_answered_503_until_some_close() {
    let server = Server::start_config(&format!(
        "max_connections = 20\n{}",
        service("fake", "fake", "")
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&server).await;
        let answer = one_request(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }

    // One more, sending nothing: the answer is written to it, then it is closed.
    let mut extra = connect(&server).await;
    let answer = String::from_utf8(until_closed(&mut extra, "a connection past the cap").await)
        .expect("a text answer");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(answer.ends_with(&format!("\r\n\r\n{FULL}")), "{answer}");

    // A tsuru client sees the same answer, whole.
    let tsuru = server.tsuru("fake");
    let refused = tsuru.get("/resources/plans").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.body, FULL);
    assert_eq!(refused.headers["connection"], "close");

    // Once the held connections close, new ones are served again.
    drop(held);
    let mut status = 0;
    for _ in 0..300 {
        status = tsuru.get("/resources/plans").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "new connections are served again");
    let refused = metric(&server, "orizuru_connections_refused_total")
        .await
        .expect("the refused connections are counted");
    assert!(refused >= 2.0, "{refused}");
}
