//! The ledger's one writer: a thread that owns the write connection and
//! commits in groups. Every write (a commit, a reservation, a prune, a
//! deployment saved) is queued to it; it takes whatever is queued, runs it
//! in one transaction with each write in a savepoint of its own, commits
//! once, then answers each write. So concurrent writes share one fsync and
//! still each get the promise of a commit of their own: Ok only once the
//! transaction holding the write is synced, and a write that fails undoes
//! only itself.
//!
//! There is no waiting for a group to fill: the writes queued while one
//! commit syncs make the next group, so a lone write commits at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use rusqlite::Connection;
use tokio::sync::oneshot;

/// The most writes one transaction holds, so that one group's answers do
/// not wait behind an unbounded queue.
const BATCH: usize = 256;

/// A write as the writer thread runs it.
trait Write: Send {
    /// Runs the write on the connection, inside its savepoint.
    fn run(&mut self, connection: &Connection) -> anyhow::Result<()>;

    /// Answers the caller: `Ok` once the transaction holding the write
    /// committed, otherwise the write's own error or the transaction's.
    fn answer(self: Box<Self>, outcome: anyhow::Result<()>);
}

/// What a write does on the connection, answering its result.
type Work<T> = Box<dyn FnOnce(&Connection) -> anyhow::Result<T> + Send>;

/// What runs once a write is committed, given its result.
type Committed<T> = Box<dyn FnOnce(&T) + Send>;

/// A write's work, its result until the commit, and whom to answer.
struct Job<T> {
    work: Option<Work<T>>,
    done: Option<T>,
    /// Runs on the writer thread once the write is committed, before the
    /// answer: it happens even when the caller went away.
    committed: Option<Committed<T>>,
    reply: oneshot::Sender<anyhow::Result<T>>,
}

impl<T: Send> Write for Job<T> {
    fn run(&mut self, connection: &Connection) -> anyhow::Result<()> {
        let work = self.work.take().context("a ledger write was run twice")?;
        self.done = Some(work(connection)?);
        Ok(())
    }

    fn answer(mut self: Box<Self>, outcome: anyhow::Result<()>) {
        let answer = outcome.and_then(|()| {
            let done = self
                .done
                .take()
                .context("a ledger write was answered without being run")?;
            if let Some(committed) = self.committed.take() {
                committed(&done);
            }
            Ok(done)
        });
        // A caller that went away (its future dropped) needs no answer: its
        // write is committed whole, or not at all.
        if self.reply.send(answer).is_err() {
            tracing::debug!("a ledger write's caller went away before its answer");
        }
    }
}

/// The handle to the writer thread. Dropping it ends the thread once the
/// writes queued are committed and answered, and waits for that.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Write>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that owns `connection` for writing.
    pub(super) fn start(connection: Connection) -> anyhow::Result<Self> {
        let (queue, writes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || write_groups(&connection, &writes))
            .context("cannot start the ledger's writer thread")?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `work` at once (not at the first poll) and answers when the
    /// transaction holding it is committed. `committed` runs on the writer
    /// thread when it is, whether or not the caller still waits.
    pub(super) fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Write> = Box::new(Job {
            work: Some(Box::new(work)),
            done: None,
            committed: Some(Box::new(committed)),
            reply,
        });
        let queued = match &self.queue {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        };
        async move {
            anyhow::ensure!(queued, "the ledger's writer has stopped");
            answer
                .await
                .context("the ledger's writer stopped before answering")?
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written and answered
        // what was queued; waiting for it closes the file before the drop
        // returns, so the ledger can be opened again at once.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the ledger's writer thread panicked");
        }
    }
}

/// The writer thread: each group is what is queued, up to [`BATCH`].
fn write_groups(connection: &Connection, writes: &mpsc::Receiver<Box<dyn Write>>) {
    let mut group = Vec::with_capacity(BATCH);
    while let Ok(first) = writes.recv() {
        group.push(first);
        while group.len() < BATCH {
            match writes.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        commit_group(connection, &mut group);
    }
}

/// Runs a group in one transaction, each write in its savepoint, commits
/// once and answers each write; empties `group`.
fn commit_group(connection: &Connection, group: &mut Vec<Box<dyn Write>>) {
    let outcomes = match run_group(connection, group) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            // Nothing of this group was promised: all of it is undone.
            if !connection.is_autocommit()
                && let Err(rollback) = execute(connection, "ROLLBACK")
            {
                tracing::error!(cause = %rollback, "the ledger could not roll a failed commit back");
            }
            tracing::error!(cause = %format!("{err:#}"), writes = group.len(), "the ledger could not commit");
            for write in group.drain(..) {
                write.answer(Err(anyhow::anyhow!("{err:#}")));
            }
            return;
        }
    };
    for (write, outcome) in group.drain(..).zip(outcomes) {
        write.answer(outcome);
    }
}

/// Runs the group and commits it: each write's own outcome, or the error
/// that lost the whole transaction.
fn run_group(
    connection: &Connection,
    group: &mut [Box<dyn Write>],
) -> anyhow::Result<Vec<anyhow::Result<()>>> {
    // IMMEDIATE: take the write lock now, so another process's writer
    // (`orizuru migrate`, a test) makes us wait at the start, not fail later.
    execute(connection, "BEGIN IMMEDIATE").context("cannot begin the ledger's transaction")?;
    let mut outcomes = Vec::with_capacity(group.len());
    for write in group.iter_mut() {
        outcomes.push(in_savepoint(connection, write.as_mut())?);
    }
    execute(connection, "COMMIT").context("cannot commit the ledger's transaction")?;
    Ok(outcomes)
}

/// Runs one write in a savepoint of its own, undoing it alone if it fails:
/// its own outcome, or the error that lost the whole transaction.
fn in_savepoint(
    connection: &Connection,
    write: &mut dyn Write,
) -> anyhow::Result<anyhow::Result<()>> {
    execute(connection, "SAVEPOINT one_write")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| write.run(connection))).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "the ledger's write panicked; it was not recorded"
        ))
    });
    if connection.is_autocommit() {
        // SQLite rolls a whole transaction back on some errors (a full
        // disk, an I/O error): the writes before this one are gone too.
        return Err(match outcome {
            Err(err) => err.context("the ledger's transaction was rolled back"),
            Ok(()) => anyhow::anyhow!("the ledger's transaction ended in the middle of a write"),
        });
    }
    match outcome {
        Ok(()) => execute(connection, "RELEASE one_write")?,
        Err(_) => {
            execute(connection, "ROLLBACK TO one_write")?;
            execute(connection, "RELEASE one_write")?;
        }
    }
    Ok(outcome)
}

/// Runs a statement that answers no rows, prepared once per connection.
fn execute(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([])?;
    Ok(())
}
