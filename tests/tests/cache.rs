//! Compiled plugins are kept in `data_dir`: a restart serves without
//! compiling, and a damaged cache entry is compiled again, never a crash.

use orizuru::runtime::CompiledFrom;
use orizuru_tests::{Server, file_names, service};

fn origins(server: &Server) -> Vec<(String, CompiledFrom)> {
    ["fake", "queue"]
        .into_iter()
        .map(|id| {
            let service = server.host.registry.by_id(id).expect("configured");
            let active = service.version().expect("a wasm plugin");
            assert_eq!(active.version.sha256.len(), 64, "a sha256 in hex");
            (id.to_owned(), active.compiled_from)
        })
        .collect()
}

#[tokio::test]
async fn a_restart_loads_from_the_cache_and_a_damaged_entry_is_compiled_again() {
    let server = Server::start(&[service("fake", "fake", ""), service("queue", "queue", "")]).await;
    assert!(
        origins(&server)
            .iter()
            .all(|(_, origin)| *origin == CompiledFrom::Wasm)
    );

    let server = server.restart().await;
    assert!(
        origins(&server)
            .iter()
            .all(|(_, origin)| *origin == CompiledFrom::Cache),
        "served from the cache without compiling: {:?}",
        origins(&server)
    );
    assert_eq!(
        server.tsuru("queue").get("/resources/plans").await.status,
        200
    );

    // Damage every compiled entry while the host is down: each is compiled
    // again, and the host serves.
    let server = server
        .restart_with(|data_dir| {
            let mut damaged = 0;
            for entry in std::fs::read_dir(data_dir.join("compiled")).expect("the cache exists") {
                let path = entry.expect("a cache entry").path();
                if path
                    .extension()
                    .is_some_and(|extension| extension == "cwasm")
                {
                    std::fs::write(&path, b"not machine code").expect("overwritten");
                    damaged += 1;
                }
            }
            assert_eq!(damaged, 2, "one entry per plugin");
        })
        .await;
    assert!(
        origins(&server)
            .iter()
            .all(|(_, origin)| *origin == CompiledFrom::Wasm)
    );
    assert_eq!(
        server.tsuru("queue").get("/resources/plans").await.status,
        200
    );
    assert_eq!(
        server.tsuru("fake").get("/resources/plans").await.body,
        "[]"
    );

    // ...and cached again for the next start, where entries of another
    // engine (another wasmtime, other settings) are removed.
    let stale = ["0".repeat(64), "0000000000000000.cwasm".into()].join("-");
    let server = server
        .restart_with(|data_dir| {
            let compiled = data_dir.join("compiled");
            std::fs::write(compiled.join(&stale), b"old machine code").expect("written");
            std::fs::write(compiled.join(format!("{stale}.sha256")), b"0").expect("written");
        })
        .await;
    let left = file_names(&server.data_dir().join("compiled"));
    assert!(
        !left.iter().any(|name| name.starts_with(&stale)),
        "{left:?}"
    );
    assert!(
        origins(&server)
            .iter()
            .all(|(_, origin)| *origin == CompiledFrom::Cache)
    );
}
