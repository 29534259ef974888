//! `wasi:logging` (`logging = true`): a plugin's log lines, into the host's
//! log with the call's service, instance, request and event, its secrets
//! blanked out, each line and context cut to a size, and at most the
//! service's `max_log_lines` per call.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context as _;

use super::capability::{CallInfo, Capability, Holds, Reading, Start};
use crate::call_log::{CallTags, LogBudget, Redactor};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/since_v0.1.0/deps/logging",
        world: "wasi:logging/imports",
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// Longer messages are cut here.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longer contexts are cut here: a context names where a line comes from.
const MAX_CONTEXT_BYTES: usize = 256;

/// `wasi:logging/logging`, granted by `logging = true`.
pub struct Logging;

/// One call's logging: what it may still log, and what its lines carry.
pub struct LoggingCall {
    budget: LogBudget,
    redactor: Redactor,
    tags: CallTags,
}

impl Capability for Logging {
    const PREFIX: &'static str = "wasi:logging/";
    const KEY: &'static str = "`logging = true`";

    /// `logging`.
    type File = Option<bool>;
    type Grant = bool;
    type Host = ();
    type Granted = ();
    type Call = LoggingCall;

    fn check(file: Option<bool>, _reading: &Reading<'_>) -> Result<bool, String> {
        Ok(file.unwrap_or(false))
    }

    fn is_granted(grant: &bool) -> bool {
        *grant
    }

    fn start(_start: &Start<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn granted(_grant: &bool, _host: &(), _service: &Arc<str>) {}

    fn call(_granted: &(), call: &CallInfo) -> LoggingCall {
        LoggingCall {
            budget: LogBudget::new(call.service.clone(), call.log_lines),
            redactor: call.redactor.clone(),
            tags: call.tags.clone(),
        }
    }

    fn finish(call: &LoggingCall) {
        call.budget.finish(&call.tags);
    }

    fn add_to_linker<T: Holds<Self>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        logging::add_to_linker::<T, HasSelf<LoggingCall>>(linker, |store| {
            <T as Holds<Logging>>::call_state(store).0
        })
        .context("cannot link wasi:logging for plugins")
    }
}

/// `text` with its secrets blanked out, then cut to `max` bytes.
fn redacted_and_cut(redactor: &Redactor, text: &str, max: usize) -> String {
    let mut text = redactor.redact(text).into_owned();
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [cut]");
    }
    text
}

impl logging::Host for LoggingCall {
    fn log(&mut self, level: Level, context: String, message: String) {
        if !self.budget.take() {
            return;
        }
        let message = redacted_and_cut(&self.redactor, &message, MAX_MESSAGE_BYTES);
        let context = redacted_and_cut(&self.redactor, &context, MAX_CONTEXT_BYTES);
        let tags = &self.tags;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "orizuru::plugin",
                    $level,
                    service = %self.budget.service(),
                    instance = tags.instance.as_deref(),
                    request_id = tags.request_id.as_deref(),
                    event_id = tags.event_id.as_deref(),
                    context = (!context.is_empty()).then_some(&*context),
                    critical = matches!(level, Level::Critical).then_some(true),
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error | Level::Critical => emit!(tracing::Level::ERROR),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_redacted_before_it_is_cut() {
        let redactor = Redactor::new(["hunter2"]);
        assert_eq!(redacted_and_cut(&redactor, "abchunter2", 5), "abc[s [cut]");
        assert_eq!(redacted_and_cut(&redactor, "é", 1), " [cut]");
    }
}
