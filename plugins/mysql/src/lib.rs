//! A MySQL/MariaDB provisioner, doing what tsuru's mysqlapi does: each
//! instance is a database of its own, each bound app a user of its own with
//! a generated password and every privilege on that database alone, all on
//! the server the operator declared as the service's `admin` SQL connection.
//!
//! ```toml
//! [[services]]
//! id = "mysql"
//! plugin = "mysql.wasm"
//! password_env = "MYSQL_SERVICE_PASSWORD"
//! [services.sql.admin]
//! url_env = "MYSQL_ADMIN_URL"  # mysql://orizuru:PASSWORD@db.internal:3306/
//! [services.config]
//! host = "db.internal"         # what bound apps connect to
//! port = "3306"
//! # prefix = "tsuru"           # of every database and user; one per service sharing a server
//! # user_host = "%"            # the host part of the apps' users ('user'@'%')
//! # connection = "admin"       # the [services.sql.NAME] to use
//! ```
//!
//! The admin needs `CREATE USER`, `PROCESS` and `CONNECTION ADMIN` (MySQL 8:
//! `CONNECTION_ADMIN`) on `*.*`, and `ALL PRIVILEGES ON `prefix\_%`.* WITH
//! GRANT OPTION`; nothing else (the README's section has the statements).
//!
//! Names never collide: they come from the ids of a registry the provisioner
//! keeps in the database `<prefix>_registry`, which only the admin reaches
//! (apps have privileges on their own database alone). An instance's
//! database is `<prefix>_<slug of its name>_<id>`, an app's user
//! `<prefix>_u<id>` (short enough for MySQL 8's 32 characters); the slug is
//! only for people, the id makes the name unique. The registry row of an
//! instance is written before anything is made for it and deleted after
//! everything is gone, so a create, bind or remove tried again after a
//! failure halfway finds what the first one made, and remove can say what
//! remains. What an instance's create made is also kept in its data.
//!
//! Bound apps get `ALL PRIVILEGES` on their database (never `GRANT OPTION`)
//! and the plan's `MAX_USER_CONNECTIONS`, which only a holder of `CREATE
//! USER` can change. Unbind drops the app's user and ends its sessions;
//! remove does so for every user, then drops the database.

use orizuru_sdk::sql::{self, Connection, mysql};
use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, Plan, Provisioned, Result,
    Service, Status, UpdateRequest, config,
};
use serde::{Deserialize, Serialize};

struct Mysql;

/// The plans: a name, what tsuru shows, and each app user's connection limit.
const PLANS: &[(&str, &str, u32)] = &[
    (
        "small",
        "A database of its own on the shared server, up to 10 connections per app",
        10,
    ),
    (
        "large",
        "A database of its own on the shared server, up to 50 connections per app",
        50,
    ),
];

/// The plan of an instance created without one.
const DEFAULT_PLAN: &str = "small";

/// What the host keeps for an instance: its registry id and database.
#[derive(Serialize, Deserialize)]
struct Names {
    id: u64,
    database: String,
}

/// The service's settings, from its `[services.config]`.
struct Settings {
    admin: Connection,
    prefix: String,
    user_host: String,
}

impl Settings {
    fn read() -> Result<Self> {
        let connection = config::get("connection")?.unwrap_or_else(|| "admin".to_owned());
        let prefix = config::get("prefix")?.unwrap_or_else(|| "tsuru".to_owned());
        let mut chars = prefix.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && prefix.len() <= 12;
        if !well_formed {
            return Err(Error::failed(format!(
                "the service's prefix \"{prefix}\" cannot start a MySQL name; its operator must set [services.config] prefix to 1 to 12 lowercase letters and digits, starting with a letter"
            )));
        }
        let user_host = config::get("user_host")?.unwrap_or_else(|| "%".to_owned());
        if user_host.is_empty() || user_host.len() > 255 {
            return Err(Error::failed(format!(
                "the service's user_host \"{user_host}\" is not a MySQL host pattern; its operator must set [services.config] user_host to a host, an address or a pattern such as % or 10.0.%"
            )));
        }
        Ok(Self {
            admin: Connection::named(connection),
            prefix,
            user_host,
        })
    }

