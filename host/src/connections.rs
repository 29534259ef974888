//! The connections the host accepts: how many may be open at once, what a
//! connection past that cap is told, and what a client speaking HTTP/2 is
//! told. The host speaks HTTP/1.1 only, as tsuru's client does: HTTP/2
//! would be attack surface (streams, header lists, pings) that no caller
//! needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The sentence a connection past the cap is answered with.
pub const FULL: &str = "this host has as many connections open as its max_connections allows; try again in a moment, and reuse one connection for many requests";

/// The sentence an HTTP/2 client is told, in its GOAWAY frame.
pub const HTTP1_ONLY: &str =
    "this host speaks HTTP/1.1 only, as tsuru does; send the request over HTTP/1.1";

/// How long a refused connection is given to take its answer before it is
/// dropped; see [`answer_and_close`].
const LINGER: Duration = Duration::from_secs(1);

/// Refused connections that may linger at once; past it, they are dropped
/// right after their answer is written.
const MAX_LINGERING: usize = 64;

/// How often the log says that connections are being refused.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The cap on open connections, and what it counts.
pub struct Connections {
    open: Arc<Semaphore>,
    lingering: Arc<Semaphore>,
    max: usize,
    metrics: Arc<Metrics>,
    started: Instant,
    /// Milliseconds after `started` of the last warning, plus one (0: never).
    last_warning: AtomicU64,
    refused_since_warning: AtomicU64,
}

/// One open connection's place under the cap; dropping it frees the place.
pub struct Open {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

impl Connections {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            open: Arc::new(Semaphore::new(max)),
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
            max,
            metrics,
            started: Instant::now(),
            last_warning: AtomicU64::new(0),
            refused_since_warning: AtomicU64::new(0),
        }
    }

    /// A place for a new connection, or `None` when `max_connections` are open.
    pub fn admit(&self) -> Option<Open> {
        let permit = self.open.clone().try_acquire_owned().ok()?;
        self.metrics.connection_opened();
        Some(Open {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    /// Answers a connection past the cap with a 503 and closes it, without
    /// holding on to it for long: the answer is written as soon as the
    /// request starts to arrive (a fresh socket's send buffer takes it
    /// whole), and the connection waits and lingers a moment only while few
    /// others do.
    pub fn refuse(&self, mut stream: TcpStream, peer: std::net::SocketAddr) {
        self.metrics.connection_refused();
        self.warn_refused(peer);
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{FULL}",
            FULL.len()
        );
        let lingering = self.lingering.clone().try_acquire_owned().ok();
        tokio::spawn(async move {
            // An HTTP client reads an answer that comes before its request
            // as a broken connection: give the request a moment to arrive.
            if lingering.is_some() {
                tokio::time::timeout(LINGER, read_head(&mut stream))
                    .await
                    .ok();
            }
            answer_and_close(stream, answer.as_bytes(), lingering).await;
        });
    }

    /// A warning at most every [`WARN_EVERY`], counting the connections
    /// refused since the last one.
    fn warn_refused(&self, peer: std::net::SocketAddr) {
        let refused = self.refused_since_warning.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused_since_warning.store(0, Ordering::Relaxed);
            tracing::warn!(
                %peer,
                "refused {refused} connection(s) with 503: {} are open, the max_connections of the config",
                self.max
            );
        }
    }
}

/// Reads (and drops) a request's head: up to its blank line, 8 KiB or the
/// end of the stream.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(read) if read > 0 => head.extend_from_slice(&buffer[..read]),
            _ => return,
        }
    }
}

/// How a connection opens.
enum Opening {
    /// Anything but HTTP/2's preface: hyper reads it as HTTP/1.
    Http1,
    /// HTTP/2's preface, with prior knowledge.
    Http2,
    /// The client closed the connection first.
    Closed,
}

