//! `orizuru instances --service ID`: what the ledger holds of a service.
//!
//! It reads the ledger while a host may be serving from it (SQLite in WAL
//! mode lets a reader in beside the writer). Env values are credentials: it
//! shows their names only.

use std::path::PathBuf;
use std::process::ExitCode;

use orizuru::config::Overrides;
use orizuru::ledger::{EventOutcome, Ledger, PgLedger, Retention, SqliteLedger};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: super::ConfiguredService,
    /// Read the embedded ledger in this directory instead of the config's (its
    /// `data_dir`, or its shared store when it has a `[store]` table).
    #[arg(long, env = "ORIZURU_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The newest events to show per instance.
    #[arg(long, default_value_t = 5, value_name = "N")]
    events: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    // The config's shared store, unless --data-dir names an embedded ledger.
    let (data_dir, store) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => match super::load_config(&args.target.config, &Overrides::default()) {
            Ok(config) => (config.data_dir, config.store),
            Err(sentence) => {
                return super::fail(format!(
                    "{sentence} (or pass --data-dir with the host's data directory)"
                ));
            }
        },
    };
    if store.is_none() && !data_dir.join("ledger.sqlite3").is_file() {
        return super::fail(format!(
            "there is no ledger in {}; pass the data_dir of a host that has served (--data-dir, or --config)",
            data_dir.display()
        ));
    }
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(sentence) => return super::fail(sentence),
    };
    let report = runtime.block_on(async {
        match &store {
            Some(settings) => {
                let opened = async {
                    let store = orizuru::store::postgres::Postgres::open(settings).await?;
                    PgLedger::open(&store, Retention::default()).await
                };
                let ledger = opened.await.map_err(|err| format!("{err:#}"))?;
                read(&ledger, &args.target.service, args.events)
                    .await
                    .map_err(|err| {
                        format!(
                            "cannot read the ledger in the shared store ([store] {}): {err:#}",
                            settings.url_from
                        )
                    })
            }
            None => {
                let ledger = SqliteLedger::open(&data_dir).map_err(|err| format!("{err:#}"))?;
                read(&ledger, &args.target.service, args.events)
                    .await
                    .map_err(|err| {
                        format!("cannot read the ledger in {}: {err:#}", data_dir.display())
                    })
            }
        }
    });
    let report = match report {
        Ok(report) => report,
        Err(sentence) => return super::fail(sentence),
    };
    if args.json {
        println!("{report:#}");
    } else {
        print_table(&args.target.service, &report);
    }
    ExitCode::SUCCESS
}

async fn read(ledger: &dyn Ledger, service: &str, events: usize) -> anyhow::Result<Value> {
    let mut instances = Vec::new();
    for name in ledger.instance_names(service).await? {
        let Some(record) = ledger.instance(service, &name).await? else {
            continue; // Removed while we read.
        };
        let bindings: Vec<Value> = ledger
            .bindings(service, &name)
            .await?
            .into_iter()
            .map(|binding| {
                json!({
                    "kind": binding.kind.as_str(),
                    "name": binding.target,
                    "env": binding.env.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        let history = ledger.events(service, &name).await?;
        let newest: Vec<Value> = history
            .iter()
            .skip(history.len().saturating_sub(events))
            .map(|event| {
                let (outcome, reason) = match &event.outcome {
                    EventOutcome::Succeeded(_) => ("succeeded", None),
                    EventOutcome::Failed(reason) => ("failed", Some(reason.clone())),
                };
                json!({
                    "at": event.at,
                    "action": event.action,
                    "target": (!event.target.is_empty()).then(|| event.target.clone()),
                    "outcome": outcome,
                    "reason": reason,
                    "event_id": event.event_id,
                    "user": event.user,
                })
            })
            .collect();
        let instance = &record.instance;
        instances.push(json!({
            "name": instance.name,
            "state": record.state.as_str(),
            "plan": instance.plan,
            "team": instance.team,
            "tags": instance.tags,
            "parameters": instance.parameters,
            "bindings": bindings,
            "events": newest,
        }));
    }
    Ok(json!({ "service": service, "instances": instances }))
}

fn print_table(service: &str, report: &Value) {
    let instances = report["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        println!("service \"{service}\" has no instances in this ledger");
        return;
    }
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    let rows: Vec<[String; 5]> = instances
        .iter()
        .map(|instance| {
            let bindings = instance["bindings"].as_array().cloned().unwrap_or_default();
            let bound = if bindings.is_empty() {
                "-".to_owned()
            } else {
                bindings
                    .iter()
                    .map(|binding| format!("{} {}", text(&binding["kind"]), text(&binding["name"])))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            [
                text(&instance["name"]),
                text(&instance["state"]),
                text(&instance["plan"]),
                text(&instance["team"]),
                bound,
            ]
        })
        .collect();
    let header = ["INSTANCE", "STATE", "PLAN", "TEAM", "BOUND"];
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    println!();
    println!("recent events, per instance (oldest first):");
    for instance in &instances {
        for event in instance["events"].as_array().cloned().unwrap_or_default() {
            let mut line = format!(
                "  {}  {:<8} {:<10} {}",
                text(&event["at"]),
                text(&instance["name"]),
                text(&event["action"]),
                text(&event["outcome"])
            );
            if let Some(target) = event["target"].as_str() {
                line.push_str(&format!("  {target}"));
            }
            if let Some(reason) = event["reason"].as_str() {
                line.push_str(&format!(": {reason}"));
            }
            println!("{line}");
        }
    }
}
