//! What the RabbitMQ provisioner's tests and bench share: the broker's
//! management API as its superuser (guest) sees it, a least-privileged
//! admin made for one run, a host serving `plugins/rabbitmq` with that
//! admin's credentials held by the host, and a guard that deletes whatever
//! a run's prefix names, even after a failure.
//!
//! Every run has a prefix of its own (`orz` and 8 hex digits), so runs on
//! the shared broker never meet.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Server, service};

/// The management API of the machine's broker.
pub const MANAGEMENT: &str = "http://127.0.0.1:15672";
/// Where apps connect (AMQP).
pub const AMQP_PORT: u16 = 5672;
const SUPERUSER: (&str, &str) = ("guest", "guest");

pub use crate::unique_prefix;

/// `text` percent-encoded as one path segment (as the plugin does).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A client of the management API as one user.
#[derive(Clone)]
pub struct Management {
    client: reqwest::Client,
    user: String,
    password: String,
}

impl Management {
    /// As the broker's superuser: for setting up, looking and cleaning up only.
    pub fn superuser() -> Management {
        Management::as_user(SUPERUSER.0, SUPERUSER.1)
    }

    pub fn as_user(user: &str, password: &str) -> Management {
        Management {
            client: reqwest::Client::new(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// `/api/<path>` (segments already encoded): its status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{MANAGEMENT}/api/{path}"))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the management API answers");
        let status = response.status();
        let text = response.text().await.expect("its body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The vhost named `name`, as the API shows it, or `None`.
    pub async fn vhost(&self, name: &str) -> Option<Value> {
        let (status, body) = self
            .call(Method::GET, &format!("vhosts/{}", encode(name)), None)
            .await;
        (status == StatusCode::OK).then_some(body)
    }

    /// The limits of a vhost, as `{"max-connections": n, "max-queues": n}`.
    pub async fn limits(&self, vhost: &str) -> Value {
        let (_, body) = self
            .call(
                Method::GET,
                &format!("vhost-limits/{}", encode(vhost)),
                None,
            )
            .await;
        body.get(0)
            .map(|entry| entry["value"].clone())
            .unwrap_or(Value::Null)
    }

    /// Names of vhosts and users that start with `start`.
    pub async fn names_starting(&self, start: &str) -> (Vec<String>, Vec<String>) {
        let mut found = Vec::new();
        for what in ["vhosts", "users"] {
            let (status, body) = self.call(Method::GET, what, None).await;
            assert_eq!(status, StatusCode::OK, "{what} listed: {body}");
            let mut names: Vec<String> = body
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry["name"].as_str())
                .filter(|name| name.starts_with(start))
                .map(str::to_owned)
                .collect();
            names.sort();
            found.push(names);
        }
        let users = found.pop().unwrap_or_default();
        let vhosts = found.pop().unwrap_or_default();
        (vhosts, users)
    }
}

/// The least-privileged admin the README documents: a user tagged
/// `administrator`, with no permission on any vhost.
pub struct Admin {
    pub user: String,
    pub password: String,
}

impl Admin {
    pub async fn create(prefix: &str) -> Admin {
        let user = format!("{prefix}-admin");
        let password = format!("pw-{}", unique_prefix());
        let (status, body) = Management::superuser()
            .call(
                Method::PUT,
                &format!("users/{}", encode(&user)),
                Some(json!({ "password": password, "tags": "administrator" })),
            )
            .await;
        assert!(status.is_success(), "the admin is made: {status} {body}");
        Admin { user, password }
    }
}

/// The `[[services]]` entry of a provisioner as service `id`: `prefix` for
/// its names, the admin's password in `password_file`, and extra lines in
/// its `[services.http]` table.
pub fn provisioner_service(
    id: &str,
    prefix: &str,
    admin: &Admin,
    password_file: &std::path::Path,
    http_extra: &str,
) -> String {
    service(
        id,
        "rabbitmq",
        &format!(
            "[services.http]\nallow = [\"{MANAGEMENT}\"]\n{http_extra}\n[services.http.auth.\"{MANAGEMENT}\"]\nbasic_user = \"{}\"\nbasic_password_file = \"{}\"\n[services.config]\nmanagement = \"{MANAGEMENT}\"\nhost = \"127.0.0.1\"\nport = \"{AMQP_PORT}\"\nprefix = \"{prefix}\"\n",
            admin.user,
            password_file.display()
        ),
    )
}

/// One run: its prefix, its admin, and the file holding the admin's password.
pub struct Run {
    pub prefix: String,
    pub admin: Admin,
    pub dir: tempfile::TempDir,
    /// Declared last, so it runs after everything else is dropped.
    _cleanup: Cleanup,
}

impl Run {
    pub async fn start() -> Run {
        let prefix = unique_prefix();
        let cleanup = Cleanup(prefix.clone());
        let admin = Admin::create(&prefix).await;
        let dir = tempfile::tempdir().expect("a temporary dir");
        std::fs::write(dir.path().join("admin-password"), &admin.password)
            .expect("the password is written");
        Run {
            prefix,
            admin,
            dir,
            _cleanup: cleanup,
        }
    }

    /// A `[[services]]` entry of the provisioner as `id`, for this run.
    pub fn service(&self, id: &str, http_extra: &str) -> String {
        provisioner_service(
            id,
            &self.prefix,
            &self.admin,
            &self.dir.path().join("admin-password"),
            http_extra,
        )
    }

    /// A host serving the provisioner as service `rabbitmq`.
    pub async fn server(&self) -> Server {
        Server::start(&[self.service("rabbitmq", "")]).await
    }
}

/// Deletes every vhost and user a run's prefix names when dropped, passed or not.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        crate::clean_up_after_test("the run's vhosts and users", async move {
            let api = Management::superuser();
            let (vhosts, users) = api.names_starting(&prefix).await;
            for vhost in vhosts {
                api.call(Method::DELETE, &format!("vhosts/{}", encode(&vhost)), None)
                    .await;
            }
            for user in users {
                api.call(Method::DELETE, &format!("users/{}", encode(&user)), None)
                    .await;
            }
            let left = api.names_starting(&prefix).await;
            assert_eq!(left, (vec![], vec![]), "the run's things are deleted");
        });
    }
}
