//! Reloads when the config file or a plugin file it names changes on disk.
//!
//! The watch is on the folders holding those files, not on the files, so
//! that a file replaced by `mv` or by an editor's write-and-rename is seen
//! like one written in place. Events are debounced: a burst of writes is
//! one reload, and a plugin file caught half-written fails validation and
//! is tried again when the last write lands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::task::JoinHandle;

use super::Deployer;

/// How long the files must be quiet before a reload.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches while it lives.
pub struct Watcher {
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    pub async fn start(deployer: Arc<Deployer>) -> anyhow::Result<Watcher> {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(DEBOUNCE, move |result| {
            // The receiver is gone only when the host is.
            events.send(result).ok();
        })
        .map_err(|err| anyhow::anyhow!("cannot watch the config and plugin files: {err}"))?;
        let mut watched = Watched::default();
        watched.sync(&mut debouncer, deployer.watched_files());
        // The task must not keep the deployer (and the plugins it maps)
        // alive once the host is gone.
        let deployer = Arc::downgrade(&deployer);
        let task = tokio::spawn(async move {
            while let Some(result) = received.recv().await {
                match result {
                    Ok(events) => {
                        if events
                            .iter()
                            .any(|event| watched.files.contains(&event.path))
                        {
                            let Some(deployer) = deployer.upgrade() else {
                                return;
                            };
                            deployer.reload().await;
                            watched.sync(&mut debouncer, deployer.watched_files());
                        }
                    }
                    Err(err) => tracing::warn!("watching the config and plugin files: {err}"),
                }
            }
        });
        Ok(Watcher { task })
    }
}

#[derive(Default)]
struct Watched {
    dirs: BTreeSet<PathBuf>,
    /// The files, under the canonical path of their folder, as events name them.
    files: BTreeSet<PathBuf>,
}

impl Watched {
    /// Watches the folders of `files` (and no others).
    fn sync(&mut self, debouncer: &mut Debouncer<RecommendedWatcher>, files: Vec<PathBuf>) {
        let mut dirs = BTreeSet::new();
        self.files.clear();
        for file in files {
            let Some((dir, name)) = split(&file) else {
                continue;
            };
            match dir.canonicalize() {
                Ok(dir) => {
                    self.files.insert(dir.join(name));
                    dirs.insert(dir);
                }
                Err(err) => tracing::warn!(
                    folder = %dir.display(),
                    "cannot watch a folder for changes to {}: {err}",
                    file.display()
                ),
            }
        }
        for gone in self.dirs.difference(&dirs) {
            debouncer.watcher().unwatch(gone).ok();
        }
        for dir in dirs.difference(&self.dirs) {
            if let Err(err) = debouncer.watcher().watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %dir.display(), "cannot watch a folder for changes: {err}");
            }
        }
        self.dirs = dirs;
    }
}

fn split(file: &Path) -> Option<(PathBuf, &std::ffi::OsStr)> {
    let name = file.file_name()?;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Some((dir, name))
}
