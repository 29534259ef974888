//! A PostgreSQL provisioner, as tsuru's mysqlapi is for MySQL: each
//! instance is a database of its own with a group role, each bound app a
//! login role of its own with a generated password, all on the server the
//! operator declared as the service's `admin` SQL connection.
//!
//! ```toml
//! [[services]]
//! id = "postgres"
//! plugin = "postgres.wasm"
//! password_env = "POSTGRES_SERVICE_PASSWORD"
//! [services.sql.admin]
//! url_env = "PG_ADMIN_URL"     # a role with CREATEDB, CREATEROLE and pg_signal_backend
//! databases = ["tsuru_*"]      # the prefix below, then _*: create grants inside the new database
//! [services.config]
//! host = "pg.internal"         # what bound apps connect to
//! port = "5432"
//! # prefix = "tsuru"           # of every database and role; one per service sharing a server
//! # sslmode = "require"        # added to the apps' DATABASE_URL and PGSSLMODE
//! # connection = "admin"       # the [services.sql.NAME] to use
//! ```
//!
//! The admin role needs no superuser: it owns every instance's database
//! (so no app is its owner, and none can change its connection limit, make
//! it a template or rewrite its comment), creates the roles, and ends their
//! sessions at teardown (`pg_signal_backend`). PostgreSQL 15 or later as
//! it comes; 13 and 14 once `template1`'s `public` schema is the admin's
//! (13) or `pg_database_owner`'s (14) and PUBLIC may not create in it.
//!
//! Each instance has a group role (NOLOGIN) that owns what its apps make:
//! it may connect to the database, create temporary tables, and use and
//! create in its `public` schema, which the admin grants from inside the
//! new database (hence `databases`). An app's login role is NOINHERIT, may
//! connect, and acts as the group from login (`ALTER ROLE .. SET role`), so
//! what one app creates the others read and write, unbinding an app never
//! takes data with it, and an app as itself (`SET ROLE NONE`) may create nothing.
//!
//! Names are readable and never shared: the group and the database take
//! `prefix_instance` (lowercased, `-` as `_`, cut to fit 63 bytes), an
//! app's role `group_app`, each with `_2`, `_3`, ... while the name is
//! taken. Create keeps the instance's names in its data; until it has,
//! and for every app role, the provisioner finds them again by a comment
//! on the role (`COMMENT ON ROLE`), which only a role with CREATEROLE can
//! write, never an app. Teardown drops only what those name, never by role
//! membership (the admin is a member of the roles it made, on 16 and later).
//! Needs PostgreSQL 13 or later (`DROP DATABASE .. WITH (FORCE)`).
//!
//! An instance the earlier version made (its data names an `owner` role
//! that holds the database, apps its members) is removed whole but
//! otherwise not served: its apps could act as the database's owner.

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

/// The longest name PostgreSQL keeps whole (NAMEDATALEN - 1), in bytes.
const MAX_NAME: usize = 63;

/// Names tried for one role before create or bind gives up.
const MAX_TRIES: usize = 100;

/// What the host keeps for an instance: its names, as create made them.
/// The database has its group's name (roles and databases are apart).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Names {
    database: String,
    group: String,
    /// Made by the plugin's earlier version, which kept `owner` where
    /// `group` is: the database is that role's, and the apps' roles are
    /// its members named `DATABASE_a_...`, with no comment to find them by.
    #[serde(skip)]
    earlier: bool,
}

/// The names as either version kept them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Kept {
    Now(Names),
    Earlier { database: String, owner: String },
}

impl From<Kept> for Names {
    fn from(kept: Kept) -> Self {
        match kept {
            Kept::Now(names) => names,
            Kept::Earlier { database, owner } => Names {
                database,
                group: owner,
                earlier: true,
            },
        }
    }
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

    /// The names of an instance: as create kept them, or as the comment on
    /// its group says (a create that stopped halfway kept none); `None`
    /// when it has no group on the server.
    fn names_of(&self, instance: &Instance) -> Result<Option<Names>> {
        if let Some(kept) = instance.data_as::<Kept>()? {
            return Ok(Some(kept.into()));
        }
        Ok(
            find_group(&self.admin, &self.prefix, &instance.name)?.map(|group| Names {
                database: group.clone(),
                group,
                earlier: false,
            }),
        )
    }
}

