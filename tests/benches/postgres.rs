//! What the PostgreSQL provisioner costs on the local server: 100 rounds of
//! create, bind-app, unbind-app and remove over HTTP, each a few statements
//! on the service's `admin` connection (CREATE DATABASE copies a template
//! and syncs it to disk, which is most of a create).
//!
//! Run with `cargo bench -p orizuru-tests --bench postgres` (needs
//! PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`).

use std::time::Instant;

use orizuru_tests::{Server, report, service};
use reqwest::Method;

const ROUNDS: usize = 100;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let url_file = dir.path().join("admin-url");
        std::fs::write(&url_file, "postgres://postgres@127.0.0.1:5432/postgres")
            .expect("the URL is written");
        let prefix = format!("orzb{:06x}", std::process::id() & 0xff_ffff);
        let server = Server::start(&[service(
            "postgres",
            "postgres",
            &format!(
                "[services.sql.admin]\nurl_file = \"{}\"\ndatabases = [\"{prefix}_*\"]\n[services.config]\nhost = \"127.0.0.1\"\nport = \"5432\"\nprefix = \"{prefix}\"\n",
                url_file.display()
            ),
        )])
        .await;
        let api = server.tsuru("postgres");
        let (mut creates, mut binds, mut unbinds, mut removes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let name = format!("bench-{round}");
            let timed = |method: Method, path: String, fields: Vec<(&'static str, String)>, expected: u16| {
                let api = api.clone();
                async move {
                    let fields: Vec<(&str, &str)> =
                        fields.iter().map(|(key, value)| (*key, value.as_str())).collect();
                    let started = Instant::now();
                    let answer = api.form(method, &path, &fields).await;
                    assert_eq!(answer.status, expected, "{path}: {}", answer.body);
                    started.elapsed()
                }
            };
            creates.push(
                timed(Method::POST, "/resources".into(), vec![("name", name.clone()), ("plan", "small".into())], 201).await,
            );
            binds.push(
                timed(Method::POST, format!("/resources/{name}/bind-app"), vec![("app-name", "web".into())], 201).await,
            );
            unbinds.push(
                timed(Method::DELETE, format!("/resources/{name}/bind-app"), vec![("app-name", "web".into())], 200).await,
            );
            removes.push(timed(Method::DELETE, format!("/resources/{name}"), Vec::new(), 200).await);
        }
        report("postgres: create", creates);
        report("postgres: bind-app", binds);
        report("postgres: unbind-app", unbinds);
        report("postgres: remove", removes);
    });
}