    fn registry(&self) -> String {
        mysql::quote_identifier(&format!("{}_registry", self.prefix))
    }

    /// Makes the registry when it is not there yet.
    fn ensure_registry(&self) -> Result<()> {
        let registry = self.registry();
        let admin = &self.admin;
        // Looked for first: one statement on every create but the first.
        let made = admin.query(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'users'",
            &[&format!("{}_registry", self.prefix)],
        )?;
        if !made.is_empty() {
            return Ok(());
        }
        admin.execute(&format!("CREATE DATABASE IF NOT EXISTS {registry}"), &[])?;
        admin.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {registry}.instances (
                    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                    name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE,
                    db VARCHAR(64) NOT NULL DEFAULT ''
                 ) ENGINE = InnoDB"
            ),
            &[],
        )?;
        admin.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {registry}.users (
                    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                    instance_id BIGINT UNSIGNED NOT NULL,
                    app VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                    user VARCHAR(32) NOT NULL DEFAULT '',
                    host VARCHAR(255) NOT NULL DEFAULT '',
                    UNIQUE KEY instance_app (instance_id, app)
                 ) ENGINE = InnoDB"
            ),
            &[],
        )?;
        Ok(())
    }

    /// The registry's row for an instance, made (with its database's name)
    /// when there is none.
    fn register(&self, instance: &str) -> Result<Names> {
        let registry = self.registry();
        self.admin.execute(
            &format!("INSERT IGNORE INTO {registry}.instances (name) VALUES (?)"),
            &[&instance],
        )?;
        let names = self.registered(instance)?.ok_or_else(|| {
            Error::failed(format!(
                "the registry lost the row of instance \"{instance}\" as it was written; try again"
            ))
        })?;
        if !names.database.is_empty() {
            return Ok(names);
        }
        let database = format!("{}_{}_{}", self.prefix, slug(instance, 16), names.id);
        self.admin.execute(
            &format!("UPDATE {registry}.instances SET db = ? WHERE id = ? AND db = ''"),
            &[&database, &names.id],
        )?;
        Ok(Names {
            id: names.id,
            database,
        })
    }

    /// The registry's row for an instance, if it has one.
    fn registered(&self, instance: &str) -> Result<Option<Names>> {
        let rows = match self.admin.query(
            &format!(
                "SELECT id, db FROM {}.instances WHERE name = ?",
                self.registry()
            ),
            &[&instance],
        ) {
            Ok(rows) => rows,
            // No registry yet (1049), or not its table yet (1146): no instance either.
            Err(error) if matches!(number(&error), Some(1049 | 1146)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        rows.first()
            .map(|row| {
                Ok(Names {
                    id: row.parse("id")?.unwrap_or_default(),
                    database: row.require("db")?.to_owned(),
                })
            })
            .transpose()
    }

    /// The names of an instance: as create kept them, or as the registry
    /// has them (an instance whose create never finished has no data).
    fn names_of(&self, instance: &Instance) -> Result<Option<Names>> {
        match instance.data_as::<Names>()? {
            Some(names) => Ok(Some(names)),
            None => self.registered(&instance.name),
        }
    }

    fn database_exists(&self, database: &str) -> Result<bool> {
        Ok(!self
            .admin
            .query(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                &[&database],
            )?
            .is_empty())
    }

    /// The users the registry has for an instance: (app, user, host).
    fn users_of(&self, id: u64) -> Result<Vec<(String, String, String)>> {
        let rows = self.admin.query(
            &format!(
                "SELECT app, user, host FROM {}.users WHERE instance_id = ? ORDER BY id",
                self.registry()
            ),
            &[&id],
        )?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.require("app")?.to_owned(),
                    row.require("user")?.to_owned(),
                    row.require("host")?.to_owned(),
                ))
            })
            .collect()
    }

    /// Drops an app's user, ends its sessions, and forgets it.
    fn drop_user(&self, id: u64, app: &str, user: &str, host: &str) -> Result<()> {
        if !user.is_empty() {
            // Dropped first, so that no session the next step ends can log in again.
            self.admin.execute(
                &format!(
                    "DROP USER IF EXISTS {}@{}",
                    mysql::quote_literal(user),
                    mysql::quote_literal(host)
                ),
                &[],
            )?;
            let sessions = self.admin.query(
                "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?",
                &[&user],
            )?;
            for row in &sessions {
                let session: u64 = row.parse("id")?.unwrap_or_default();
                match self
                    .admin
                    .execute(&format!("KILL CONNECTION {session}"), &[])
                {
                    Ok(_) => {}
                    // The session ended meanwhile.
                    Err(error) if number(&error) == Some(1094) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        self.admin.execute(
            &format!(
                "DELETE FROM {}.users WHERE instance_id = ? AND app = ?",
                self.registry()
            ),
            &[&id, &app],
        )?;
        Ok(())
    }

    /// Drops an instance's users and database and forgets it; answers
    /// 200's promise only when none of them is left.
    fn teardown(&self, instance: &str, names: &Names) -> Result<()> {
        let mut remains = Vec::new();
        let mut why = None;
        for (app, user, host) in self.users_of(names.id)? {
            if let Err(error) = self.drop_user(names.id, &app, &user, &host) {
                remains.push(format!("the user {user} of app \"{app}\""));
                why.get_or_insert(error);
            }
        }
        if !names.database.is_empty() {
            let dropped = self.admin.execute(
                &format!(
                    "DROP DATABASE IF EXISTS {}",
                    mysql::quote_identifier(&names.database)
                ),
                &[],
            );
            if let Err(error) = dropped {
                why.get_or_insert(error.into());
            }
            if self.database_exists(&names.database)? {
                remains.push(format!("the database {}", names.database));
            }
        }
        if remains.is_empty() {
            self.admin.execute(
                &format!("DELETE FROM {}.instances WHERE id = ?", self.registry()),
                &[&names.id],
            )?;
            return Ok(());
        }
        Err(Error::failed(format!(
            "cannot remove instance \"{instance}\": {} {} still on the server ({}); try again, or ask the service's operator to drop {}",
            remains.join(" and "),
            if remains.len() == 1 { "is" } else { "are" },
            why.as_ref().map(Error::sentence).unwrap_or_default(),
            if remains.len() == 1 { "it" } else { "them" },
        )))
    }
}

/// `name` lowercased, `-` as `_`, at most `max` characters: for people
/// reading the server's names; the registry's id makes them unique.
fn slug(name: &str, max: usize) -> String {
    name.chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' | '_' => Some(c),
            '-' => Some('_'),
            _ => None,
        })
        .take(max)
        .collect()
}

