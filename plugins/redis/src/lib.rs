//! A Redis provisioner, as tsuru's redisapi is for Redis: each instance is
//! a key prefix on the shared server the operator declared as the service's
//! `admin` Redis connection, each bound app an ACL user of its own with a
//! generated password, confined to the instance's keys and channels and to
//! a command allow-list.
//!
//! ```toml
//! [[services]]
//! id = "redis"
//! plugin = "redis.wasm"
//! password_env = "REDIS_SERVICE_PASSWORD"
//! [services.redis.admin]
//! url_env = "REDIS_ADMIN_URL"  # the provisioner's ACL user (README: its exact rules)
//! [services.config]
//! host = "redis.internal"      # what bound apps connect to
//! port = "6379"
//! # prefix = "tsuru"           # of every key and user; one per service sharing a server
//! # connection = "admin"       # the [services.redis.NAME] to use
//! ```
//!
//! Names: an instance's keys start with `PREFIX:INSTANCE:` and an app's
//! user is `PREFIX.INSTANCE.APP`, each name written with only letters,
//! digits, `_` and `-` as they are and every other byte as `=XX`. So names
//! never meet (`:` and `.` cannot occur inside an encoded name, and no
//! instance's key prefix starts another's), none holds a glob character
//! an ACL pattern or `SCAN MATCH` would read, and a user name goes into a
//! URL as it is. What the provisioner finds again (an instance's users, its
//! keys) it finds from these names on the server, where only the admin
//! can write users.
//!
//! An app's user may run every command but those that reach beyond its
//! prefix or change the server: `+@all` less `@dangerous` (`KEYS`,
//! `FLUSHALL`, `FLUSHDB`, `CONFIG`, `ACL SETUSER`, `CLIENT KILL`, `DEBUG`,
//! `SHUTDOWN`, `MONITOR`, `MIGRATE`, `SWAPDB`, `SORT`, `INFO`, ...) and
//! `@admin` (`MODULE`, ...); less `@scripting`, since a script can hold the
//! single-threaded server for every tenant until someone runs `SCRIPT
//! KILL`, which would kill any tenant's script, and functions are
//! server-wide; and less, by name, what Redis 7.0 lets through a key
//! pattern: `SCAN`, `RANDOMKEY` and `DBSIZE` read the names or count of
//! every key (ACL key patterns only check the keys a command names),
//! `PUBSUB` lists every channel, `SELECT`, `MOVE` and `COPY .. DB` reach
//! another database where remove would never find the keys, and `MEMORY`
//! and `CLIENT` but their harmless subcommands.

use orizuru_sdk::redis::{Connection, Reply};
use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, Plan, Provisioned, Result,
    Service, Status, config,
};
use serde::{Deserialize, Serialize};

struct Redis;

/// The one plan: Redis has no per-user memory or connection limits, so a
/// plan could promise nothing more.
const PLANS: &[(&str, &str)] = &[(
    "shared",
    "A key prefix of its own on the shared server, and a Redis user per app confined to it",
)];

/// The rules of an app's user after its password and patterns; see the
/// module's comment for why each is there.
const APP_COMMANDS: &[&str] = &[
    "+@all",
    "-@dangerous",
    "-@admin",
    "-@scripting",
    "-keys",
    "-scan",
    "-randomkey",
    "-dbsize",
    "-pubsub",
    "-select",
    "-swapdb",
    "-move",
    "-copy",
    "-migrate",
    "-flushall",
    "-flushdb",
    "-config",
    "-acl",
    "+acl|whoami",
    "-memory",
    "+memory|usage",
    "-client",
    "+client|id",
    "+client|info",
    "+client|getname",
    "+client|setname",
];

/// Keys one remove deletes before it answers (and is called again).
const KEYS_PER_CALL: usize = 100_000;
/// Keys one `SCAN` step looks at, and at most one `UNLINK` deletes.
const SCAN_COUNT: &str = "1000";

/// What the host keeps for an instance: its names, as create made them.
#[derive(Serialize, Deserialize)]
struct Names {
    /// Every key of the instance starts with it (`tsuru:orders:`).
    keys: String,
    /// Every user of the instance starts with it (`tsuru.orders.`).
    users: String,
}

/// The service's settings, from its `[services.config]`.
struct Settings {
    admin: Connection,
    prefix: String,
}

impl Settings {
    fn read() -> Result<Self> {
        let connection = config::get("connection")?.unwrap_or_else(|| "admin".to_owned());
        let prefix = config::get("prefix")?.unwrap_or_else(|| "tsuru".to_owned());
        let well_formed = !prefix.is_empty()
            && prefix.len() <= 32
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !well_formed {
            return Err(Error::failed(format!(
                "the service's prefix \"{prefix}\" cannot start Redis key and user names; its operator must set [services.config] prefix to 1 to 32 lowercase letters, digits, _ and -"
            )));
        }
        Ok(Self {
            admin: Connection::named(connection),
            prefix,
        })
    }

