//! A PostgreSQL provisioner, as tsuru's mysqlapi is for MySQL: each
//! instance is a database of its own with an owner role, each bound app a
//! login role of its own with a generated password, all on the server the
//! operator declared as the service's `admin` SQL connection.
//!
//! ```toml
//! [[services]]
//! id = "postgres"
//! plugin = "postgres.wasm"
//! password_env = "POSTGRES_SERVICE_PASSWORD"
//! [services.sql.admin]
//! url_env = "PG_ADMIN_URL"     # a role with CREATEDB and CREATEROLE (or a superuser)
//! [services.config]
//! host = "pg.internal"         # what bound apps connect to
//! port = "5432"
//! # prefix = "tsuru"           # of every database and role; one per service sharing a server
//! # sslmode = "require"        # added to the apps' DATABASE_URL and PGSSLMODE
//! # connection = "admin"       # the [services.sql.NAME] to use
//! ```
//!
//! Names come from the instance's name: lowercased, `-` as `_`, cut short,
//! with a hash of the whole name so that `my-db` and `My_DB` never meet
//! (`tsuru_my_db_1a2b3c4d`, its owner `tsuru_my_db_1a2b3c4d_owner`, an app's
//! role `tsuru_my_db_1a2b3c4d_a_web_5e6f7a8b`), and always quoted. A
//! database carries a comment naming its instance, so a create never takes
//! over a database it did not make.
//!
//! Apps' roles are members of the owner role and act as it from login
//! (`ALTER ROLE .. SET role`), so whatever an app creates belongs to the
//! instance, not to the app, and unbinding an app never takes data with it.
//! The owner role cannot log in: nothing needs its password, so none is
//! kept. Needs PostgreSQL 13 or later (`DROP DATABASE .. WITH (FORCE)`).

use orizuru_sdk::sql::{self, Connection};
use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, Plan, Provisioned, Result,
    Service, Status, UpdateRequest, config,
};
use serde::{Deserialize, Serialize};

struct Postgres;

/// The plans: a name, what tsuru shows, and the database's connection limit.
const PLANS: &[(&str, &str, u32)] = &[
    (
        "small",
        "A database of its own on the shared server, up to 20 connections",
        20,
    ),
    (
        "large",
        "A database of its own on the shared server, up to 100 connections",
        100,
    ),
];

/// The plan of an instance created without one.
const DEFAULT_PLAN: &str = "small";

/// What the host keeps for an instance: its names, as create made them.
#[derive(Serialize, Deserialize)]
struct Names {
    database: String,
    owner: String,
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
        let mut chars = prefix.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && prefix.len() <= 12;
        if !well_formed {
            return Err(Error::failed(format!(
                "the service's prefix \"{prefix}\" cannot start a PostgreSQL name; its operator must set [services.config] prefix to 1 to 12 lowercase letters, digits and _, starting with a letter"
            )));
        }
        Ok(Self {
            admin: Connection::named(connection),
            prefix,
        })
    }

    /// The names create gives an instance.
    fn names(&self, instance: &str) -> Names {
        let database = format!("{}_{}_{}", self.prefix, slug(instance, 16), hash(instance));
        Names {
            owner: format!("{database}_owner"),
            database,
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

/// `name` lowercased, `-` as `_`, at most `max` characters.
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

/// Eight hex digits of the whole name (FNV-1a), which keep names that slug
/// alike apart.
fn hash(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The role of an app bound to the instance whose database is `database`.
fn app_role(database: &str, app: &str) -> String {
    format!("{database}_a_{}_{}", slug(app, 12), hash(app))
}

/// What a database's comment says, so a create knows its own.
fn marker(instance: &str) -> String {
    format!("orizuru: the database of tsuru instance {instance}")
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

/// A 32-character password of letters and digits, from WASI's random.
fn password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut password = String::with_capacity(32);
    let mut bytes = [0u8; 64];
    while password.len() < 32 {
        getrandom::fill(&mut bytes).map_err(|err| {
            Error::failed(format!(
                "the plugin could not draw a random password ({err}); try again"
            ))
        })?;
        // 248 is the largest multiple of 62 in a byte: no letter comes up more often.
        for byte in bytes.iter().filter(|byte| **byte < 248) {
            if password.len() == 32 {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(*byte % 62)]));
        }
    }
    Ok(password)
}

/// A database as the server has it.
struct Database {
    owner: String,
    marker: Option<String>,
}

impl Database {
    fn find(admin: &Connection, name: &str) -> Result<Option<Self>> {
        let rows = admin.query(
            "SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS marker
               FROM pg_database WHERE datname = $1",
            &[&name],
        )?;
        rows.first()
            .map(|row| {
                Ok(Database {
                    owner: row.require("owner")?.to_owned(),
                    marker: row.get("marker")?.map(str::to_owned),
                })
            })
            .transpose()
    }

    /// Whether create made it for this instance: its comment says so, or
    /// (create stopped before writing the comment) its owner is the instance's.
    fn belongs_to(&self, instance: &str, names: &Names) -> bool {
        match &self.marker {
            Some(marker) => *marker == self::marker(instance),
            None => self.owner == names.owner,
        }
    }
}

fn role_exists(admin: &Connection, role: &str) -> Result<bool> {
    Ok(!admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])?
        .is_empty())
}

