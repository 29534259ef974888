//! One command on a pooled connection: refused when it would leave its
//! connection in a state of its own, bounded by its connection's
//! `timeout_ms` and `max_reply_kb`, and its reply turned into the flat tree
//! the WIT carries.

use std::collections::{BTreeMap, VecDeque};

use deadpool_redis::{Connection as Pooled, Pool, PoolError};
use tokio::time::{Instant, timeout_at};

use super::grant::RedisConnection;
use crate::setting::humanize;

pub mod bindings {
    wasmtime::component::bindgen!({
        inline: "package orizuru:host-redis; world redis { import orizuru:redis/client@0.1.0; }",
        path: "../guest-sdk/wit/redis_v0.1.0",
        imports: { default: async },
        additional_derives: [PartialEq],
    });
}

use bindings::orizuru::redis::client::{Node, RedisError, Reply};

/// What a node costs the plugin beyond its bytes: its variant as WIT lays
/// it out on wasm32 (a tag and the largest case, a list or an s64).
const NODE_COST: u64 = 16;
/// What an array's element costs: its index.
const INDEX_COST: u64 = 4;

/// One service's connections, by name, as its plugin's calls use them.
#[derive(Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
}

struct Connection {
    /// The pool, or why the host could not make one.
    pool: Result<Pool, String>,
    timeout: std::time::Duration,
    max_reply_bytes: u64,
}

impl Connections {
    /// Pools for a service's connections; none connects until it is used.
    pub fn of(connections: &BTreeMap<String, RedisConnection>) -> Self {
        let by_name = connections
            .iter()
            .map(|(name, connection)| {
                let pool = deadpool_redis::Config::from_url(connection.url.expose())
                    .builder()
                    .map(|builder| {
                        builder
                            .max_size(connection.max_connections as usize)
                            .runtime(deadpool_redis::Runtime::Tokio1)
                    })
                    .map_err(|err| err.to_string())
                    .and_then(|builder| builder.build().map_err(|err| err.to_string()))
                    .map_err(|err| {
                        format!("the host could not set up Redis connection \"{name}\" ({err}); report it to the host's operator")
                    });
                let connection = Connection {
                    pool,
                    timeout: connection.timeout,
                    max_reply_bytes: connection.max_reply_bytes,
                };
                (name.clone(), connection)
            })
            .collect();
        Self { by_name }
    }