/// `name` lowercased, `-` as `_`, without what a PostgreSQL name should
/// not hold; `x` when nothing is left.
fn slug(name: &str) -> String {
    let slug: String = slugged(name).collect();
    if slug.is_empty() {
        "x".to_owned()
    } else {
        slug
    }
}

/// What [`slug`] keeps of `name`, before it stands in `x` for nothing.
fn slugged(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars().filter_map(|c| match c {
        'A'..='Z' => Some(c.to_ascii_lowercase()),
        'a'..='z' | '0'..='9' | '_' => Some(c),
        '-' => Some('_'),
        _ => None,
    })
}

/// The names to try for a role, in order: `base`, `base_2`, `base_3`, ...,
/// each cut to fit 63 bytes (`base` is ASCII).
fn candidates(base: &str) -> impl Iterator<Item = String> + '_ {
    (1..=MAX_TRIES).map(move |n| {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("_{n}")
        };
        let kept = base.len().min(MAX_NAME - suffix.len());
        format!("{}{suffix}", &base[..kept])
    })
}

/// A name as a JSON string: quoted and escaped, so that no two names make
/// the same marker.
fn json(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"))
}

/// The comment on an instance's group role, by which a create finds the
/// group an earlier try made.
fn group_marker(prefix: &str, instance: &str) -> String {
    format!(
        "orizuru: the group of tsuru instance {} under prefix {prefix}",
        json(instance)
    )
}

/// How the comment on every app role of `group` starts.
fn app_marker_start(group: &str) -> String {
    format!("orizuru: an app's login in group \"{group}\", app ")
}

/// The comment on the role of `app` in `group`.
fn app_marker(group: &str, app: &str) -> String {
    format!("{}{}", app_marker_start(group), json(app))
}

/// `body` as one anonymous block: one statement, one transaction, so a
/// role never exists without its comment.
fn do_block(body: &str) -> String {
    let mut tag = "$orizuru$".to_owned();
    while body.contains(&tag) {
        tag.insert(tag.len() - 1, '_');
    }
    format!("DO {tag} BEGIN {body} END {tag}")
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

/// Whether a database of that name exists and whether the admin owns it:
/// `Some(true)` is one create made (no other role can give the admin a
/// database), `Some(false)` someone else's.
fn database_owned(admin: &Connection, name: &str) -> Result<Option<bool>> {
    let rows = admin.query(
        "SELECT (datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user))::text AS ours
           FROM pg_database WHERE datname = $1",
        &[&name],
    )?;
    rows.first()
        .map(|row| row.parse::<bool>("ours").map(|ours| ours.unwrap_or(false)))
        .transpose()
}

fn role_exists(admin: &Connection, role: &str) -> Result<bool> {
    Ok(!admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])?
        .is_empty())
}

/// The role whose comment is `marker`, never the admin's own.
fn role_marked(admin: &Connection, marker: &str) -> Result<Option<String>> {
    let rows = admin.query(
        "SELECT rolname::text AS name FROM pg_roles
          WHERE shobj_description(oid, 'pg_authid') = $1
            AND rolname <> current_user AND rolname <> session_user
          ORDER BY rolname LIMIT 1",
        &[&marker],
    )?;
    rows.first()
        .map(|row| row.require("name").map(str::to_owned))
        .transpose()
}

/// The app roles of `group`, by their comments, never the admin's own.
fn app_roles(admin: &Connection, group: &str) -> Result<Vec<String>> {
    let rows = admin.query(
        "SELECT rolname::text AS name FROM pg_roles
          WHERE starts_with(shobj_description(oid, 'pg_authid'), $1)
            AND rolname <> current_user AND rolname <> session_user
          ORDER BY rolname",
        &[&app_marker_start(group)],
    )?;
    rows.iter()
        .map(|row| row.require("name").map(str::to_owned))
        .collect()
}

