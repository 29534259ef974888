//! `data_dir` holds credentials (the passwords of services added through
//! the admin API, what plugins keep): the host makes it and every folder in
//! it 0700 and every file 0600, whatever the umask, and tightens a data dir
//! it finds open to others.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use orizuru_tests::{Server, service};
use reqwest::Method;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

/// Every folder and file under `dir`, `dir` first.
fn everything_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut index = 0;
    while index < found.len() {
        if found[index].is_dir() {
            let entries = std::fs::read_dir(&found[index]).expect("a readable folder");
            for entry in entries {
                found.push(entry.expect("an entry").path());
            }
        }
        index += 1;
    }
    found
}

/// The paths under `dir` whose mode is not 0700 (folders) or 0600 (files).
fn open_to_others(dir: &Path) -> Vec<String> {
    everything_in(dir)
        .into_iter()
        .filter(|path| mode(path) != if path.is_dir() { 0o700 } else { 0o600 })
        .map(|path| format!("{} {:o}", path.display(), mode(&path)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_every_file_in_it_are_private() {
    let server = Server::start(&[
        service("counter", "counter", "keyvalue = true"),
        service("fake", "fake", ""),
    ])
    .await;
    let created = server
        .tsuru("counter")
        .form(
            Method::POST,
            "/resources",
            &[("name", "db1"), ("plan", "small")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let fake = server.tsuru("fake");
    let created = fake
        .form(Method::POST, "/resources", &[("name", "db1")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let bound = fake.bind_app("db1", "web").await;
    assert_eq!(bound.status, 201, "{}", bound.body);

    let data_dir = server.data_dir().to_owned();
    let names: Vec<String> = everything_in(&data_dir)
        .iter()
        .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "ledger.sqlite3",
        "ledger.sqlite3-wal",
        "keyvalue.sqlite3",
        "keyvalue.sqlite3-wal",
        "plugins",
        "compiled",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} in {names:?}"
        );
    }
    assert_eq!(open_to_others(&data_dir), Vec::<String>::new());

    // A data dir left open to others (by an older version, or by hand) is
    // made private again at the next start.
    let server = server
        .restart_with(|dir| {
            set_mode(dir, 0o755);
            set_mode(&dir.join("plugins"), 0o755);
            set_mode(&dir.join("ledger.sqlite3"), 0o644);
            set_mode(&dir.join("keyvalue.sqlite3"), 0o644);
        })
        .await;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(
        server.tsuru("counter").get("/resources/db1").await.status,
        200
    );
    assert_eq!(open_to_others(&data_dir), Vec::<String>::new());
}
