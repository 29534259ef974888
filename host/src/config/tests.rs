//! The config's unit tests: every key read, defaulted and refused.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(
        text,
        Path::new("/etc/orizuru"),
        &Overrides::default(),
        |name| (name == "FAKE_PASSWORD").then(|| "from-env".to_owned()),
    )
    .map_err(|err| err.to_string())
}

#[test]
fn sizes_too_large_to_count_in_bytes_are_refused() {
    for (text, says) in [
        (
            "max_request_kb = 18014398509481984\n",
            "max_request_kb is 18014398509481984, too large",
        ),
        (
            "max_plugin_mb = 17592186044416\n",
            "max_plugin_mb is 17592186044416, too large",
        ),
        (
            "[[services]]\nid = \"pg\"\nplugin = \"pg.wasm\"\npassword = \"p\"\nmax_env_kb = 18014398509481985\n",
            "max_env_kb is 18014398509481985, too large",
        ),
    ] {
        let err = parse(text).expect_err(text);
        assert!(err.contains(says), "{text}: {err}");
    }
}

#[test]
fn grants_are_off_unless_given_and_secrets_are_read_and_hidden() {
    let base = "[[services]]\nid = \"pg\"\nplugin = \"pg.wasm\"\npassword = \"p\"\n";
    let bare = parse(base).expect("a bare service");
    assert_eq!(bare.services[0].grants, Grants::default());

    let granted = parse(&format!(
        "{base}logging = true\n[services.config]\nregion = \"eu\"\n[services.secrets]\nadmin = {{ env = \"FAKE_PASSWORD\" }}\n"
    ))
    .expect("a granted service");
    let grants = &granted.services[0].grants;
    assert!(grants.logging);
    let config = grants.config.as_ref().expect("config granted");
    assert_eq!(config.values["region"], "eu");
    assert_eq!(config.secrets["admin"].expose(), "from-env");
    let shown = format!("{:?}", granted.services[0]);
    assert!(
        shown.contains("\"admin\"") && !shown.contains("from-env"),
        "{shown}"
    );

    // An empty secrets table grants wasi:config with nothing in it.
    let empty = parse(&format!("{base}[services.secrets]\n")).expect("an empty table");
    assert!(empty.services[0].grants.config.is_some());

    for (extra, says) in [
        (
            "[services.secrets]\nadmin = { env = \"UNSET\" }\n",
            "secret \"admin\" reads the environment variable UNSET, which is not set or empty; set it, or remove the secret",
        ),
        (
            "[services.secrets]\nadmin = { file = \"missing-secret\" }\n",
            "secret \"admin\" reads the file /etc/orizuru/missing-secret, which cannot be read",
        ),
        (
            "[services.secrets]\nadmin = { env = \"A\", file = \"b\" }\n",
            "secret \"admin\" must say where it is read from",
        ),
        (
            "[services.secrets]\nadmin = {}\n",
            "secret \"admin\" must say where it is read from",
        ),
        (
            "[services.config]\nadmin = \"x\"\n[services.secrets]\nadmin = { env = \"FAKE_PASSWORD\" }\n",
            "\"admin\" is both in [services.config] and in [services.secrets]; keep one",
        ),
        (
            "[services.config]\n\"\" = \"x\"\n",
            "the config key \"\" is empty",
        ),
        ("logging = \"yes\"\n", "logging"),
    ] {
        let err = parse(&format!("{base}{extra}")).expect_err(extra);
        assert!(err.contains(says), "{extra}: {err}");
    }
}

#[test]
fn fills_defaults_and_resolves_paths() {
    let config = parse(
        r#"
        [[services]]
        id = "fake"
        plugin = "fake.wasm"
        password_env = "FAKE_PASSWORD"
        "#,
    )
    .expect("valid config");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.data_dir, Path::new("/etc/orizuru/data"));
    assert_eq!(config.cache_dir, Path::new("/etc/orizuru/data/compiled"));
    let shared = parse("cache_dir = \"/var/cache/orizuru\"\n").expect("a cache dir");
    assert_eq!(shared.cache_dir, Path::new("/var/cache/orizuru"));
    let fake = &config.services[0];
    assert_eq!(fake.username, "fake");
    assert_eq!(fake.password.expose(), "from-env");
    assert_eq!(
        fake.plugin.as_deref(),
        Some(Path::new("/etc/orizuru/fake.wasm"))
    );
    assert_eq!(fake.timeout, Duration::from_secs(30));
    assert_eq!(fake.memory_bytes, 128 * 1024 * 1024);
    assert!(!format!("{fake:?}").contains("from-env"));
}

