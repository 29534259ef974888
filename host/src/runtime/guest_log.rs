//! A plugin's stdout and stderr, line by line into the host's log.
//!
//! Nothing a plugin prints reaches the host's own stdio. Each line is logged
//! with the service and request it came from; past a per-call budget the
//! rest is counted and dropped, so a chatty plugin cannot flood the log.
//! Secrets are blanked out before a line is cut, so that a secret across a
//! cut is not logged in two halves.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::call_log::Redactor;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How many bytes of output one call may log, per stream.
const BUDGET_BYTES: usize = 64 * 1024;
/// Longer lines are cut here and logged in pieces.
const MAX_LINE_BYTES: usize = 4 * 1024;

/// One stream (stdout or stderr) of one call.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<Lines>>,
}

struct Lines {
    service: Arc<str>,
    stream: &'static str,
    request_id: Option<String>,
    partial: Vec<u8>,
    logged: usize,
    dropped: usize,
    /// Lines still allowed in this call.
    lines_left: u32,
    dropped_lines: usize,
    redactor: Redactor,
}

impl GuestLog {
    pub fn new(
        service: Arc<str>,
        stream: &'static str,
        request_id: Option<String>,
        max_lines: u32,
        redactor: Redactor,
    ) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Lines {
                service,
                stream,
                request_id,
                partial: Vec::new(),
                logged: 0,
                dropped: 0,
                lines_left: max_lines,
                dropped_lines: 0,
                redactor,
            })),
        }
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Lines> {
        // A poisoned lock only means a panic while logging; the lines are still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        let mut lines = self.lines();
        let room = BUDGET_BYTES.saturating_sub(lines.logged);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        lines.logged += kept.len();
        lines.dropped += dropped.len();
        // A piece is cut only once a secret starting before the cut could
        // be seen whole.
        let hold = MAX_LINE_BYTES + lines.redactor.longest().saturating_sub(1);
        for &byte in kept {
            if byte == b'\n' {
                lines.emit();
            } else {
                lines.partial.push(byte);
                if lines.partial.len() >= hold {
                    lines.emit_piece();
                }
            }
        }
        if !dropped.is_empty() {
            // The line is cut by the budget: no more of it will come to
            // complete a secret it ends with the start of.
            let keep = lines.redactor.without_secret_start(&lines.partial);
            lines.partial.truncate(keep);
        }
    }

    /// Starts the budget of a new call, tagged with its request, for a
    /// plugin instance that serves more than one call.
    pub fn renew(&self, request_id: Option<String>, max_lines: u32) {
        let mut lines = self.lines();
        lines.request_id = request_id;
        lines.partial.clear();
        lines.logged = 0;
        lines.dropped = 0;
        lines.lines_left = max_lines;
        lines.dropped_lines = 0;
    }

    /// Logs what is left of the last line, and how much was dropped.
    pub fn finish(&self) {
        let mut lines = self.lines();
        if !lines.partial.is_empty() {
            lines.emit();
        }
        if lines.dropped > 0 || lines.dropped_lines > 0 {
            tracing::warn!(
                service = %lines.service,
                stream = lines.stream,
                request_id = lines.request_id.as_deref(),
                dropped_bytes = lines.dropped,
                dropped_lines = lines.dropped_lines,
                "plugin output past the call's budget ({BUDGET_BYTES} bytes, or the service's max_log_lines) was dropped"
            );
            lines.dropped = 0;
            lines.dropped_lines = 0;
        }
    }
}

impl Lines {
    /// Logs the first piece of a long line: its first `MAX_LINE_BYTES`, or
    /// up to the end of a secret across that cut.
    fn emit_piece(&mut self) {
        let cut = self
            .redactor
            .cut_after_secrets(&self.partial, MAX_LINE_BYTES);
        let rest = self.partial.split_off(cut);
        self.emit();
        self.partial = rest;
    }

    fn emit(&mut self) {
        if self.lines_left == 0 {
            self.dropped_lines += 1;
            self.partial.clear();
            return;
        }
        self.lines_left -= 1;
        let line = String::from_utf8_lossy(&self.partial);
        let line = self.redactor.redact(&line);
        tracing::info!(
            target: "orizuru::plugin",
            service = %self.service,
            stream = self.stream,
            request_id = self.request_id.as_deref(),
            "{}",
            line.trim_end_matches('\r')
        );
        self.partial.clear();
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestLog::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: what is past the budget is counted and dropped.
        Ok(MAX_LINE_BYTES)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        GuestLog::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