/// A database name as `GRANT` reads it: `_` and `%` are wildcards there,
/// so they are escaped, and the grant reaches this database alone.
fn grant_target(database: &str) -> String {
    let escaped = database.replace('_', "\\_").replace('%', "\\%");
    format!("{}.*", mysql::quote_identifier(&escaped))
}

fn plan_limit(plan: Option<&str>) -> Result<u32> {
    let plan = plan.filter(|plan| !plan.is_empty()).unwrap_or(DEFAULT_PLAN);
    PLANS
        .iter()
        .find(|(name, _, _)| *name == plan)
        .map(|(_, _, limit)| *limit)
        .ok_or_else(|| {
            let names: Vec<&str> = PLANS.iter().map(|(name, _, _)| *name).collect();
            Error::invalid(format!(
                "plan \"{plan}\" does not exist; choose one of {}",
                names.join(", ")
            ))
        })
}

/// MySQL's error number for a refused statement, which the host gives as
/// its detail (`MySQL error 1049`).
fn number(error: &sql::Error) -> Option<u16> {
    match error.kind() {
        sql::ErrorKind::QueryFailed(db) => db
            .detail
            .as_deref()?
            .strip_prefix("MySQL error ")?
            .parse()
            .ok(),
        _ => None,
    }
}

/// Adds what the plugin was doing to a failure's sentence.
fn doing(what: String) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Failed(sentence) => Error::failed(format!("{what}: {sentence}")),
        other => other,
    }
}

