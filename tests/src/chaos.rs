//! A chaos run: many creates, binds, unbinds and removes through clients
//! that cut their connections at random points, and a stop of the host in
//! the middle that cuts what is in flight. Afterwards the ledger and the
//! plugin's own books (`plugins/bookkeeper`, which records every instance
//! and binding it made in the key-value store) must agree exactly, and hold
//! everything tsuru was told was done.
//!
//! Each worker owns its instance names and calls one at a time, so what it
//! was told about a name comes in order: a 2xx it got must hold at the end,
//! unless another call it sent may have undone it. A call sent later may
//! have; so may a call sent earlier that its client cut, since a request
//! already on its way can still reach the host after the next one (HTTP
//! gives no order between connections). Those facts are not asserted, and
//! the report counts the ones that are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};

use crate::{Server, Tsuru, password, service};

/// The service the run provisions through.
const SERVICE: &str = "books";
const APPS: [&str; 3] = ["web", "worker", "cron"];

/// What a run did and found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub operations: usize,
    pub creates: usize,
    pub binds: usize,
    pub unbinds: usize,
    pub removes: usize,
    /// Calls whose client gave up before the answer.
    pub cut_by_clients: usize,
    /// Calls that a stop of the host cut, or that found it stopped.
    pub cut_by_stops: usize,
    /// Answers by status.
    pub statuses: BTreeMap<u16, usize>,
    /// Facts tsuru was told that the end was checked against.
    pub facts: usize,
    /// What the ledger holds at the end.
    pub instances: usize,
    pub bindings: usize,
    /// Every disagreement found; the run passes when this is empty.
    pub mismatches: Vec<String>,
    pub took: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} operations ({} creates, {} binds, {} unbinds, {} removes) in {:.1}s; \
             {} cut by clients, {} cut by stops; answers {:?}; {} facts checked; the ledger ends \
             with {} instances and {} bindings; {} mismatches",
            self.seed,
            self.operations,
            self.creates,
            self.binds,
            self.unbinds,
            self.removes,
            self.took.as_secs_f64(),
            self.cut_by_clients,
            self.cut_by_stops,
            self.statuses,
            self.facts,
            self.instances,
            self.bindings,
            self.mismatches.len()
        )
    }
}

/// What a worker knows it was told about one of its names.
#[derive(Debug, Default, Clone)]
struct Told {
    /// A create answered 2xx, and nothing sent since may have removed it.
    exists: bool,
    /// A remove answered 2xx, and no create was sent since.
    gone: bool,
    /// Binds answered 2xx, with no unbind or remove sent since.
    bound: BTreeSet<String>,
    /// A remove, a create, unbinds of these apps: calls cut by their
    /// clients, which may take effect after any later call.
    cut_remove: bool,
    cut_create: bool,
    cut_unbinds: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Bind,
    Unbind,
    Remove,
}

/// Where the host is now: its address changes at each restart.
type Address = Arc<RwLock<String>>;

/// How a call ended.
enum Ended {
    Answered(u16),
    CutByClient,
    /// The connection failed for another reason: the host was stopping or stopped.
    CutByStop,
}

