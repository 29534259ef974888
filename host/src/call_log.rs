//! What a call's plugin writes on its way to the host's log and to tsuru:
//! the call's tags, the [`Redactor`] that blanks the service's secrets out
//! (of log lines, stdout and stderr, SQL and HTTP errors, and answers), and
//! the [`LogBudget`] of `wasi:logging` lines.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

/// What one call is about, for the lines it logs.
#[derive(Debug, Clone, Default)]
pub struct CallTags {
    pub request_id: Option<String>,
    /// tsuru's event id (`X-Tsuru-Eventid`).
    pub event_id: Option<String>,
    pub instance: Option<String>,
}

/// Blanks a service's secrets out of text its plugin wrote.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
}

impl Redactor {
    /// Blanks out each of `secrets` (the empty ones are nothing to blank).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|secret| !secret.is_empty())
            .map(str::to_owned)
            .collect();
        // The longest first, so a secret that contains another is blanked whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Self {
            secrets: secrets.into(),
        }
    }

    /// The length of the longest secret, 0 when there is none.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// Where to cut `text` near `at` so that no secret is split: `at`,
    /// moved to the end of any secret that starts before it and ends after.
    pub fn cut_after_secrets(&self, text: &[u8], at: usize) -> usize {
        let mut cut = at.min(text.len());
        loop {
            let moved = self.secrets.iter().find_map(|secret| {
                let secret = secret.as_bytes();
                (cut.saturating_sub(secret.len() - 1)..cut)
                    .find(|&start| text[start..].starts_with(secret))
                    .map(|start| start + secret.len())
            });
            match moved {
                Some(end) if end > cut => cut = end,
                _ => return cut,
            }
        }
    }

    /// How much of `text` to keep when nothing more will follow it: all
    /// but a tail that could be the start of a secret.
    pub fn without_secret_start(&self, text: &[u8]) -> usize {
        let tail = self
            .secrets
            .iter()
            .filter_map(|secret| {
                let secret = secret.as_bytes();
                (1..secret.len())
                    .rev()
                    .find(|&length| text.ends_with(&secret[..length]))
            })
            .max()
            .unwrap_or(0);
        text.len() - tail
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), "[secret]"));
            }
        }
        text
    }
}

/// The lines one call may still log through `wasi:logging` (the service's
/// `max_log_lines`); the rest are counted and dropped.
pub struct LogBudget {
    service: Arc<str>,
    state: Mutex<(u32, usize)>,
}

impl LogBudget {
    pub fn new(service: Arc<str>, lines: u32) -> Self {
        Self {
            service,
            state: Mutex::new((lines, 0)),
        }
    }

    /// The service whose call this is.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether one more line may be logged.
    pub fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 == 0 {
            state.1 += 1;
            false
        } else {
            state.0 -= 1;
            true
        }
    }

    /// Says how many lines were dropped, if any.
    pub fn finish(&self, tags: &CallTags) {
        let dropped = self.state.lock().unwrap_or_else(PoisonError::into_inner).1;
        if dropped > 0 {
            tracing::warn!(
                service = %self.service,
                request_id = tags.request_id.as_deref(),
                dropped_lines = dropped,
                "plugin log lines past the service's max_log_lines were dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut secrets: Vec<String> = secrets.iter().map(|&secret| secret.to_owned()).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Redactor {
            secrets: secrets.into(),
        }
    }

    #[test]
    fn a_cut_moves_past_a_secret_it_would_split() {
        let redactor = redactor(&["hunter2", "2xyz"]);
        assert_eq!(redactor.longest(), 7);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 4), 9);
        // A secret that overlaps the first's end moves the cut again.
        assert_eq!(redactor.cut_after_secrets(b"abhunter2xyzcd", 4), 12);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 2), 2);
        assert_eq!(redactor.cut_after_secrets(b"abhunter2cd", 9), 9);
        assert_eq!(Redactor::default().cut_after_secrets(b"abc", 2), 2);
    }

    #[test]
    fn a_tail_that_may_start_a_secret_is_left_out() {
        let redactor = redactor(&["hunter2"]);
        assert_eq!(redactor.without_secret_start(b"pw=hunt"), 3);
        assert_eq!(redactor.without_secret_start(b"pw=hunter2"), 10);
        assert_eq!(redactor.without_secret_start(b"pw=x"), 4);
    }
}