/// Adds what the plugin was doing to a failure's sentence.
fn doing(what: String) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Failed(sentence) => Error::failed(format!("{what}: {sentence}")),
        other => other,
    }
}

/// Creates the owner role and the database, or finishes what an earlier
/// create of the instance started (`existing`: its database was there).
fn provision(
    settings: &Settings,
    instance: &str,
    names: &Names,
    limit: u32,
    existing: bool,
) -> Result<()> {
    let admin = &settings.admin;
    let database = sql::quote_identifier(&names.database);
    let owner = sql::quote_identifier(&names.owner);
    let made = (|| -> Result<()> {
        if !role_exists(admin, &names.owner)? {
            admin.execute(&format!("CREATE ROLE {owner} NOLOGIN"), &[])?;
        }
        if !existing {
            admin.execute(
                &format!("CREATE DATABASE {database} OWNER {owner} CONNECTION LIMIT {limit}"),
                &[],
            )?;
        } else {
            admin.execute(
                &format!("ALTER DATABASE {database} CONNECTION LIMIT {limit}"),
                &[],
            )?;
        }
        admin.execute(
            &format!(
                "COMMENT ON DATABASE {database} IS {}",
                sql::quote_literal(&marker(instance))
            ),
            &[],
        )?;
        // Only the instance's own roles may connect to it.
        admin.execute(
            &format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"),
            &[],
        )?;
        Ok(())
    })();
    made.map_err(doing(format!(
        "cannot create the database of instance \"{instance}\""
    )))
}

/// Drops an instance's database and roles, whatever of them exists.
fn teardown(settings: &Settings, instance: &str, names: &Names) -> Result<()> {
    let admin = &settings.admin;
    let dropped = (|| -> Result<()> {
        if let Some(existing) = Database::find(admin, &names.database)? {
            if !existing.belongs_to(instance, names) {
                // Not this instance's: create refused it, so nothing here is ours.
                return Ok(());
            }
            // FORCE ends the sessions still connected to it.
            admin.execute(
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    sql::quote_identifier(&names.database)
                ),
                &[],
            )?;
        }
        let members = admin.query(
            "SELECT member.rolname AS role
               FROM pg_auth_members m
               JOIN pg_roles member ON member.oid = m.member
               JOIN pg_roles owner ON owner.oid = m.roleid
              WHERE owner.rolname = $1",
            &[&names.owner],
        )?;
        for row in &members {
            drop_role(admin, row.require("role")?)?;
        }
        drop_role(admin, &names.owner)?;
        Ok(())
    })();
    dropped.map_err(doing(format!(
        "cannot remove the database of instance \"{instance}\""
    )))
}

