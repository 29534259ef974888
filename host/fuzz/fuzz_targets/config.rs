//! The operator's config file: arbitrary UTF-8 text through
//! `Config::parse`, with a fake base folder and an environment where
//! `UNSET*` names are unset, `EMPTY*` names are empty and every other name
//! holds a value.
//!
//! Never panics; when the text is accepted, the config keeps every rule the
//! file format documents (config.rs and the README's "Configuring").

#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use orizuru::config::{
    self, Config, ConfigFile, MAX_CONCURRENT_CALLS, MAX_MEMORY_MB, MAX_REQUEST_READ_TIMEOUT_SECS,
    Overrides, PasswordSource, check_service_id,
};

const BASE: &str = "/etc/orizuru";

/// `ORIZURU_FUZZ_SKIP_KNOWN=1` skips inputs that hit bugs already reported
/// (see README.md), so a run can look for new ones.
static SKIP_KNOWN: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("ORIZURU_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"));

fn env(name: &str) -> Option<String> {
    if name.starts_with("UNSET") {
        None
    } else if name.starts_with("EMPTY") {
        Some(String::new())
    } else {
        Some(format!("value-of-{name}"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if *SKIP_KNOWN && hits_known_bug(text) {
        return;
    }
    let base = Path::new(BASE);
    let Ok(config) = Config::parse(text, base, &Overrides::default(), env) else {
        return;
    };
    check(&config, text);
});

fn check(config: &Config, text: &str) {
    assert!(config.source.is_none(), "parse never names a file");
    assert!(
        (1..=MAX_CONCURRENT_CALLS).contains(&config.max_concurrent_calls),
        "max_concurrent_calls {} out of range",
        config.max_concurrent_calls
    );
    assert!(
        config.max_request_bytes >= 1024 && config.max_request_bytes.is_multiple_of(1024),
        "max_request_bytes {} is not a whole, positive number of KiB",
        config.max_request_bytes
    );
    assert!(config.keep_versions >= 1, "keep_versions is 0");
    assert!(
        (1..=MAX_REQUEST_READ_TIMEOUT_SECS).contains(&config.request_read_timeout.as_secs())
            && config.request_read_timeout.subsec_nanos() == 0,
        "request_read_timeout {:?} out of range",
        config.request_read_timeout
    );
    assert!(
        config.max_plugin_bytes >= 1024 * 1024
            && config.max_plugin_bytes.is_multiple_of(1024 * 1024),
        "max_plugin_bytes {} is not a whole, positive number of MiB",
        config.max_plugin_bytes
    );
    assert!(config.data_dir.starts_with(BASE) || config.data_dir.is_absolute());
    if let Some(admin) = &config.admin {
        assert!(
            admin.token.expose().len() >= 16,
            "admin token shorter than 16"
        );
        check_source(&admin.source, admin.token.expose());
    }
    let mut ids = HashSet::new();
    let mut usernames = HashSet::new();
    for service in &config.services {
        let id = &service.id;
        assert!(
            check_service_id(id).is_ok(),
            "service id {id:?} was accepted"
        );
        assert!(ids.insert(id.clone()), "service id {id:?} twice");
        assert!(
            usernames.insert(service.username.clone()),
            "username {:?} twice",
            service.username
        );
        assert!(
            !service.username.is_empty() && !service.username.contains(':'),
            "username {:?} cannot be basic auth",
            service.username
        );
        assert!(
            !service.password.expose().is_empty(),
            "{id}: empty password"
        );
        check_source(&service.password_source, service.password.expose());
        assert!(
            service.plugin.is_some(),
            "{id}: a file service without a plugin"
        );
        assert!(service.timeout.as_millis() >= 1, "{id}: zero timeout");
        let mb = 1024 * 1024;
        assert!(
            (mb..=MAX_MEMORY_MB * mb).contains(&service.memory_bytes)
                && service.memory_bytes.is_multiple_of(mb),
            "{id}: memory_bytes {} out of range",
            service.memory_bytes
        );
        assert!(
            (1..=MAX_CONCURRENT_CALLS).contains(&service.max_concurrent_calls),
            "{id}: max_concurrent_calls {} out of range",
            service.max_concurrent_calls
        );
        let answers = service.answers;
        assert!(answers.env_vars >= 1, "{id}: max_env_vars 0");
        assert!(
            answers.env_bytes >= 1024 && answers.env_bytes.is_multiple_of(1024),
            "{id}: env_bytes {} is not a whole, positive number of KiB",
            answers.env_bytes
        );
        assert!(answers.info_items >= 1, "{id}: max_info_items 0");
        assert!(
            answers.proxy_body_bytes >= 1024 && answers.proxy_body_bytes.is_multiple_of(1024),
            "{id}: proxy_body_bytes {} is not a whole, positive number of KiB",
            answers.proxy_body_bytes
        );
        assert!(answers.log_lines >= 1, "{id}: max_log_lines 0");
    }
    // What was written is what is used: the limits are the file's numbers
    // (or the defaults), scaled, never wrapped.
    let file: ConfigFile = toml::from_str(text).expect("parse accepted it, so toml does");
    let kib = |kb: Option<u64>, default: u64| kb.map_or(Some(default), |kb| kb.checked_mul(1024));
    assert_eq!(
        Some(config.max_request_bytes),
        kib(file.max_request_kb, config::DEFAULT_MAX_REQUEST_KB * 1024),
        "max_request_kb wrapped"
    );
    assert_eq!(
        Some(config.max_plugin_bytes),
        kib(file.max_plugin_mb, config::DEFAULT_MAX_PLUGIN_MB * 1024)
            .and_then(|kb| kb.checked_mul(1024)),
        "max_plugin_mb wrapped"
    );
    for (service, entry) in config.services.iter().zip(&file.services) {
        assert_eq!(
            Some(service.answers.env_bytes),
            kib(entry.max_env_kb, 64 * 1024)
        );
        assert_eq!(
            Some(service.answers.proxy_body_bytes),
            kib(entry.max_proxy_body_kb, 1024 * 1024)
        );
    }
}

fn check_source(source: &PasswordSource, value: &str) {
    match source {
        PasswordSource::ConfigFile => {}
        PasswordSource::Environment(name) => {
            assert_eq!(Some(value.to_owned()), env(name), "the secret of {name:?}");
        }
        PasswordSource::AdminApi => panic!("a config file made an admin-API password"),
    }
}

/// Inputs that hit the bugs README.md reports: a size in KiB or MiB whose
/// byte count does not fit in a u64 (`max_request_kb`, `max_plugin_mb`,
/// `max_env_kb`, `max_proxy_body_kb`), which overflows in config.rs.
fn hits_known_bug(text: &str) -> bool {
    let Ok(file) = toml::from_str::<ConfigFile>(text) else {
        return false;
    };
    let too_big =
        |value: Option<u64>, scale: u64| value.is_some_and(|v| v.checked_mul(scale).is_none());
    too_big(file.max_request_kb, 1024)
        || too_big(file.max_plugin_mb, 1024 * 1024)
        || file
            .services
            .iter()
            .any(|s| too_big(s.max_env_kb, 1024) || too_big(s.max_proxy_body_kb, 1024))
}