fn find_group(admin: &Connection, prefix: &str, instance: &str) -> Result<Option<String>> {
    role_marked(admin, &group_marker(prefix, instance))
}

/// Makes a role under the first free name of `candidates`, running the
/// statements `body` writes for its quoted name in one block with its
/// comment, so the role is found again or never made. `free` says whether
/// a name may be tried.
fn make_role(
    admin: &Connection,
    candidates: impl Iterator<Item = String>,
    free: impl Fn(&str) -> Result<bool>,
    body: impl Fn(&str) -> String,
) -> Result<String> {
    for name in candidates {
        if !free(&name)? {
            continue;
        }
        match admin.execute(&do_block(&body(&sql::quote_identifier(&name))), &[]) {
            Ok(_) => return Ok(name),
            // 42710: another call took the name meanwhile; try the next.
            Err(error) if error.code() == Some("42710") => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::failed(format!(
        "the server has {MAX_TRIES} roles or databases named like this one already; choose another name"
    )))
}

/// Adds what the plugin was doing to a failure's sentence.
fn doing(what: String) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Failed(sentence) => Error::failed(format!("{what}: {sentence}")),
        other => other,
    }
}

/// The group of an instance: the one an earlier create made, or a new one
/// under a name no role or database holds.
fn group_of(settings: &Settings, instance: &str) -> Result<String> {
    let admin = &settings.admin;
    if let Some(group) = find_group(admin, &settings.prefix, instance)? {
        return Ok(group);
    }
    let marker = sql::quote_literal(&group_marker(&settings.prefix, instance));
    make_role(
        admin,
        candidates(&format!("{}_{}", settings.prefix, slug(instance))),
        |name| Ok(!role_exists(admin, name)? && database_owned(admin, name)?.is_none()),
        |group| format!("CREATE ROLE {group} NOLOGIN; COMMENT ON ROLE {group} IS {marker};"),
    )
}

/// Makes the database and gives the group its privileges, or finishes
/// what an earlier create of the instance started.
fn provision(settings: &Settings, instance: &str, names: &Names, limit: u32) -> Result<()> {
    let admin = &settings.admin;
    let database = sql::quote_identifier(&names.database);
    let group = sql::quote_identifier(&names.group);
    match database_owned(admin, &names.database)? {
        None => {
            admin.execute(
                &format!("CREATE DATABASE {database} CONNECTION LIMIT {limit}"),
                &[],
            )?;
        }
        Some(true) => {
            admin.execute(
                &format!("ALTER DATABASE {database} CONNECTION LIMIT {limit}"),
                &[],
            )?;
        }
        Some(false) => {
            return Err(Error::conflict(format!(
                "the database name {} of instance \"{instance}\" was taken on the server by another database meanwhile; create the instance again",
                names.database
            )));
        }
    }
    // Only the instance's own roles may connect to it.
    admin.execute(
        &format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"),
        &[],
    )?;
    admin.execute(
        &format!("GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {group}"),
        &[],
    )?;
    // The public schema lets only its database's owner create (15 and
    // later): the group gets it from inside the database.
    let inside = admin.database(&names.database);
    let rows = inside.query(
        "SELECT (pg_catalog.has_schema_privilege($1::name, 'public'::text, 'CREATE'::text)
                 AND pg_catalog.has_schema_privilege($1::name, 'public'::text, 'USAGE'::text))::text AS granted",
        &[&names.group],
    )?;
    let granted = rows
        .first()
        .map(|row| row.parse::<bool>("granted"))
        .transpose()?;
    if granted.flatten() != Some(true) {
        inside.execute(
            &format!("GRANT USAGE, CREATE ON SCHEMA public TO {group}"),
            &[],
        )?;
    }
    Ok(())
}