/// Waits up to `timeout` for a connection's first bytes and tells whether
/// they open HTTP/2; `None` when none came in time. An HTTP/1 request is
/// known from its first byte; only a client that sends the preface slowly
/// is waited for.
async fn opening(stream: &TcpStream, timeout: Duration) -> Option<std::io::Result<Opening>> {
    let read = async {
        let mut start = [0u8; HTTP2_PREFACE.len()];
        loop {
            let read = stream.peek(&mut start).await?;
            if read == 0 {
                return Ok(Opening::Closed);
            }
            if !HTTP2_PREFACE.starts_with(&start[..read]) {
                return Ok(Opening::Http1);
            }
            if read == HTTP2_PREFACE.len() {
                return Ok(Opening::Http2);
            }
            // Part of the preface is in; peek returns at once until more comes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(timeout, read).await.ok()
}

/// Whether `stream` should go on to hyper as HTTP/1: waits up to `timeout`
/// for its first byte (a silent connection is closed), and tells an HTTP/2
/// client, in its own framing, that this host speaks HTTP/1.1.
pub async fn http1_or_close(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    timeout: Duration,
) -> Option<TcpStream> {
    match opening(&stream, timeout).await {
        Some(Ok(Opening::Http1)) => Some(stream),
        Some(Ok(Opening::Http2)) => {
            tracing::debug!(%peer, "an HTTP/2 connection was told to use HTTP/1.1");
            answer_and_close(stream, &http1_required(), None).await;
            None
        }
        Some(Ok(Opening::Closed)) => None,
        Some(Err(err)) => {
            tracing::debug!(%peer, "a connection failed before its first request: {err}");
            None
        }
        None => {
            tracing::debug!(%peer, "closed a connection that sent nothing within request_read_timeout_secs");
            None
        }
    }
}

/// An HTTP/2 server's opening (an empty SETTINGS frame), then a GOAWAY with
/// the error HTTP_1_1_REQUIRED and [`HTTP1_ONLY`] as its debug data, which
/// clients show (and some, such as curl, act on by retrying over HTTP/1.1).
fn http1_required() -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const HTTP_1_1_REQUIRED: u32 = 0xd;
    let frame = |kind: u8, payload: &[u8]| {
        let length = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&length[1..]);
        frame.extend_from_slice(&[kind, 0]);
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    };
    let mut goaway = Vec::new();
    goaway.extend_from_slice(&0u32.to_be_bytes()); // no stream was processed
    goaway.extend_from_slice(&HTTP_1_1_REQUIRED.to_be_bytes());
    goaway.extend_from_slice(HTTP1_ONLY.as_bytes());
    let mut answer = frame(SETTINGS, &[]);
    answer.extend(frame(GOAWAY, &goaway));
    answer
}

/// Writes `answer` and closes the connection. Closing a socket with unread
/// bytes makes the kernel reset it, which can destroy the answer before the
/// client reads it; so, while `lingering` holds a place, what the client
/// sends is read and dropped for up to [`LINGER`] first.
async fn answer_and_close(
    mut stream: TcpStream,
    answer: &[u8],
    lingering: Option<OwnedSemaphorePermit>,
) {
    let written = tokio::time::timeout(LINGER, stream.write_all(answer)).await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    if stream.shutdown().await.is_err() || lingering.is_none() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
    };
    // Either the client closed its side, or the moment is over: both end it.
    if tokio::time::timeout(LINGER, drain).await.is_err() {
        tracing::trace!("a refused connection was dropped after lingering");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_clients_get_settings_then_goaway_http_1_1_required() {
        let answer = http1_required();
        // SETTINGS: empty, stream 0.
        assert_eq!(&answer[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let goaway = &answer[9..];
        let length = (usize::from(goaway[1]) << 8) | usize::from(goaway[2]);
        assert_eq!(goaway[0], 0);
        assert_eq!(length, 8 + HTTP1_ONLY.len());
        assert_eq!(goaway.len(), 9 + length);
        assert_eq!(goaway[3], 7);
        assert_eq!(&goaway[5..9], &[0, 0, 0, 0]);
        assert_eq!(&goaway[13..17], &[0, 0, 0, 0xd]);
        assert_eq!(&goaway[17..], HTTP1_ONLY.as_bytes());
    }
}