#[test]
fn queue_wait_and_retention_have_defaults_and_ranges() {
    let config = parse("").expect("an empty config");
    assert_eq!(
        config.queue_wait,
        Duration::from_millis(DEFAULT_QUEUE_WAIT_MS)
    );
    assert_eq!(config.retention, crate::ledger::Retention::default());
    let set = parse("queue_wait_ms = 0\nreplay_window_secs = 60\nevents_retention_days = 7\n")
        .expect("valid values");
    assert_eq!(set.queue_wait, Duration::ZERO);
    assert_eq!(set.retention.replay_window, Duration::from_secs(60));
    assert_eq!(set.retention.events, Duration::from_secs(7 * 86_400));
    for (text, why) in [
        (
            "queue_wait_ms = 30001",
            "queue_wait_ms is 30001; give a value from 0 (answer 503 at once) to 30000",
        ),
        (
            "replay_window_secs = 0",
            "replay_window_secs is 0; give a value from 1 to 604800",
        ),
        (
            "events_retention_days = 0",
            "events_retention_days is 0; give a value from 1 to 3650",
        ),
    ] {
        let err = parse(text).expect_err(text);
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn request_read_timeout_has_a_default_and_a_range() {
    assert_eq!(
        parse("").expect("an empty config").request_read_timeout,
        Duration::from_secs(DEFAULT_REQUEST_READ_TIMEOUT_SECS)
    );
    assert_eq!(
        parse("request_read_timeout_secs = 1\n")
            .expect("a valid timeout")
            .request_read_timeout,
        Duration::from_secs(1)
    );
    for (value, expected) in [
        (
            "0",
            "request_read_timeout_secs is 0; give a value from 1 to 3600",
        ),
        (
            "3601",
            "request_read_timeout_secs is 3601; give a value from 1 to 3600",
        ),
    ] {
        let err = parse(&format!("request_read_timeout_secs = {value}\n")).unwrap_err();
        assert!(err.contains(expected), "{value}: {err}");
    }
    let err = parse("request_read_timeout = 3\n").unwrap_err();
    assert!(err.contains("request_read_timeout"), "{err}");
}

#[test]
fn drain_timeout_has_a_default_and_a_range() {
    assert_eq!(
        parse("").expect("an empty config").drain_timeout,
        Duration::from_secs(DEFAULT_DRAIN_TIMEOUT_SECS)
    );
    assert_eq!(
        parse("drain_timeout_secs = 2\n")
            .expect("a valid timeout")
            .drain_timeout,
        Duration::from_secs(2)
    );
    let err = parse("drain_timeout_secs = 0\n").unwrap_err();
    assert!(
        err.contains("drain_timeout_secs is 0; give a value from 1 to 3600"),
        "{err}"
    );
}

#[test]
fn max_connections_has_a_default_and_a_range() {
    assert_eq!(
        parse("").expect("an empty config").max_connections,
        DEFAULT_MAX_CONNECTIONS
    );
    assert_eq!(
        parse("max_connections = 3\n")
            .expect("a valid cap")
            .max_connections,
        3
    );
    for value in ["0", "100001"] {
        let err = parse(&format!("max_connections = {value}\n")).unwrap_err();
        assert!(
            err.contains(&format!(
                "max_connections is {value}; give a value from 1 to 100000"
            )),
            "{value}: {err}"
        );
    }
}

#[test]
fn syntax_errors_name_the_line_and_key_never_the_value() {
    let secret = "hunter2-very-secret";
    for (text, says) in [
        (
            format!(
                "listen = \"127.0.0.1:1\"\n[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"{secret}\"\npassword = \"{secret}\"\n"
            ),
            "line 6 (key password): ",
        ),
        (
            format!("admin_token = \"{secret}\"\nadmin_token = \"{secret}\"\n"),
            "line 2 (key admin_token): ",
        ),
        (
            format!("[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = [\"{secret}\"]\n"),
            "invalid type: an array, expected a string",
        ),
        (
            format!("admin_token = {{ value = \"{secret}\" }}\n"),
            "line 1 (key admin_token): ",
        ),
        (
            format!("max_concurrent_calls = \"{secret}\"\n"),
            "line 1 (key max_concurrent_calls): invalid type: a string, expected u32",
        ),
        (
            format!("admin_token = \"\"\"\n{secret}\"\"\"\nadmin_token = 1\n"),
            "line 3 (key admin_token): ",
        ),
        (
            format!(
                "[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"p\"\n[services.sql.admin]\nurl_env = \"X\"\nurl_env = \"postgres://u:{secret}@h/d\"\n"
            ),
            "line 7 (key url_env): ",
        ),
    ] {
        let err = parse(&text).expect_err(&text);
        assert!(err.contains(says), "{text}: {err}");
        assert!(!err.contains(secret), "{text}: {err}");
        assert!(!err.contains("hunter2"), "{text}: {err}");
    }
}

#[test]
fn meaning_errors_never_show_a_secret() {
    let base = "[[services]]\nid = \"api\"\nplugin = \"api.wasm\"\npassword = \"p\"\n";
    for (extra, says) in [
        (
            "[services.http]\nallow = [\"https://user:hunter2@api.example.com\"]\n",
            "carries a user name or password",
        ),
        (
            "[services.http]\nallow = [\"https://user:hun ter2@api.example.com\"]\n",
            "is not a URL",
        ),
    ] {
        let err = parse(&format!("{base}{extra}")).expect_err(extra);
        assert!(err.contains(says), "{extra}: {err}");
        assert!(
            !err.contains("hunter2") && !err.contains("hun ter2"),
            "{extra}: {err}"
        );
    }
    let short = parse("admin_token = \"hunter2\"\n").expect_err("a short token");
    assert!(!short.contains("hunter2"), "{short}");
}

#[test]
fn unknown_keys_are_named() {
    let err = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
    assert!(err.contains("listen_port"), "{err}");
    let err =
        parse("[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"p\"\nmemory = 3\n")
            .unwrap_err();
    assert!(err.contains("memory"), "{err}");
}

#[test]
fn bad_services_are_refused_with_a_reason() {
    let cases = [
        (
            "id = \"My_Service\"\nplugin = \"a\"\npassword = \"p\"",
            "not a tsuru service id",
        ),
        ("id = \"a\"\nplugin = \"a\"", "no password"),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\npassword_env = \"X\"",
            "keep one",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword_env = \"UNSET\"",
            "UNSET, which is not set",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\ntimeout_ms = 0",
            "timeout_ms",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmemory_mb = 9000",
            "memory_mb is 9000",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nusername = \"x:y\"",
            "without ':'",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmax_concurrent_calls = 0",
            "max_concurrent_calls is 0; give a value from 1",
        ),
        (
            "id = \"a\"\nplugin = \"a\"\npassword = \"p\"\nmax_env_kb = 0",
            "max_env_kb is 0; give at least 1",
        ),
    ];
    for (service, expected) in cases {
        let err = parse(&format!("[[services]]\n{service}\n")).unwrap_err();
        assert!(err.contains(expected), "{service}: {err}");
    }
    let twice = "[[services]]\nid = \"a\"\nplugin = \"a\"\npassword = \"p\"\n[[services]]\nid = \"a\"\nplugin = \"b\"\npassword = \"q\"\n";
    assert!(parse(twice).unwrap_err().contains("used twice"));
    let long = format!(
        "[[services]]\nid = \"{}\"\nplugin = \"a\"\npassword = \"p\"\n",
        "a".repeat(41)
    );
    assert!(parse(&long).unwrap_err().contains("at most 40"));
}

#[test]
fn max_instances_still_reads_as_max_concurrent_calls_with_a_deprecation_note() {
    let service = "[[services]]\nid = \"a\"\nplugin = \"a.wasm\"\npassword = \"p\"\n";
    let config = parse(&format!("max_instances = 7\n{service}max_instances = 3\n"))
        .expect("the old key is still read");
    assert_eq!(config.max_concurrent_calls, 7);
    assert_eq!(config.services[0].max_concurrent_calls, 3);
    assert_eq!(
        config.deprecated,
        [
            "max_instances is deprecated: it is now called max_concurrent_calls, with the same meaning; rename it in the config file",
            "services[0] (id \"a\"): max_instances is deprecated: it is now called max_concurrent_calls, with the same meaning; rename it in the config file",
        ]
    );

    let config = parse(&format!("max_concurrent_calls = 9\n{service}")).expect("the new key");
    assert_eq!(config.max_concurrent_calls, 9);
    assert!(config.deprecated.is_empty());

    let both = parse(&format!(
        "{service}max_concurrent_calls = 2\nmax_instances = 3\n"
    ))
    .expect_err("both names at once");
    assert!(
        both.ends_with(
            "services[0] (id \"a\"): both max_concurrent_calls and max_instances (its old name) are set; keep max_concurrent_calls"
        ),
        "{both}"
    );
}

#[test]
fn the_shared_store_is_read_from_its_table_and_refused_with_sentences() {
    let parse_with = |text: &str| {
        Config::parse(
            text,
            Path::new("/etc/orizuru"),
            &Overrides::default(),
            |name| match name {
                "STORE_URL" => Some("postgres://orizuru:s3cr%40t@db:5432/orizuru".to_owned()),
                "BAD_URL" => Some("postgres://u:pa ss@db:99999999/x".to_owned()),
                _ => None,
            },
        )
        .map_err(|err| err.to_string())
    };
    assert!(parse_with("").expect("no [store]").store.is_none());
    let store = parse_with("[store]\nurl_env = \"STORE_URL\"\nhost_id = \"pod-1\"\n")
        .expect("a store")
        .store
        .expect("the shared store");
    assert_eq!(
        store.url.expose(),
        "postgres://orizuru:s3cr%40t@db:5432/orizuru"
    );
    assert_eq!(store.url_from, "url_env = \"STORE_URL\"");
    assert_eq!(store.pool_size, crate::store::DEFAULT_STORE_POOL_SIZE);
    assert_eq!(store.host_id, "pod-1");
    // The host's name is the machine's unless given.
    let store = parse_with("[store]\nurl_env = \"STORE_URL\"\npool_size = 4\n")
        .expect("a store")
        .store
        .expect("the shared store");
    assert!(!store.host_id.is_empty());
    assert_eq!(store.pool_size, 4);

    let dir = tempfile::tempdir().expect("a dir");
    std::fs::write(dir.path().join("url"), "postgres://u@h/d\n").expect("a URL file");
    let from_file = Config::parse(
        "[store]\nurl_file = \"url\"\n",
        dir.path(),
        &Overrides::default(),
        |_| None,
    )
    .expect("a URL file")
    .store
    .expect("the shared store");
    assert_eq!(from_file.url.expose(), "postgres://u@h/d");

    for (text, says) in [
        (
            "[store]\npool_size = 2\n",
            "[store] must say where its PostgreSQL URL is read from: url_env = \"NAME\" or url_file = \"PATH\", one of them",
        ),
        (
            "[store]\nurl_env = \"STORE_URL\"\nurl_file = \"url\"\n",
            "[store] must say where its PostgreSQL URL is read from",
        ),
        (
            "[store]\nurl_env = \"UNSET\"\n",
            "[store] reads its URL from the environment variable UNSET, which is not set or empty; set it, or remove [store] to keep the embedded store",
        ),
        (
            "[store]\nurl_file = \"missing-url\"\n",
            "[store] reads its URL from the file /etc/orizuru/missing-url, which cannot be read",
        ),
        (
            "[store]\nurl_env = \"BAD_URL\"\n",
            "[store] url_env = \"BAD_URL\": the URL is not one PostgreSQL reads; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
        ),
        (
            "[store]\nurl_env = \"STORE_URL\"\npool_size = 0\n",
            "[store] pool_size is 0; give a value from 1 to 1000",
        ),
        (
            "[store]\nurl_env = \"STORE_URL\"\nhost_id = \" \"\n",
            "[store] host_id is empty",
        ),
        (
            "[store]\nurl = \"postgres://u:p@h/d\"\n",
            "unknown field `url`",
        ),
    ] {
        let err = parse_with(text).expect_err(text);
        assert!(err.contains(says), "{text}: {err}");
        assert!(!err.contains("pa ss"), "{text}: {err}");
    }
}

#[test]
fn reuse_is_off_unless_reuse_calls_is_given_and_its_keys_have_ranges() {
    let base = "[[services]]\nid = \"py\"\nplugin = \"py.wasm\"\npassword = \"p\"\n";
    let service =
        |extra: &str| parse(&format!("{base}{extra}\n")).map(|config| config.services[0].reuse);
    assert_eq!(service(""), Ok(None));
    // One call per instance is what no reuse means.
    assert_eq!(service("reuse_calls = 1"), Ok(None));
    assert_eq!(
        service("reuse_calls = 500"),
        Ok(Some(Reuse {
            calls: 500,
            age: Duration::from_secs(DEFAULT_REUSE_SECS)
        }))
    );
    assert_eq!(
        service("reuse_calls = 500\nreuse_secs = 5"),
        Ok(Some(Reuse {
            calls: 500,
            age: Duration::from_secs(5)
        }))
    );
    for (extra, says) in [
        (
            "reuse_calls = 0",
            "services[0] (id \"py\"): reuse_calls is 0; give a value from 1 (a fresh instance per call, the default) to 1000000",
        ),
        (
            "reuse_calls = 10\nreuse_secs = 0",
            "services[0] (id \"py\"): reuse_secs is 0; give a value from 1 to 86400",
        ),
        (
            "reuse_secs = 30",
            "services[0] (id \"py\"): reuse_secs is set without reuse_calls; set reuse_calls too (how many calls one plugin instance may serve), or drop reuse_secs",
        ),
    ] {
        let err = service(extra).expect_err(extra);
        assert!(err.contains(says), "{extra}: {err}");
    }
}