/// Ends a role's sessions, takes back what it was granted on `database`
/// (the admin, not a member, cannot `DROP OWNED BY` it), and drops it.
fn drop_login(admin: &Connection, role: &str, database: &str) -> Result<()> {
    let quoted = sql::quote_identifier(role);
    admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE usename = $1 AND usename <> current_user AND usename <> session_user",
        &[&role],
    )?;
    if role_exists(admin, role)? && database_owned(admin, database)? == Some(true) {
        admin.execute(
            &format!(
                "REVOKE ALL ON DATABASE {} FROM {quoted}",
                sql::quote_identifier(database)
            ),
            &[],
        )?;
    }
    match admin.execute(&format!("DROP ROLE IF EXISTS {quoted}"), &[]) {
        Ok(_) => Ok(()),
        // 2BP01: it still owns or was granted something, somewhere.
        Err(error) if error.code() == Some("2BP01") => Err(Error::failed(format!(
            "role {role} cannot be dropped ({error}); drop or revoke what it holds, then try again"
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Whether a database of that name exists whose owner is `role`.
fn database_of(admin: &Connection, name: &str, role: &str) -> Result<bool> {
    Ok(!admin
        .query(
            "SELECT 1 FROM pg_database WHERE datname = $1 AND pg_get_userbyid(datdba) = $2",
            &[&name, &role],
        )?
        .is_empty())
}

/// The app roles of an instance the earlier version made: members of its
/// owner named as it named them (`DATABASE_a_...`), never the admin nor a
/// role that may create roles or databases, which no app role could.
fn earlier_app_roles(admin: &Connection, names: &Names) -> Result<Vec<String>> {
    let rows = admin.query(
        "SELECT r.rolname::text AS name
           FROM pg_auth_members m
           JOIN pg_roles r ON r.oid = m.member
           JOIN pg_roles o ON o.oid = m.roleid
          WHERE o.rolname = $1 AND starts_with(r.rolname, $2)
            AND r.rolname <> current_user AND r.rolname <> session_user
            AND NOT (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb)
          ORDER BY 1",
        &[&names.group, &format!("{}_a_", names.database)],
    )?;
    rows.iter()
        .map(|row| row.require("name").map(str::to_owned))
        .collect()
}

/// The app roles of an instance, as its version finds them.
fn apps_of(admin: &Connection, names: &Names) -> Result<Vec<String>> {
    if names.earlier {
        earlier_app_roles(admin, names)
    } else {
        app_roles(admin, &names.group)
    }
}

/// Drops the database of an instance the earlier version made, which its
/// owner role holds: the admin first becomes a member of that role (a
/// superuser needs not; CREATEROLE may on 15 and older, and on 16 and later
/// where the admin made the role), which goes when the role is dropped.
fn drop_earlier_database(admin: &Connection, names: &Names) -> Result<()> {
    if !database_of(admin, &names.database, &names.group)? {
        return Ok(());
    }
    let member = admin.query(
        "SELECT 1 WHERE pg_has_role(current_user, $1::name, 'USAGE')",
        &[&names.group],
    )?;
    if member.is_empty() {
        admin.execute(
            &format!(
                "GRANT {} TO CURRENT_USER",
                sql::quote_identifier(&names.group)
            ),
            &[],
        )?;
    }
    admin.execute(
        &format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            sql::quote_identifier(&names.database)
        ),
        &[],
    )?;
    Ok(())
}

/// What of an instance is still on the server: its database (when the
/// admin owns it, or the earlier version's owner role), its group, and the
/// roles of its apps.
fn remaining(admin: &Connection, names: &Names) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let database_left = if names.earlier {
        database_of(admin, &names.database, &names.group)?
    } else {
        database_owned(admin, &names.database)? == Some(true)
    };
    if database_left {
        left.push(format!("database {}", names.database));
    }
    if role_exists(admin, &names.group)? {
        left.push(format!("role {}", names.group));
    }
    left.extend(
        apps_of(admin, names)?
            .into_iter()
            .map(|role| format!("role {role}")),
    );
    Ok(left)
}

/// Drops an instance's database and roles, whatever of them exists, and
/// answers Ok only when none is left.
fn teardown(settings: &Settings, instance: &str, names: &Names) -> Result<()> {
    let admin = &settings.admin;
    let mut failures = Vec::new();
    let mut step = |result: Result<()>| {
        if let Err(error) = result {
            failures.push(error.sentence());
        }
    };
    // First the database: what the group or an app owns in it goes with it.
    // FORCE ends the sessions still connected to it.
    step((|| -> Result<()> {
        if names.earlier {
            return drop_earlier_database(admin, names);
        }
        if database_owned(admin, &names.database)? == Some(true) {
            admin.execute(
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    sql::quote_identifier(&names.database)
                ),
                &[],
            )?;
        }
        Ok(())
    })());
    // The apps' roles before the group: on the earlier version's, the
    // apps are found as its members.
    match apps_of(admin, names) {
        Ok(apps) => {
            for app in apps {
                step(drop_login(admin, &app, &names.database));
            }
        }
        Err(error) => step(Err(error)),
    }
    step(drop_login(admin, &names.group, &names.database));
    let left = remaining(admin, names).map_err(doing(format!(
        "cannot tell what is left of instance \"{instance}\""
    )))?;
    if left.is_empty() {
        return Ok(());
    }
    let why = if failures.is_empty() {
        String::new()
    } else {
        format!(" ({})", failures.join("; "))
    };
    Err(Error::failed(format!(
        "instance \"{instance}\" is not fully removed; still on the server: {}{why}; try again, or ask the service's operator to drop them",
        left.join(", ")
    )))
}

/// Where bound apps connect: `[services.config]` `host` and `port`.
fn address() -> Result<(String, String)> {
    let host = config::require("host")?;
    let port = config::get("port")?.unwrap_or_else(|| "5432".to_owned());
    Ok((host, port))
}

/// Why an instance the earlier version made is not served but removed.
fn made_earlier(instance: &str) -> String {
    format!(
        "instance \"{instance}\" was made by an earlier version of this provisioner, whose apps could act as its database's owner; remove the instance (which drops what that version made) and create it again"
    )
}

/// The role the earlier version gave `app` on `database`:
/// `DATABASE_a_SLUG_HASH`, with 12 characters of the app's name and its
/// 32-bit FNV-1a (which is why it could collide, and why it is not used).
fn earlier_app_role(database: &str, app: &str) -> String {
    let slug: String = slugged(app).take(12).collect();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in app.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{database}_a_{slug}_{hash:08x}")
}

fn missing(names: &Names, instance: &str) -> String {
    format!(
        "the database {} of instance \"{instance}\" is missing from the server; remove the instance and create it again",
        names.database
    )
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
        let creating = || {
            format!(
                "cannot create the database of instance \"{}\"",
                instance.name
            )
        };
        let group = group_of(&settings, &instance.name).map_err(doing(creating()))?;
        let names = Names {
            database: group.clone(),
            group,
            earlier: false,
        };
        if let Err(error) =
            provision(&settings, &instance.name, &names, limit).map_err(doing(creating()))
        {
            // Leave nothing half-made behind; tsuru may try again from scratch.
            return match teardown(&settings, &instance.name, &names) {
                Ok(()) => Err(error),
                Err(Error::Failed(cleanup)) => Err(Error::failed(format!(
                    "{}; removing what was made also failed: {cleanup}",
                    error.sentence()
                ))),
                Err(_) => Err(error),
            };
        }
        Provisioned::ready().with_data(&names)
    }

    fn update(request: UpdateRequest) -> Result<Provisioned> {
        let limit = plan_limit(request.next.plan.as_deref())?;
        let settings = Settings::read()?;
        let instance = &request.current.name;
        let names = settings.names_of(&request.current)?.ok_or_else(|| {
            Error::failed(format!(
                "instance \"{instance}\" has no database on the server; remove the instance and create it again"
            ))
        })?;
        if names.earlier {
            return Err(Error::failed(made_earlier(instance)));
        }
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
        match settings.names_of(&instance)? {
            Some(names) => teardown(&settings, &instance.name, &names),
            // Never made, or made by nothing this provisioner can find.
            None => Ok(()),
        }
    }

    fn status(instance: Instance, _context: Context) -> Result<Status> {
        let settings = Settings::read()?;
        let Some(names) = settings.names_of(&instance)? else {
            return Ok(Status::Down(format!(
                "instance \"{}\" has no database on the server; remove the instance and create it again",
                instance.name
            )));
        };
        if names.earlier {
            return Ok(Status::Down(made_earlier(&instance.name)));
        }
        Ok(match database_owned(&settings.admin, &names.database) {
            Ok(Some(true)) => Status::Up,
            Ok(_) => Status::Down(missing(&names, &instance.name)),
            Err(error) => Status::Down(error.sentence()),
        })
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let settings = Settings::read()?;
        let names = settings.names_of(&instance)?.ok_or_else(|| {
            Error::not_found(format!(
                "instance \"{}\" has no database on the server; remove the instance and create it again",
                instance.name
            ))
        })?;
        let rows = settings.admin.query(
            "SELECT pg_size_pretty(pg_database_size(d.oid)) AS size,
                    d.datconnlimit AS connection_limit,
                    (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS connections
               FROM pg_database d WHERE d.datname = $1",
            &[&names.database],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| Error::not_found(missing(&names, &instance.name)))?;
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
        let (host, port) = address()?;
        let sslmode = config::get("sslmode")?;
        let names = settings.names_of(&instance)?;
        let names = match names {
            Some(names) if names.earlier => {
                return Err(Error::failed(made_earlier(&instance.name)));
            }
            Some(names) if database_owned(admin, &names.database)? == Some(true) => names,
            Some(names) => return Err(Error::failed(missing(&names, &instance.name))),
            None => {
                return Err(Error::failed(format!(
                    "instance \"{}\" has no database on the server; remove the instance and create it again",
                    instance.name
                )));
            }
        };
        let password = orizuru_sdk::random::password();
        let marker = app_marker(&names.group, &app.app_name);
        let group_name = sql::quote_literal(&names.group);
        let group = sql::quote_identifier(&names.group);
        let database = sql::quote_identifier(&names.database);
        let secret = sql::quote_literal(&password);
        // Connects as itself (NOINHERIT: the group's privileges are not its
        // own), acts as the group from login.
        let grants = |role: &str| {
            format!(
                "GRANT {group} TO {role}; ALTER ROLE {role} SET role = {group_name}; GRANT CONNECT ON DATABASE {database} TO {role};"
            )
        };
        let bound = (|| -> Result<String> {
            if let Some(role) = role_marked(admin, &marker)? {
                // A bind tried again: the role gets a new password, which the app gets.
                let quoted = sql::quote_identifier(&role);
                admin.execute(
                    &do_block(&format!(
                        "ALTER ROLE {quoted} WITH LOGIN NOINHERIT PASSWORD {secret}; {}",
                        grants(&quoted)
                    )),
                    &[],
                )?;
                return Ok(role);
            }
            let comment = sql::quote_literal(&marker);
            make_role(
                admin,
                candidates(&format!("{}_{}", names.group, slug(&app.app_name))),
                |name| Ok(!role_exists(admin, name)?),
                |role| {
                    format!(
                        "CREATE ROLE {role} LOGIN NOINHERIT PASSWORD {secret}; COMMENT ON ROLE {role} IS {comment}; {}",
                        grants(role)
                    )
                },
            )
        })();
        let role = bound.map_err(doing(format!(
            "cannot bind app \"{}\" to instance \"{}\"",
            app.app_name, instance.name
        )))?;
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
        let admin = &settings.admin;
        let unbinding = || {
            format!(
                "cannot unbind app \"{}\" from instance \"{}\"",
                app.app_name, instance.name
            )
        };
        let Some(names) = settings.names_of(&instance).map_err(doing(unbinding()))? else {
            return Ok(());
        };
        let role = if names.earlier {
            let role = earlier_app_role(&names.database, &app.app_name);
            earlier_app_roles(admin, &names)
                .map_err(doing(unbinding()))?
                .contains(&role)
                .then_some(role)
        } else {
            let marker = app_marker(&names.group, &app.app_name);
            role_marked(admin, &marker).map_err(doing(unbinding()))?
        };
        let Some(role) = role else {
            return Ok(());
        };
        drop_login(admin, &role, &names.database).map_err(doing(unbinding()))?;
        if role_exists(admin, &role)? {
            return Err(Error::failed(format!(
                "{}: its role {role} is still on the server; try again",
                unbinding()
            )));
        }
        Ok(())
    }
}

orizuru_sdk::export!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_fit_and_differ_by_suffix() {
        assert_eq!(slug("Orders-DB"), "orders_db");
        assert_eq!(slug("ção"), "o");
        assert_eq!(slug("é"), "x");
        let tried: Vec<String> = candidates("tsuru_orders_db").take(3).collect();
        assert_eq!(
            tried,
            ["tsuru_orders_db", "tsuru_orders_db_2", "tsuru_orders_db_3"]
        );
        let long = "a".repeat(80);
        for name in candidates(&long).take(12) {
            assert!(name.len() <= MAX_NAME, "{name}");
        }
        let tried: Vec<String> = candidates(&long).take(12).collect();
        let mut unique = tried.clone();
        unique.dedup();
        assert_eq!(unique.len(), tried.len(), "{tried:?}");
        assert_eq!(candidates("x").count(), MAX_TRIES);
    }

    #[test]
    fn markers_tell_every_name_apart() {
        // Names that slug alike, and names that would run into the marker's own words.
        assert_ne!(
            group_marker("tsuru", "My-DB"),
            group_marker("tsuru", "my_db")
        );
        assert_ne!(group_marker("tsuru", "a"), group_marker("tsurua", "a"));
        assert_ne!(app_marker("g", "web"), app_marker("g", "web\""));
        assert_eq!(
            app_marker("tsuru_orders", "web"),
            "orizuru: an app's login in group \"tsuru_orders\", app \"web\""
        );
        // One group's sweep never matches another group whose name starts alike.
        assert!(
            !app_marker("tsuru_orders_2", "web").starts_with(&app_marker_start("tsuru_orders"))
        );
        assert!(app_marker("tsuru_orders", "web").starts_with(&app_marker_start("tsuru_orders")));
    }

    #[test]
    fn app_roles_of_the_earlier_version_are_named_as_it_named_them() {
        assert_eq!(
            earlier_app_role("tsuru_a", "My-Web"),
            format!("tsuru_a_a_my_web_{:08x}", {
                let mut hash: u32 = 0x811c_9dc5;
                for byte in b"My-Web" {
                    hash ^= u32::from(*byte);
                    hash = hash.wrapping_mul(0x0100_0193);
                }
                hash
            })
        );
        assert!(earlier_app_role("d", "a-very-long-app-name").starts_with("d_a_a_very_long__"));
        assert!(earlier_app_role("d", "é").starts_with("d_a__"));
        assert!(earlier_app_role("d", "x!").starts_with("d_a_x_"));
    }

    #[test]
    fn a_block_is_quoted_by_a_tag_its_body_lacks() {
        assert_eq!(
            do_block("SELECT 1;"),
            "DO $orizuru$ BEGIN SELECT 1; END $orizuru$"
        );
        assert_eq!(
            do_block("SELECT '$orizuru$';"),
            "DO $orizuru_$ BEGIN SELECT '$orizuru$'; END $orizuru_$"
        );
    }

    #[test]
    fn names_kept_by_the_earlier_version_still_read() {
        let earlier: Names =
            serde_json::from_str::<Kept>(r#"{"database":"tsuru_a","owner":"tsuru_a_owner"}"#)
                .expect("the earlier names")
                .into();
        assert_eq!(earlier.group, "tsuru_a_owner");
        assert!(earlier.earlier);
        let now: Names =
            serde_json::from_str::<Kept>(r#"{"database":"tsuru_a","group":"tsuru_a"}"#)
                .expect("the names")
                .into();
        assert!(!now.earlier);
        assert_eq!(
            serde_json::to_string(&now).expect("written"),
            r#"{"database":"tsuru_a","group":"tsuru_a"}"#
        );
    }
}