    fn names(&self, instance: &str) -> Names {
        let instance = encode(instance);
        Names {
            keys: format!("{}:{instance}:", self.prefix),
            users: format!("{}.{instance}.", self.prefix),
        }
    }

    /// The names of an instance: as create kept them, or as it would make
    /// them (an instance whose create never finished has none kept).
    fn names_of(&self, instance: &Instance) -> Result<Names> {
        Ok(instance
            .data_as::<Names>()?
            .unwrap_or_else(|| self.names(&instance.name)))
    }
}

/// `name` with letters, digits, `_` and `-` as they are and every other
/// byte as `=XX`: injective, and free of `:`, `.`, glob characters and
/// anything a URL would escape.
fn encode(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("={byte:02X}"));
        }
    }
    encoded
}

/// Adds what the plugin was doing to a failure's sentence.
fn doing(what: String) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Failed(sentence) => Error::failed(format!("{what}: {sentence}")),
        other => other,
    }
}

/// The users of an instance, as the server lists them.
fn users_of(admin: &Connection, names: &Names) -> Result<Vec<String>> {
    let users = admin.command(&["ACL", "USERS"])?;
    let mut found = Vec::new();
    for user in users.array()? {
        if let Some(user) = user.text()?
            && user.starts_with(&names.users)
        {
            found.push(user.to_owned());
        }
    }
    Ok(found)
}

