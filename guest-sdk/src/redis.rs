//! Commands on the Redis connections the service's operator declared
//! (`[services.redis.NAME]`). A plugin names a connection; the host holds
//! its URL and password, and the plugin never sees them.
//!
//! Needs a `[services.redis.NAME]` table in the service's `[[services]]`
//! entry: a plugin that calls these functions is refused at load without
//! one. The interface is its own WIT package, `orizuru:redis@0.1.0`, which
//! a plugin imports beside its service's world.
//!
//! ```no_run
//! use orizuru_sdk::redis::Connection;
//!
//! # fn f() -> orizuru_sdk::Result<()> {
//! let admin = Connection::named("admin");
//! admin.cmd("SET").arg("greeting").arg("hello").arg("NX").run()?;
//! let greeting = admin.cmd("GET").arg("greeting").run()?;
//! assert_eq!(greeting.text()?, Some("hello"));
//!
//! // Replies nest: SCAN answers a cursor and a list of keys.
//! let scanned = admin.command(&["SCAN", "0", "MATCH", "orders:*", "COUNT", "100"])?;
//! let [cursor, keys] = scanned.array()?[..] else {
//!     return Err(orizuru_sdk::Error::failed("SCAN answered something else"));
//! };
//! let cursor = cursor.text()?;
//! for key in keys.array()? {
//!     println!("{:?}", key.bytes()?);
//! }
//! # let _ = cursor;
//! # Ok(()) }
//! ```
//!
//! Every call runs one command on a connection of the service's pool:
//! nothing carries over to the next call, so the host refuses the commands
//! that would change a connection for the next one (`MULTI`, `WATCH`,
//! `SUBSCRIBE`, `MONITOR`, `SELECT`, `AUTH`, `HELLO`, `CLIENT SETNAME`, ...)
//! with [`ErrorKind::Refused`].
//!
//! An [`Error`] says what went wrong in a sentence and turns into the SDK's
//! [`crate::Error`] with `?`; look at [`Error::code`] to handle a refusal
//! the server gave (`NOPERM`, `WRONGTYPE`).

use std::fmt;

mod bindings {
    // The redis package's own world, generated beside the service's: the
    // component's type then imports both packages.
    wit_bindgen::generate!({
        path: "wit/redis_v0.1.0",
        world: "redis",
        generate_all,
    });
}

use bindings::orizuru::redis::client as wit;

/// Why a command gave no reply.
pub use wit::RedisError as ErrorKind;

/// A connection the operator declared as `[services.redis.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    name: String,
}

impl Connection {
    /// The connection declared as `[services.redis.<name>]`. Nothing is
    /// checked until a command runs.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command to build argument by argument: `cmd("SET").arg(key).arg(value).run()`.
    pub fn cmd(&self, name: &str) -> Command<'_> {
        Command {
            connection: self,
            args: vec![name.as_bytes().to_vec()],
        }
    }

    /// Runs one command: `args[0]` is its name.
    pub fn command<A: ToArg>(&self, args: &[A]) -> Result<Reply, Error> {
        self.run(args.iter().map(ToArg::to_arg).collect())
    }

    fn run(&self, args: Vec<Vec<u8>>) -> Result<Reply, Error> {
        wit::command(&self.name, &args)
            .map(|reply| Reply { nodes: reply.nodes })
            .map_err(|kind| Error {
                connection: self.name.clone(),
                kind,
            })
    }
}

/// A command being built; [`Command::run`] sends it.
#[derive(Debug, Clone)]
pub struct Command<'a> {
    connection: &'a Connection,
    args: Vec<Vec<u8>>,
}

impl Command<'_> {
    /// Adds an argument, sent byte for byte.
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.args.push(arg.to_arg());
        self
    }

    pub fn run(self) -> Result<Reply, Error> {
        self.connection.run(self.args)
    }
}

/// An argument of a command, as the bytes Redis receives.
pub trait ToArg {
    fn to_arg(&self) -> Vec<u8>;
}

impl ToArg for str {
    fn to_arg(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl ToArg for String {
    fn to_arg(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl ToArg for [u8] {
    fn to_arg(&self) -> Vec<u8> {
        self.to_vec()
    }
}

impl ToArg for Vec<u8> {
    fn to_arg(&self) -> Vec<u8> {
        self.clone()
    }
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Vec<u8> {
        (**self).to_arg()
    }
}

macro_rules! to_arg_by_display {
    ($($ty:ty),*) => {
        $(impl ToArg for $ty {
            fn to_arg(&self) -> Vec<u8> {
                self.to_string().into_bytes()
            }
        })*
    };
}

to_arg_by_display!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
);

/// A command's reply. Read it with the accessors of its top [`Value`]
/// ([`Reply::text`], [`Reply::integer`], [`Reply::array`], ...).
#[derive(Debug, Clone)]
pub struct Reply {
    nodes: Vec<wit::Node>,
}

impl Reply {
    /// The reply's top value.
    pub fn value(&self) -> Value<'_> {
        Value {
            nodes: &self.nodes,
            at: 0,
        }
    }

    pub fn is_nil(&self) -> bool {
        self.value().is_nil()
    }

    pub fn integer(&self) -> crate::Result<i64> {
        self.value().integer()
    }

    pub fn bytes(&self) -> crate::Result<Option<&[u8]>> {
        self.value().bytes()
    }

    pub fn text(&self) -> crate::Result<Option<&str>> {
        self.value().text()
    }

    pub fn array(&self) -> crate::Result<Vec<Value<'_>>> {
        self.value().array()
    }
}

/// One value of a reply: nil, an integer, a bulk or simple string, an array
/// of values, or an error inside an array.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    nodes: &'a [wit::Node],
    at: usize,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node() {
            Some(wit::Node::Nil) | None => f.write_str("nil"),
            Some(wit::Node::Integer(n)) => write!(f, "{n}"),
            Some(wit::Node::Bulk(bytes)) => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
            Some(wit::Node::Status(text)) => write!(f, "+{text}"),
            Some(wit::Node::Error(text)) => write!(f, "-{text}"),
            Some(wit::Node::Array(_)) => f.debug_list().entries(self.elements()).finish(),
        }
    }
}