/// Runs `operations` calls over `workers` workers, stopping and restarting
/// the host once, halfway. Names per worker: `names`.
pub async fn run(operations: usize, workers: usize, names: usize, seed: u64) -> Report {
    let started = Instant::now();
    let config = format!(
        "drain_timeout_secs = 1\n{}",
        service(SERVICE, "bookkeeper", "keyvalue = true\ntimeout_ms = 10000")
    );
    let mut server = Server::start_config(&config).await;
    let address: Address = Arc::new(RwLock::new(server.url.clone()));
    let per_worker = operations / workers;
    let halfway = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (address, halfway) = (address.clone(), halfway.clone());
        let seed = seed.wrapping_add(worker as u64 * 7919);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut report = Report::default();
            let mut told: BTreeMap<String, Told> = BTreeMap::new();
            for done in 0..per_worker {
                if done == per_worker / 2 {
                    halfway.wait().await;
                }
                let name = format!("w{worker}-{}", rng.usize(..names));
                let op = match rng.u8(..20) {
                    0..=7 => Op::Create,
                    8..=15 => Op::Bind,
                    16..=17 => Op::Unbind,
                    _ => Op::Remove,
                };
                let delay = [0, 5, 10, 20, 40][rng.usize(..5)];
                // A third of the calls are cut somewhere in their work.
                let cut_after =
                    (rng.u8(..3) == 0).then(|| Duration::from_millis(rng.u64(1..=delay + 2)));
                let app = APPS[rng.usize(..APPS.len())];
                let url = address.read().expect("the address").clone();
                let ended = call(&address, op, &name, app, delay, cut_after, &mut rng).await;
                if let Ended::CutByStop = ended {
                    // The host is stopping: wait for it to serve again.
                    for _ in 0..500 {
                        if *address.read().expect("the address") != url {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                note(&mut report, &mut told, op, &name, app, &ended);
            }
            (report, told)
        }));
    }
    // Halfway: a few slow changes that the stop's drain will cut, then the stop.
    halfway.wait().await;
    let mut slow = Vec::new();
    for k in 0..4 {
        let address = address.clone();
        slow.push(tokio::spawn(async move {
            let name = format!("stop-{k}");
            let mut rng = fastrand::Rng::with_seed(k);
            let created = call(&address, Op::Create, &name, "web", 1600, None, &mut rng).await;
            let bound = call(&address, Op::Bind, &name, "web", 1600, None, &mut rng).await;
            (name, created, bound)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server = server.restart().await;
    *address.write().expect("the address") = server.url.clone();

    let mut report = Report {
        seed,
        ..Report::default()
    };
    let mut told = BTreeMap::new();
    for task in tasks {
        let (part, part_told) = task.await.expect("a worker ends");
        merge(&mut report, part);
        told.extend(part_told);
    }
    for task in slow {
        let (name, created, bound) = task.await.expect("a slow call ends");
        let mut part = Report::default();
        let mut part_told = BTreeMap::new();
        note(
            &mut part,
            &mut part_told,
            Op::Create,
            &name,
            "web",
            &created,
        );
        note(&mut part, &mut part_told, Op::Bind, &name, "web", &bound);
        merge(&mut report, part);
        told.extend(part_told);
    }

    // Every change begun has ended once a stop returns: none is left half-made.
    server.stop().await;
    let ledger = server.host.ledger.clone();
    let unfinished = ledger
        .orphans(SERVICE, "no-run-of-this-name")
        .await
        .expect("the ledger answers");
    for record in &unfinished {
        report.mismatches.push(format!(
            "instance {} is still being created after the stop",
            record.instance.name
        ));
    }
    let server = server.restart().await;
    check(&server, &told, &mut report).await;
    report.took = started.elapsed();
    report
}

async fn call(
    address: &Address,
    op: Op,
    name: &str,
    app: &str,
    delay: u64,
    cut_after: Option<Duration>,
    rng: &mut fastrand::Rng,
) -> Ended {
    let url = address.read().expect("the address").clone();
    let api = Tsuru::new(&url, SERVICE, &password(SERVICE));
    let mut request: RequestBuilder = match op {
        Op::Create => {
            let delay = delay.to_string();
            let mut fields = vec![
                ("name", name.to_owned()),
                ("plan", "small".to_owned()),
                ("parameters.delay_ms", delay),
            ];
            if rng.u8(..4) == 0 {
                fields.push(("eventid", format!("create-{name}-{}", rng.u8(..3))));
            }
            api.request(Method::POST, "/resources").form(&fields)
        }
        Op::Bind => api
            .request(Method::POST, &format!("/resources/{name}/bind-app"))
            .form(&[("app-name", app)]),
        Op::Unbind => api
            .request(Method::DELETE, &format!("/resources/{name}/bind-app"))
            .form(&[("app-name", app)]),
        Op::Remove => api.request(Method::DELETE, &format!("/resources/{name}")),
    };
    if let Some(after) = cut_after {
        request = request.timeout(after);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Reading the body can be cut too; the status is what tsuru acts on.
            match response.bytes().await {
                Ok(_) => Ended::Answered(status),
                Err(err) if err.is_timeout() => Ended::CutByClient,
                Err(_) => Ended::CutByStop,
            }
        }
        Err(err) if err.is_timeout() => Ended::CutByClient,
        Err(_) => Ended::CutByStop,
    }
}

/// Counts a call and what its answer tells.
fn note(
    report: &mut Report,
    told: &mut BTreeMap<String, Told>,
    op: Op,
    name: &str,
    app: &str,
    ended: &Ended,
) {
    report.operations += 1;
    match op {
        Op::Create => report.creates += 1,
        Op::Bind => report.binds += 1,
        Op::Unbind => report.unbinds += 1,
        Op::Remove => report.removes += 1,
    }
    let answered = match ended {
        Ended::Answered(status) => {
            *report.statuses.entry(*status).or_default() += 1;
            Some(*status)
        }
        Ended::CutByClient => {
            report.cut_by_clients += 1;
            None
        }
        Ended::CutByStop => {
            report.cut_by_stops += 1;
            None
        }
    };
    let ok = answered.is_some_and(|status| (200..300).contains(&status));
    let told = told.entry(name.to_owned()).or_default();
    if answered.is_none() {
        match op {
            Op::Create => told.cut_create = true,
            Op::Remove => told.cut_remove = true,
            Op::Unbind => {
                told.cut_unbinds.insert(app.to_owned());
            }
            Op::Bind => {}
        }
    }
    match op {
        Op::Create => {
            told.gone = false;
            if ok {
                told.exists = true;
            }
        }
        Op::Bind => {
            if ok {
                told.bound.insert(app.to_owned());
            }
        }
        Op::Unbind => {
            told.bound.remove(app);
        }
        Op::Remove => {
            told.exists = false;
            told.bound.clear();
            if ok {
                told.gone = true;
            }
        }
    }
}

fn merge(report: &mut Report, part: Report) {
    report.operations += part.operations;
    report.creates += part.creates;
    report.binds += part.binds;
    report.unbinds += part.unbinds;
    report.removes += part.removes;
    report.cut_by_clients += part.cut_by_clients;
    report.cut_by_stops += part.cut_by_stops;
    for (status, count) in part.statuses {
        *report.statuses.entry(status).or_default() += count;
    }
}

/// The ledger against the plugin's books and what tsuru was told.
async fn check(server: &Server, told: &BTreeMap<String, Told>, report: &mut Report) {
    let ledger = &server.host.ledger;
    let mut held = BTreeSet::new();
    let mut held_bindings = BTreeSet::new();
    for name in ledger
        .instance_names(SERVICE)
        .await
        .expect("the ledger answers")
    {
        let record = ledger
            .instance(SERVICE, &name)
            .await
            .expect("the ledger answers")
            .expect("a listed instance");
        if record.state != orizuru::model::InstanceState::Ready {
            report.mismatches.push(format!(
                "the ledger holds instance {name} as {}, not ready",
                record.state.as_str()
            ));
        }
        for binding in ledger
            .bindings(SERVICE, &name)
            .await
            .expect("the ledger answers")
        {
            held_bindings.insert(format!("binding:{name}:{}", binding.target));
        }
        held.insert(format!("instance:{name}"));
    }
    report.instances = held.len();
    report.bindings = held_bindings.len();

    let books = server
        .tsuru(SERVICE)
        .get("/authenticated-resources/books")
        .await;
    assert_eq!(books.status, 200, "the bookkeeper's books: {}", books.body);
    let keys: Vec<String> = serde_json::from_str(&books.body).expect("the books are a JSON list");
    let (booked, booked_bindings): (BTreeSet<String>, BTreeSet<String>) = (
        keys.iter()
            .filter(|key| key.starts_with("instance:"))
            .cloned()
            .collect(),
        keys.iter()
            .filter(|key| key.starts_with("binding:"))
            .cloned()
            .collect(),
    );
    for missing in held.difference(&booked) {
        report
            .mismatches
            .push(format!("the ledger holds {missing}, the plugin does not"));
    }
    for extra in booked.difference(&held) {
        report
            .mismatches
            .push(format!("the plugin holds {extra}, the ledger does not"));
    }
    for missing in held_bindings.difference(&booked_bindings) {
        report
            .mismatches
            .push(format!("the ledger holds {missing}, the plugin does not"));
    }
    for extra in booked_bindings.difference(&held_bindings) {
        report
            .mismatches
            .push(format!("the plugin holds {extra}, the ledger does not"));
    }
    for (name, told) in told {
        let key = format!("instance:{name}");
        if told.exists && !told.cut_remove {
            report.facts += 1;
            if !held.contains(&key) {
                report.mismatches.push(format!(
                    "tsuru was told instance {name} was created, and the ledger does not hold it"
                ));
            }
        }
        if told.gone && !told.cut_create {
            report.facts += 1;
            if held.contains(&key) {
                report.mismatches.push(format!(
                    "tsuru was told instance {name} was removed, and the ledger holds it"
                ));
            }
        }
        for app in &told.bound {
            if told.cut_remove || told.cut_unbinds.contains(app) {
                continue;
            }
            report.facts += 1;
            if !held_bindings.contains(&format!("binding:{name}:{app}")) {
                report.mismatches.push(format!(
                    "tsuru was told {app} was bound to {name}, and the ledger does not hold it"
                ));
            }
        }
    }
}