    /// The connection named `name`, or the sentence that says it has none.
    fn get(&self, name: &str) -> Result<&Connection, RedisError> {
        self.by_name.get(name).ok_or_else(|| {
            let declared = if self.by_name.is_empty() {
                "none".to_owned()
            } else {
                self.by_name
                    .keys()
                    .map(|name| format!("\"{name}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            RedisError::NoSuchConnection(format!(
                "the service has no Redis connection \"{name}\" (it has {declared}); its operator must declare it as a [services.redis.{name}] table"
            ))
        })
    }
}

/// Runs one command on connection `name` of the service, within its
/// timeout, and answers its reply within its size.
pub async fn run(
    connections: &Connections,
    name: &str,
    args: Vec<Vec<u8>>,
) -> Result<Reply, RedisError> {
    let connection = connections.get(name)?;
    refuse_session_commands(name, &args)?;
    let pool = connection
        .pool
        .as_ref()
        .map_err(|why| RedisError::ConnectionFailed(why.clone()))?;
    let deadline = Instant::now() + connection.timeout;
    let timeout = humanize(connection.timeout);
    let mut client = match timeout_at(deadline, pool.get()).await {
        Ok(Ok(client)) => client,
        Ok(Err(err)) => return Err(cannot_connect(name, &err)),
        Err(_elapsed) => {
            return Err(RedisError::Timeout(format!(
                "no connection to Redis connection \"{name}\" was free or could be opened within {timeout}; check that the server is up, or raise the connection's max_connections or timeout_ms"
            )));
        }
    };
    let mut command = ::redis::Cmd::new();
    for arg in &args {
        command.arg(arg.as_slice());
    }
    let answer = timeout_at(deadline, command.query_async::<::redis::Value>(&mut client)).await;
    match answer {
        Ok(Ok(value)) => nodes(value, connection.max_reply_bytes).map_err(|bytes| {
            RedisError::TooLarge(format!(
                "the reply to {} on Redis connection \"{name}\" takes more than its max_reply_kb of {} KiB (at least {} KiB); ask for less (SCAN with a COUNT, GETRANGE, LRANGE), or ask the operator to raise max_reply_kb",
                command_name(&args),
                connection.max_reply_bytes / 1024,
                bytes.div_ceil(1024)
            ))
        }),
        Ok(Err(err)) => match server_error(&err) {
            // The server answered: the connection is as good as before.
            Some(text) => Err(RedisError::Server(text)),
            None => {
                discard(client);
                Err(RedisError::ConnectionFailed(format!(
                    "Redis connection \"{name}\" failed while running {} ({}); try again, and check that the server is up",
                    command_name(&args),
                    describe(&err)
                )))
            }
        },
        Err(_elapsed) => {
            // The reply may still come: the connection must not serve again.
            discard(client);
            Err(RedisError::Timeout(format!(
                "{} on Redis connection \"{name}\" ran past its timeout of {timeout}; make it cheaper, or ask the operator to raise the connection's timeout_ms",
                command_name(&args)
            )))
        }
    }
}

/// Closes a connection instead of handing it back to the pool.
fn discard(client: Pooled) {
    drop(Pooled::take(client));
}

/// The command's name for sentences (`SET`, `CLIENT SETNAME`), from its
/// first argument, printable ASCII only.
fn command_name(args: &[Vec<u8>]) -> String {
    let name: String = args
        .first()
        .map(|name| {
            name.iter()
                .take(32)
                .filter(|byte| byte.is_ascii_graphic())
                .map(|byte| char::from(byte.to_ascii_uppercase()))
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() {
        "a command".to_owned()
    } else {
        name
    }
}

/// Refuses what would change the connection for the commands after it: a
/// pooled connection serves other calls next, which must find it as the
/// operator's URL made it. Resetting it instead (`RESET`) would cost a
/// round trip after every command and could still not undo a transaction
/// or a subscription the client library itself is tracking; and none of
/// these commands means anything within one call.
fn refuse_session_commands(name: &str, args: &[Vec<u8>]) -> Result<(), RedisError> {
    let Some(first) = args.first() else {
        return Err(RedisError::Refused(format!(
            "a command on Redis connection \"{name}\" has no arguments; give the command's name first (SET, GET, ...)"
        )));
    };
    let command = String::from_utf8_lossy(first).to_ascii_uppercase();
    let subcommand = args
        .get(1)
        .map(|sub| String::from_utf8_lossy(sub).to_ascii_uppercase())
        .unwrap_or_default();
    let why = match command.as_str() {
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => {
            "a transaction spans several commands, and each command runs on whichever pooled connection is free; do what must be atomic in one command (SET .. NX, GETDEL, a script)"
        }
        "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE"
        | "SUNSUBSCRIBE" | "MONITOR" | "SYNC" | "PSYNC" | "REPLCONF" => {
            "it turns the connection into a stream of messages, which one call cannot read; PUBLISH works"
        }
        "SELECT" | "AUTH" | "HELLO" | "RESET" | "QUIT" | "READONLY" | "READWRITE" => {
            "it changes the connection's database, user or protocol for the calls after this one; the operator chooses them in the connection's URL"
        }
        "CLIENT"
            if matches!(
                subcommand.as_str(),
                "SETNAME" | "SETINFO" | "REPLY" | "TRACKING" | "CACHING" | "NO-EVICT" | "NO-TOUCH"
            ) =>
        {
            "it changes the connection for the calls after this one"
        }
        _ => return Ok(()),
    };
    let shown = if command == "CLIENT" {
        format!("CLIENT {subcommand}")
    } else {
        command
    };
    Err(RedisError::Refused(format!(
        "the host does not run {shown} on Redis connection \"{name}\": {why}"
    )))
}

/// The sentence for a connection the pool could not give.
fn cannot_connect(name: &str, err: &PoolError) -> RedisError {
    match err {
        PoolError::Timeout(_) => RedisError::Timeout(format!(
            "no connection to Redis connection \"{name}\" was free or could be opened in time; check that the server is up, or raise the connection's max_connections or timeout_ms"
        )),
        PoolError::Backend(err) => {
            let cause = describe(err);
            let what_to_do = if server_error(err).is_some()
                || err.kind() == ::redis::ErrorKind::AuthenticationFailed
            {
                "check the user name and password in the connection's URL, and that the user is enabled"
            } else {
                "check that the server is up and that the connection's URL is right"
            };
            RedisError::ConnectionFailed(format!(
                "cannot connect to Redis connection \"{name}\" ({cause}); {what_to_do}"
            ))
        }
        other => RedisError::ConnectionFailed(format!(
            "cannot connect to Redis connection \"{name}\" ({other}); check that the server is up and that the connection's URL is right"
        )),
    }
}

/// The server's error as it wrote it (`WRONGTYPE Operation against ...`),
/// when the server answered one.
fn server_error(err: &::redis::RedisError) -> Option<String> {
    let code = err.code()?;
    Some(match err.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    })
}

/// A client-side failure in words that never carry the URL: the library's
/// own text for I/O and protocol faults, which name no address.
fn describe(err: &::redis::RedisError) -> String {
    match server_error(err) {
        Some(text) => format!("the server answered: {text}"),
        None if err.kind() == ::redis::ErrorKind::AuthenticationFailed => {
            "the server refused the user name and password".to_owned()
        }
        None if err.is_timeout() => "the server did not answer in time".to_owned(),
        None if err.is_connection_refusal() => "the server refused the connection".to_owned(),
        None if err.is_io_error() || err.is_connection_dropped() => {
            "the connection to the server was lost or could not be made".to_owned()
        }
        None => err.to_string(),
    }
}

/// A reply as the WIT carries it: `nodes[0]` is its top, every array's
/// elements come after it. `Err` holds the bytes counted when it passed
/// `max_bytes`.
pub fn nodes(value: ::redis::Value, max_bytes: u64) -> Result<Reply, u64> {
    use ::redis::Value;
    let mut nodes = vec![Node::Nil];
    let mut bytes = NODE_COST;
    let mut queue = VecDeque::from([(value, 0usize)]);
    while let Some((value, at)) = queue.pop_front() {
        let elements = match value {
            Value::Nil => {
                nodes[at] = Node::Nil;
                continue;
            }
            Value::Int(n) => {
                nodes[at] = Node::Integer(n);
                continue;
            }
            Value::Boolean(b) => {
                nodes[at] = Node::Integer(i64::from(b));
                continue;
            }
            Value::BulkString(data) => {
                bytes += data.len() as u64;
                nodes[at] = Node::Bulk(data);
                if bytes > max_bytes {
                    return Err(bytes);
                }
                continue;
            }
            Value::SimpleString(text) => {
                bytes += text.len() as u64;
                nodes[at] = Node::Status(text);
                continue;
            }
            Value::Okay => {
                bytes += 2;
                nodes[at] = Node::Status("OK".to_owned());
                continue;
            }
            Value::ServerError(err) => {
                let text = match err.details() {
                    Some(details) => format!("{} {details}", err.code()),
                    None => err.code().to_owned(),
                };
                bytes += text.len() as u64;
                nodes[at] = Node::Error(text);
                continue;
            }
            // RESP3's types (never sent on the RESP2 connections the host
            // opens, but the library may hand them over) as RESP2 sends them.
            Value::Double(number) => {
                let text = number.to_string().into_bytes();
                bytes += text.len() as u64;
                nodes[at] = Node::Bulk(text);
                continue;
            }
            Value::VerbatimString { text, .. } => {
                bytes += text.len() as u64;
                nodes[at] = Node::Bulk(text.into_bytes());
                continue;
            }
            Value::Array(elements) | Value::Set(elements) => elements,
            Value::Push { data, .. } => data,
            Value::Attribute { data, .. } => {
                queue.push_front((*data, at));
                continue;
            }
            Value::Map(pairs) => pairs
                .into_iter()
                .flat_map(|(key, value)| [key, value])
                .collect(),
            // A type of a later library version: say so rather than guess.
            #[allow(unreachable_patterns)]
            _ => {
                nodes[at] = Node::Error("ERR the host cannot read this reply's type".to_owned());
                continue;
            }
        };
        let first = nodes.len();
        let indexes: Vec<u32> = (first..first + elements.len())
            .map(|index| index as u32)
            .collect();
        bytes += (NODE_COST + INDEX_COST) * elements.len() as u64;
        if bytes > max_bytes {
            return Err(bytes);
        }
        nodes.resize(first + elements.len(), Node::Nil);
        nodes[at] = Node::Array(indexes);
        queue.extend(elements.into_iter().zip(first..));
    }
    if bytes > max_bytes {
        return Err(bytes);
    }
    Ok(Reply { nodes })
}

#[cfg(test)]
mod tests {
    use ::redis::Value;

    use super::*;

    fn reply(value: Value) -> Vec<Node> {
        nodes(value, u64::MAX).expect("within bounds").nodes
    }

    #[test]
    fn replies_nest_as_a_flat_tree() {
        assert_eq!(reply(Value::Nil), [Node::Nil]);
        assert_eq!(reply(Value::Okay), [Node::Status("OK".into())]);
        assert_eq!(reply(Value::Int(-3)), [Node::Integer(-3)]);
        // SCAN: a cursor and a list of keys.
        assert_eq!(
            reply(Value::Array(vec![
                Value::BulkString(b"17".to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"a".to_vec()),
                    Value::BulkString(vec![0, 255]),
                ]),
                Value::Array(vec![]),
            ])),
            [
                Node::Array(vec![1, 2, 3]),
                Node::Bulk(b"17".to_vec()),
                Node::Array(vec![4, 5]),
                Node::Array(vec![]),
                Node::Bulk(b"a".to_vec()),
                Node::Bulk(vec![0, 255]),
            ]
        );
        assert_eq!(
            reply(Value::Map(vec![(
                Value::SimpleString("k".into()),
                Value::Double(1.5)
            )])),
            [
                Node::Array(vec![1, 2]),
                Node::Status("k".into()),
                Node::Bulk(b"1.5".to_vec()),
            ]
        );
    }