/// Ends a role's sessions and drops it, with its privileges and whatever it
/// owns in the admin connection's database. Answers false when it could
/// not be dropped because it owns objects in an instance's database, which
/// the admin connection cannot reach; it then can no longer log in, and
/// goes with the instance's database.
fn drop_role(admin: &Connection, role: &str) -> Result<bool> {
    if !role_exists(admin, role)? {
        return Ok(true);
    }
    let quoted = sql::quote_identifier(role);
    admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        &[&role],
    )?;
    admin.execute(&format!("DROP OWNED BY {quoted}"), &[])?;
    match admin.execute(&format!("DROP ROLE {quoted}"), &[]) {
        Ok(_) => Ok(true),
        // 2BP01: objects in another database depend on it.
        Err(error) if error.code() == Some("2BP01") => {
            admin.execute(&format!("ALTER ROLE {quoted} NOLOGIN"), &[])?;
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// Where bound apps connect: `[services.config]` `host` and `port`.
fn address() -> Result<(String, String)> {
    let host = config::require("host")?;
    let port = config::get("port")?.unwrap_or_else(|| "5432".to_owned());
    Ok((host, port))
}

impl Service for Postgres {
    fn plans(_context: Context) -> Result<Vec<Plan>> {
        Ok(PLANS
            .iter()
            .map(|(name, description, _)| Plan::new(*name, *description))
            .collect())
    }

    fn create(request: CreateRequest) -> Result<Provisioned> {
        let instance = &request.instance;
        let limit = plan_limit(instance.plan.as_deref())?;
        let settings = Settings::read()?;
        let names = settings.names(&instance.name);
        let existing = Database::find(&settings.admin, &names.database).map_err(doing(format!(
            "cannot create the database of instance \"{}\"",
            instance.name
        )))?;
        if let Some(existing) = &existing
            && !existing.belongs_to(&instance.name, &names)
        {
            return Err(Error::conflict(format!(
                "the database name {} of instance \"{}\" is taken on the server by another database; choose another instance name",
                names.database, instance.name
            )));
        }
        if let Err(error) = provision(&settings, &instance.name, &names, limit, existing.is_some())
        {
            // Leave nothing half-made behind; tsuru may try again from scratch.
            return match teardown(&settings, &instance.name, &names) {
                Ok(()) => Err(error),
                Err(Error::Failed(cleanup)) => Err(Error::failed(format!(
                    "{}; removing what was made also failed: {cleanup}",
                    sentence(&error)
                ))),
                Err(_) => Err(error),
            };
        }
        Provisioned::ready().with_data(&names)
    }

    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let limit = plan_limit(request.next.plan.as_deref())?;
        let settings = Settings::read()?;
        let names = settings.names_of(&request.current)?;
        let changed = settings.admin.execute(
            &format!(
                "ALTER DATABASE {} CONNECTION LIMIT {limit}",
                sql::quote_identifier(&names.database)
            ),
            &[],
        );
        changed.map_err(Error::from).map_err(doing(format!(
            "cannot change the plan of instance \"{}\"",
            request.current.name
        )))?;
        Ok(Provisioned::ready())
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        teardown(&settings, &instance.name, &names)
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        Ok(match Database::find(&settings.admin, &names.database) {
            Ok(Some(_)) => Status::Up,
            Ok(None) => Status::Down(format!(
                "the database {} of instance \"{}\" is missing from the server; remove the instance and create it again",
                names.database, instance.name
            )),
            Err(error) => Status::Down(sentence(&error)),
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        let rows = settings.admin.query(
            "SELECT pg_size_pretty(pg_database_size(d.oid)) AS size,
                    d.datconnlimit AS connection_limit,
                    (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS connections
               FROM pg_database d WHERE d.datname = $1",
            &[&names.database],
        )?;
        let row = rows.first().ok_or_else(|| {
            Error::not_found(format!(
                "the database {} of instance \"{}\" is missing from the server; remove the instance and create it again",
                names.database, instance.name
            ))
        })?;
        let (host, port) = address()?;
        Ok(vec![
            InfoItem::new("Plan", instance.plan.as_deref().unwrap_or(DEFAULT_PLAN)),
            InfoItem::new("Database", &names.database),
            InfoItem::new("Address", format!("{host}:{port}")),
            InfoItem::new("Size", row.require("size")?),
            InfoItem::new(
                "Connections",
                format!(
                    "{} of {}",
                    row.require("connections")?,
                    row.require("connection_limit")?
                ),
            ),
        ])
    }

    fn bind_app(instance: Instance, app: AppBinding) -> Result<Env> {
        let settings = Settings::read()?;
        let admin = &settings.admin;
        let names = settings.names_of(&instance)?;
        let (host, port) = address()?;
        let sslmode = config::get("sslmode")?;
        match Database::find(admin, &names.database)? {
            Some(database) if database.belongs_to(&instance.name, &names) => {}
            _ => {
                return Err(Error::failed(format!(
                    "the database {} of instance \"{}\" is missing from the server; remove the instance and create it again",
                    names.database, instance.name
                )));
            }
        }
        let role = app_role(&names.database, &app.app_name);
        let password = password()?;
        let existed = role_exists(admin, &role)?;
        let quoted = sql::quote_identifier(&role);
        let owner = sql::quote_identifier(&names.owner);
        let granted = (|| -> Result<()> {
            let secret = sql::quote_literal(&password);
            if existed {
                // A bind tried again: the role gets a new password, which the app gets.
                admin.execute(
                    &format!("ALTER ROLE {quoted} WITH LOGIN PASSWORD {secret}"),
                    &[],
                )?;
                admin.execute(&format!("GRANT {owner} TO {quoted}"), &[])?;
            } else {
                admin.execute(
                    &format!("CREATE ROLE {quoted} LOGIN PASSWORD {secret} IN ROLE {owner}"),
                    &[],
                )?;
            }
            // Acts as the owner from login, so what the app creates is the instance's.
            admin.execute(
                &format!(
                    "ALTER ROLE {quoted} SET role = {}",
                    sql::quote_literal(&names.owner)
                ),
                &[],
            )?;
            admin.execute(
                &format!(
                    "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {quoted}",
                    sql::quote_identifier(&names.database)
                ),
                &[],
            )?;
            Ok(())
        })();
        if let Err(error) = granted {
            let error = doing(format!(
                "cannot bind app \"{}\" to instance \"{}\"",
                app.app_name, instance.name
            ))(error);
            if !existed && let Err(cleanup) = drop_role(admin, &role) {
                return Err(Error::failed(format!(
                    "{}; dropping its half-made role also failed: {}",
                    sentence(&error),
                    sentence(&cleanup)
                )));
            }
            return Err(error);
        }
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let query = sslmode
            .as_deref()
            .map(|mode| format!("?sslmode={mode}"))
            .unwrap_or_default();
        let mut env = Env::from([
            (
                "DATABASE_URL".to_owned(),
                format!(
                    "postgres://{role}:{password}@{url_host}:{port}/{}{query}",
                    names.database
                ),
            ),
            ("PGHOST".to_owned(), host),
            ("PGPORT".to_owned(), port),
            ("PGDATABASE".to_owned(), names.database),
            ("PGUSER".to_owned(), role),
            ("PGPASSWORD".to_owned(), password),
        ]);
        if let Some(mode) = sslmode {
            env.insert("PGSSLMODE".to_owned(), mode);
        }
        Ok(env)
    }

    fn unbind_app(instance: Instance, app: AppBinding) -> Result<()> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?;
        let role = app_role(&names.database, &app.app_name);
        drop_role(&settings.admin, &role).map_err(doing(format!(
            "cannot unbind app \"{}\" from instance \"{}\"",
            app.app_name, instance.name
        )))?;
        Ok(())
    }
}

/// The sentence of an error, whatever its kind.
fn sentence(error: &Error) -> String {
    match error {
        Error::Invalid(sentence)
        | Error::NotFound(sentence)
        | Error::Conflict(sentence)
        | Error::NotReady(sentence)
        | Error::Failed(sentence) => sentence.clone(),
        Error::Unsupported => "the action is not supported".to_owned(),
        Error::MissingParams(names) => format!("parameters {} are missing", names.join(", ")),
    }
}

orizuru_sdk::export!(Postgres);