impl<'a> Value<'a> {
    fn node(&self) -> Option<&'a wit::Node> {
        self.nodes.get(self.at)
    }

    fn elements(&self) -> impl Iterator<Item = Value<'a>> + use<'a> {
        let nodes = self.nodes;
        let indexes: &'a [u32] = match self.node() {
            Some(wit::Node::Array(indexes)) => indexes,
            _ => &[],
        };
        indexes.iter().map(move |index| Value {
            nodes,
            at: *index as usize,
        })
    }

    fn kind(&self) -> &'static str {
        match self.node() {
            Some(wit::Node::Nil) | None => "nil",
            Some(wit::Node::Integer(_)) => "an integer",
            Some(wit::Node::Bulk(_)) => "a bulk string",
            Some(wit::Node::Status(_)) => "a simple string",
            Some(wit::Node::Array(_)) => "an array",
            Some(wit::Node::Error(_)) => "an error",
        }
    }

    fn not(&self, wanted: &str) -> crate::Error {
        let error = match self.node() {
            Some(wit::Node::Error(text)) => format!(" ({text})"),
            _ => String::new(),
        };
        crate::Error::failed(format!(
            "Redis answered {}{error} where {wanted} was expected",
            self.kind()
        ))
    }

    /// A null bulk string or array (`GET` of a missing key).
    pub fn is_nil(&self) -> bool {
        matches!(self.node(), Some(wit::Node::Nil) | None)
    }

    /// An integer reply, or a string of digits (`GET` of a counter).
    pub fn integer(&self) -> crate::Result<i64> {
        match self.node() {
            Some(wit::Node::Integer(n)) => Ok(*n),
            Some(wit::Node::Bulk(bytes)) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| self.not("an integer")),
            Some(wit::Node::Status(text)) => text.parse().map_err(|_| self.not("an integer")),
            _ => Err(self.not("an integer")),
        }
    }

    /// A bulk or simple string's bytes; `None` for nil.
    pub fn bytes(&self) -> crate::Result<Option<&'a [u8]>> {
        match self.node() {
            Some(wit::Node::Bulk(bytes)) => Ok(Some(bytes)),
            Some(wit::Node::Status(text)) => Ok(Some(text.as_bytes())),
            Some(wit::Node::Nil) | None => Ok(None),
            _ => Err(self.not("a string")),
        }
    }

    /// A bulk or simple string as UTF-8 text; `None` for nil.
    pub fn text(&self) -> crate::Result<Option<&'a str>> {
        self.bytes()?
            .map(|bytes| {
                std::str::from_utf8(bytes).map_err(|_| {
                    crate::Error::failed("Redis answered a string that is not UTF-8 text where text was expected; read it with bytes()")
                })
            })
            .transpose()
    }

    /// An array's elements, in order.
    pub fn array(&self) -> crate::Result<Vec<Value<'a>>> {
        match self.node() {
            Some(wit::Node::Array(_)) => Ok(self.elements().collect()),
            _ => Err(self.not("an array")),
        }
    }

    /// The text of an error inside an array (`WRONGTYPE ...`), if it is one.
    pub fn error(&self) -> Option<&'a str> {
        match self.node() {
            Some(wit::Node::Error(text)) => Some(text),
            _ => None,
        }
    }
}

/// A command that gave no reply, and on which connection.
#[derive(Debug, Clone)]
pub struct Error {
    connection: String,
    kind: ErrorKind,
}

impl Error {
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The connection the command was for.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// The error's code, when the server refused the command (`NOPERM`,
    /// `WRONGTYPE`, `ERR`).
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Server(text) => text.split(' ').next(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::NoSuchConnection(sentence)
            | ErrorKind::ConnectionFailed(sentence)
            | ErrorKind::Timeout(sentence)
            | ErrorKind::TooLarge(sentence)
            | ErrorKind::Refused(sentence) => f.write_str(sentence),
            ErrorKind::Server(text) => write!(
                f,
                "Redis refused a command on Redis connection \"{}\": {text}",
                self.connection
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::Error {
    fn from(error: Error) -> Self {
        crate::Error::failed(error.to_string())
    }
}