    #[test]
    fn a_reply_past_its_size_is_refused() {
        let big = Value::BulkString(vec![b'x'; 2048]);
        assert!(nodes(big.clone(), 4096).is_ok());
        assert_eq!(nodes(big, 1024), Err(2048 + NODE_COST));
        let many = Value::Array(vec![Value::Int(1); 100]);
        assert!(nodes(many, 1024).is_err());
    }

    #[test]
    fn commands_that_change_the_connection_are_refused() {
        let args = |words: &[&str]| -> Vec<Vec<u8>> {
            words.iter().map(|word| word.as_bytes().to_vec()).collect()
        };
        for words in [
            &["multi"][..],
            &["WATCH", "k"],
            &["subscribe", "news"],
            &["MONITOR"],
            &["select", "2"],
            &["AUTH", "u", "p"],
            &["HELLO", "3"],
            &["client", "setname", "x"],
            &["CLIENT", "REPLY", "OFF"],
        ] {
            let Err(RedisError::Refused(why)) = refuse_session_commands("admin", &args(words))
            else {
                panic!("{words:?} was not refused");
            };
            assert!(
                why.starts_with("the host does not run ") && why.contains("\"admin\""),
                "{why}"
            );
        }
        for words in [
            &["GET", "k"][..],
            &["CLIENT", "KILL", "USER", "u"],
            &["ACL", "SETUSER", "u"],
        ] {
            assert!(
                refuse_session_commands("admin", &args(words)).is_ok(),
                "{words:?}"
            );
        }
        assert!(matches!(
            refuse_session_commands("admin", &[]),
            Err(RedisError::Refused(_))
        ));
        assert_eq!(
            refuse_session_commands("admin", &args(&["select", "1"])),
            Err(RedisError::Refused("the host does not run SELECT on Redis connection \"admin\": it changes the connection's database, user or protocol for the calls after this one; the operator chooses them in the connection's URL".into()))
        );
    }
}