/// Where bound apps connect: `[services.config]` `host` and `port`.
fn address() -> Result<(String, String)> {
    let host = config::require("host")?;
    let port = config::get("port")?.unwrap_or_else(|| "3306".to_owned());
    Ok((host, port))
}

fn missing(instance: &str) -> Error {
    Error::not_found(format!(
        "instance \"{instance}\" has no database on the server; remove the instance and create it again"
    ))
}

impl Service for Mysql {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(PLANS
            .iter()
            .map(|(name, description, _)| Plan::new(*name, *description))
            .collect())
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        let instance = &request.instance;
        plan_limit(instance.plan.as_deref())?;
        let settings = Settings::read()?;
        let what = format!(
            "cannot create the database of instance \"{}\"",
            instance.name
        );
        settings.ensure_registry().map_err(doing(what.clone()))?;
        let names = settings
            .register(&instance.name)
            .map_err(doing(what.clone()))?;
        let made = settings.admin.execute(
            &format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
                mysql::quote_identifier(&names.database)
            ),
            &[],
        );
        if let Err(error) = made {
            let error = doing(what)(error.into());
            // Leave nothing half-made behind; tsuru may try again from scratch.
            return match settings.teardown(&instance.name, &names) {
                Ok(()) => Err(error),
                Err(cleanup) => Err(Error::failed(format!(
                    "{}; removing what was made also failed: {}",
                    error.sentence(),
                    cleanup.sentence()
                ))),
            };
        }
        Provisioned::ready().with_data(&names)
    }

    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let limit = plan_limit(request.next.plan.as_deref())?;
        let settings = Settings::read()?;
        let name = &request.current.name;
        let names = settings
            .names_of(&request.current)?
            .ok_or_else(|| missing(name))?;
        let changed = (|| -> Result<()> {
            for (_, user, host) in settings.users_of(names.id)? {
                settings.admin.execute(
                    &format!(
                        "ALTER USER {}@{} WITH MAX_USER_CONNECTIONS {limit}",
                        mysql::quote_literal(&user),
                        mysql::quote_literal(&host)
                    ),
                    &[],
                )?;
            }
            Ok(())
        })();
        changed.map_err(doing(format!(
            "cannot change the plan of instance \"{name}\""
        )))?;
        Ok(Provisioned::ready())
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        let settings = Settings::read()?;
        match settings.names_of(&instance)? {
            Some(names) => settings.teardown(&instance.name, &names),
            None => Ok(()),
        }
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        let settings = Settings::read()?;
        let exists = settings.names_of(&instance).and_then(|names| match names {
            Some(names) => settings.database_exists(&names.database),
            None => Ok(false),
        });
        Ok(match exists {
            Ok(true) => Status::Up,
            Ok(false) => Status::Down(missing(&instance.name).sentence()),
            Err(error) => Status::Down(error.sentence()),
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let settings = Settings::read()?;
        let names = settings
            .names_of(&instance)?
            .ok_or_else(|| missing(&instance.name))?;
        if !settings.database_exists(&names.database)? {
            return Err(missing(&instance.name));
        }
        let plan = instance.plan.as_deref().unwrap_or(DEFAULT_PLAN);
        let (host, port) = address()?;
        Ok(vec![
            InfoItem::new("Plan", plan),
            InfoItem::new("Database", &names.database),
            InfoItem::new("Address", format!("{host}:{port}")),
            InfoItem::new(
                "Connections per app",
                plan_limit(Some(plan)).map_or_else(|_| "?".to_owned(), |limit| limit.to_string()),
            ),
            InfoItem::new("Apps", settings.users_of(names.id)?.len().to_string()),
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let settings = Settings::read()?;
        let admin = &settings.admin;
        let limit = plan_limit(instance.plan.as_deref())?;
        let names = settings
            .names_of(&instance)?
            .ok_or_else(|| missing(&instance.name))?;
        if !settings.database_exists(&names.database)? {
            return Err(missing(&instance.name));
        }
        let (host, port) = address()?;
        let registry = settings.registry();
        let what = format!(
            "cannot bind app \"{}\" to instance \"{}\"",
            app.app_name, instance.name
        );
        let bound = (|| -> Result<(String, String)> {
            admin.execute(
                &format!(
                    "INSERT IGNORE INTO {registry}.users (instance_id, app, host) VALUES (?, ?, ?)"
                ),
                &[&names.id, &app.app_name, &settings.user_host],
            )?;
            let rows = admin.query(
                &format!(
                    "SELECT id, user, host FROM {registry}.users WHERE instance_id = ? AND app = ?"
                ),
                &[&names.id, &app.app_name],
            )?;
            let row = rows.first().ok_or_else(|| {
                Error::failed("the registry lost the app's row as it was written; try again")
            })?;
            let mut user = row.require("user")?.to_owned();
            // A bind tried again keeps the host its user was made with.
            let user_host = row.require("host")?.to_owned();
            if user.is_empty() {
                let id: u64 = row.parse("id")?.unwrap_or_default();
                user = format!("{}_u{id}", settings.prefix);
                admin.execute(
                    &format!("UPDATE {registry}.users SET user = ? WHERE id = ? AND user = ''"),
                    &[&user, &id],
                )?;
            }
            let account = format!(
                "{}@{}",
                mysql::quote_literal(&user),
                mysql::quote_literal(&user_host)
            );
            let password = orizuru_sdk::random::password();
            let secret = mysql::quote_literal(&password);
            // A bind tried again: the user gets a new password, which the app gets.
            admin.execute(
                &format!(
                    "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret} WITH MAX_USER_CONNECTIONS {limit}"
                ),
                &[],
            )?;
            admin.execute(
                &format!(
                    "ALTER USER {account} IDENTIFIED BY {secret} WITH MAX_USER_CONNECTIONS {limit}"
                ),
                &[],
            )?;
            admin.execute(
                &format!(
                    "GRANT ALL PRIVILEGES ON {} TO {account}",
                    grant_target(&names.database)
                ),
                &[],
            )?;
            Ok((user, password))
        })();
        let (user, password) = bound.map_err(doing(what))?;
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Env::from([
            (
                "DATABASE_URL".to_owned(),
                format!(
                    "mysql://{user}:{password}@{url_host}:{port}/{}",
                    names.database
                ),
            ),
            ("MYSQL_HOST".to_owned(), host),
            ("MYSQL_PORT".to_owned(), port),
            ("MYSQL_DATABASE_NAME".to_owned(), names.database),
            ("MYSQL_USER".to_owned(), user),
            ("MYSQL_PASSWORD".to_owned(), password),
        ]))
    }

    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        let settings = Settings::read()?;
        let what = format!(
            "cannot unbind app \"{}\" from instance \"{}\"",
            app.app_name, instance.name
        );
        let Some(names) = settings.names_of(&instance)? else {
            return Ok(());
        };
        let users = settings.users_of(names.id).map_err(doing(what.clone()))?;
        for (bound, user, host) in users {
            if bound == app.app_name {
                settings
                    .drop_user(names.id, &bound, &user, &host)
                    .map_err(doing(what.clone()))?;
            }
        }
        Ok(())
    }
}

orizuru_sdk::export!(Mysql);