/// Cuts a user's connections and deletes it; nothing when it is gone already.
fn delete_user(admin: &Connection, user: &str) -> Result<()> {
    // ACL DELUSER closes them too; killing them first leaves no window in
    // which a connection outlives its user on a server that does not.
    match admin.command(&["CLIENT", "KILL", "USER", user]) {
        Ok(_) => {}
        Err(error) if error.to_string().contains("No such user") => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    admin.command(&["ACL", "DELUSER", user])?;
    Ok(())
}

/// One `SCAN` step over the instance's keys: the next cursor and the keys.
fn scan(admin: &Connection, names: &Names, cursor: &str) -> Result<(String, Vec<Vec<u8>>)> {
    let pattern = format!("{}*", names.keys);
    let reply: Reply = admin.command(&[
        "SCAN",
        cursor,
        "MATCH",
        pattern.as_str(),
        "COUNT",
        SCAN_COUNT,
    ])?;
    let parts = reply.array()?;
    let [next, keys] = parts[..] else {
        return Err(Error::failed(
            "Redis answered SCAN with something other than a cursor and a list of keys",
        ));
    };
    let next = next.text()?.unwrap_or("0").to_owned();
    let mut found = Vec::new();
    for key in keys.array()? {
        if let Some(key) = key.bytes()? {
            found.push(key.to_vec());
        }
    }
    Ok((next, found))
}

/// Deletes the instance's keys, in passes over the whole keyspace until one
/// finds none; answers how many are known to remain (0: none, as the last
/// pass saw) when it stopped at [`KEYS_PER_CALL`].
fn delete_keys(admin: &Connection, names: &Names) -> Result<usize> {
    let mut deleted = 0;
    loop {
        let mut found = 0;
        let mut cursor = "0".to_owned();
        loop {
            let (next, keys) = scan(admin, names, &cursor)?;
            if !keys.is_empty() {
                if deleted >= KEYS_PER_CALL {
                    return Ok(keys.len());
                }
                let mut unlink: Vec<&[u8]> = vec![b"UNLINK"];
                unlink.extend(keys.iter().map(Vec::as_slice));
                admin.command(&unlink[..])?;
                found += keys.len();
                deleted += keys.len();
            }
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        if found == 0 {
            return Ok(0);
        }
    }
}

/// Deletes every user and key of an instance, users first so that no app
/// writes a key behind the sweep, then checks that none is left.
fn teardown(admin: &Connection, instance: &str, names: &Names) -> Result<()> {
    let removed = (|| -> Result<()> {
        for user in users_of(admin, names)? {
            delete_user(admin, &user)?;
        }
        let keys_left = delete_keys(admin, names)?;
        let users_left = users_of(admin, names)?;
        if keys_left == 0 && users_left.is_empty() {
            return Ok(());
        }
        let mut left = Vec::new();
        if keys_left > 0 {
            left.push(format!(
                "keys starting with {} (at least {keys_left}; each remove deletes up to {KEYS_PER_CALL})",
                names.keys
            ));
        }
        if !users_left.is_empty() {
            left.push(format!("the users {}", users_left.join(", ")));
        }
        Err(Error::failed(format!(
            "{} remain on the server; remove the instance again",
            left.join(" and ")
        )))
    })();
    removed.map_err(doing(format!(
        "cannot remove the keys and users of instance \"{instance}\""
    )))
}

/// Where bound apps connect: `[services.config]` `host` and `port`.
fn address() -> Result<(String, String)> {
    let host = config::require("host")?;
    let port = config::get("port")?.unwrap_or_else(|| "6379".to_owned());
    Ok((host, port))
}

fn check_plan(plan: Option<&str>) -> Result<()> {
    let plan = plan.filter(|plan| !plan.is_empty()).unwrap_or(PLANS[0].0);
    if PLANS.iter().any(|(name, _)| *name == plan) {
        return Ok(());
    }
    let names: Vec<&str> = PLANS.iter().map(|(name, _)| *name).collect();
    Err(Error::invalid(format!(
        "plan \"{plan}\" does not exist; choose one of {}",
        names.join(", ")
    )))
}

impl Service for Redis {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(PLANS
            .iter()
            .map(|(name, description)| Plan::new(*name, *description))
            .collect())
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        let instance = &request.instance;
        check_plan(instance.plan.as_deref())?;
        let settings = Settings::read()?;
        address()?;
        let names = settings.names(&instance.name);
        // The name is free in tsuru, so whatever its prefix holds is left
        // from an earlier instance of that name whose create or remove
        // stopped halfway: nobody can reach it, and the new instance must
        // start empty.
        teardown(&settings.admin, &instance.name, &names).map_err(|error| match error {
            Error::Failed(sentence) => Error::failed(sentence.replace(
                "cannot remove the keys and users of instance",
                "cannot clear what an earlier create left of instance",
            )),
            other => other,
        })?;
        Provisioned::ready().with_data(&names)
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        teardown(&settings.admin, &instance.name, &names)
    }

    fn status(_instance: Instance, _context: Context) -> Result<Status> {
        let settings = Settings::read()?;
        Ok(match settings.admin.command(&["PING"]) {
            Ok(_) => Status::Up,
            Err(error) => Status::Down(error.to_string()),
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        let (host, port) = address()?;
        let users = users_of(&settings.admin, &names)?;
        Ok(vec![
            InfoItem::new("Plan", instance.plan.as_deref().unwrap_or(PLANS[0].0)),
            InfoItem::new("Address", format!("{host}:{port}")),
            InfoItem::new("Key prefix", &names.keys),
            InfoItem::new("Users", users.len().to_string()),
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        let (host, port) = address()?;
        let user = format!("{}{}", names.users, encode(&app.app_name));
        let password = orizuru_sdk::random::password();
        let mut rules = vec![
            "ACL".to_owned(),
            "SETUSER".to_owned(),
            user.clone(),
            // A bind tried again starts over: a new password, the same rules.
            "reset".to_owned(),
            "on".to_owned(),
            format!(">{password}"),
            format!("~{}*", names.keys),
            format!("&{}*", names.keys),
        ];
        rules.extend(APP_COMMANDS.iter().map(|rule| (*rule).to_owned()));
        settings
            .admin
            .command(&rules[..])
            .map_err(Error::from)
            .map_err(doing(format!(
                "cannot bind app \"{}\" to instance \"{}\"",
                app.app_name, instance.name
            )))?;
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Env::from([
            (
                "REDIS_URL".to_owned(),
                format!("redis://{user}:{password}@{url_host}:{port}"),
            ),
            ("REDIS_HOST".to_owned(), host),
            ("REDIS_PORT".to_owned(), port),
            ("REDIS_USER".to_owned(), user),
            ("REDIS_PASSWORD".to_owned(), password),
            ("REDIS_PREFIX".to_owned(), names.keys),
        ]))
    }

    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        let user = format!("{}{}", names.users, encode(&app.app_name));
        delete_user(&settings.admin, &user).map_err(doing(format!(
            "cannot unbind app \"{}\" from instance \"{}\"",
            app.app_name, instance.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_injective_and_free_of_separators_and_globs() {
        assert_eq!(encode("orders-db_1"), "orders-db_1");
        assert_eq!(encode("a:b"), "a=3Ab");
        assert_eq!(encode("a=3Ab"), "a=3D3Ab");
        assert_eq!(encode("x*?[]\\ ."), "x=2A=3F=5B=5D=5C=20=2E");
        assert_eq!(encode("é"), "=C3=A9");
        for name in ["a:b", "a.b", "a*", "x y", "é"] {
            let encoded = encode(name);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{encoded}"
            );
        }
    }
}

orizuru_sdk::export!(Redis);
