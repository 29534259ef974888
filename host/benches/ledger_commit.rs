//! Commits per second of the embedded ledger (`SqliteLedger`), the write a
//! bind-app makes: a binding and its event with the answer kept for
//! retries, each synced before it is answered. Measured with 1 writer and
//! with 16 concurrent ones, as 16 connections of tsuru would write.
//!
//! `cargo bench -p orizuru --bench ledger_commit`; `LEDGER_BENCH_SECS`
//! sets how long each row runs (3 s by default). The ledger lives in a
//! temporary directory on the same disk as the system's temp dir
//! (`TMPDIR`), whose fsync is what is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orizuru::ledger::{
    Binding, BindingKind, Change, Event, EventOutcome, InstanceRecord, Ledger, SqliteLedger,
};
use orizuru::model::{Action, Env, Instance, InstanceState};
use serde_json::json;

/// What one row measured.
struct Row {
    writers: usize,
    commits: u64,
    elapsed: Duration,
    /// Each commit's time, sorted.
    latencies: Vec<Duration>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, percent: usize) -> Duration {
        let index = (self.latencies.len() * percent / 100).min(self.latencies.len() - 1);
        self.latencies[index]
    }
}

/// The write a bind-app makes: the binding, and the event with its answer.
fn bind(writer: usize, call: u64) -> (Vec<Change>, Option<Event>) {
    let target = format!("app-{writer}-{call}");
    let env = Env::from([
        ("DATABASE_URL".to_owned(), format!("postgres://{target}@db")),
        ("DATABASE_PASSWORD".to_owned(), "s3cr3t-password".to_owned()),
    ]);
    let answer = json!(env);
    let changes = vec![Change::Bind {
        instance: "db".into(),
        binding: Binding {
            kind: BindingKind::App,
            target: target.clone(),
            env,
        },
    }];
    let event = Event {
        action: Action::BindApp,
        instance: "db".into(),
        target,
        event_id: Some(format!("event-{writer}-{call}")),
        user: Some("admin@example.com".into()),
        outcome: EventOutcome::Succeeded(answer),
    };
    (changes, Some(event))
}

/// `writers` tasks committing binds one after the other for `length`.
async fn row(ledger: Arc<SqliteLedger>, writers: usize, length: Duration) -> anyhow::Result<Row> {
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::with_capacity(writers);
    for writer in 0..writers {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut call = 0_u64;
            while Instant::now() < deadline {
                let (changes, event) = bind(writer, call);
                let began = Instant::now();
                ledger.commit("bench", changes, event).await?;
                latencies.push(began.elapsed());
                call += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(Row {
        writers,
        commits: u64::try_from(latencies.len())?,
        elapsed,
        latencies,
    })
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = match std::env::var("LEDGER_BENCH_SECS") {
        Ok(text) => text.parse()?,
        Err(_) => 3,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        println!("ledger commits (a bind-app's binding and event, synced), {seconds} s a row");
        println!("| writers | commits/s | p50 | p99 |");
        println!("|---|---|---|---|");
        let mut rates = Vec::new();
        for writers in [1, 16] {
            // A ledger of its own per row, so the second does not start on
            // a bigger file than the first.
            let dir = tempfile::tempdir()?;
            let ledger = Arc::new(SqliteLedger::open(dir.path())?);
            let record = InstanceRecord {
                instance: Instance {
                    name: "db".into(),
                    plan: Some("small".into()),
                    team: Some("team".into()),
                    description: None,
                    tags: Vec::new(),
                    parameters: serde_json::Map::new(),
                    data: None,
                },
                state: InstanceState::Ready,
            };
            ledger
                .commit("bench", vec![Change::Put(record)], None)
                .await?;
            let row = row(ledger, writers, Duration::from_secs(seconds)).await?;
            println!(
                "| {} | {:.0} | {:.2} ms | {:.2} ms |",
                row.writers,
                row.rate(),
                row.percentile(50).as_secs_f64() * 1000.0,
                row.percentile(99).as_secs_f64() * 1000.0,
            );
            rates.push(row.rate());
        }
        println!("16 writers / 1 writer: {:.2}x", rates[1] / rates[0]);
        anyhow::Ok(())
    })
}
