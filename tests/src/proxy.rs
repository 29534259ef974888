//! A TCP proxy a test controls, between hosts and the machine's
//! PostgreSQL: [`Proxy::cut`] takes the server away from everyone connected
//! through it (open connections closed, new ones accepted and closed at
//! once, the port kept), [`Proxy::restore`] gives it back. The real server
//! is never touched.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A proxy listening on `127.0.0.1:0`, forwarding to one address.
pub struct Proxy {
    /// Where it listens.
    pub address: SocketAddr,
    /// Where it forwards to.
    pub target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accepting: JoinHandle<()>,
}

/// Both under one lock, so that no connection slips through a cut.
#[derive(Default)]
struct Shared {
    cut: bool,
    /// The tasks forwarding open connections.
    open: Vec<AbortHandle>,
}

impl Proxy {
    /// Starts a proxy to the server of this PostgreSQL URL
    /// (`postgres://USER@HOST:PORT/DATABASE`).
    pub async fn to_url(url: &str) -> Proxy {
        let authority = host_port(url);
        let target = tokio::net::lookup_host(authority)
            .await
            .unwrap_or_else(|err| panic!("cannot resolve {authority} of {url}: {err}"))
            .next()
            .unwrap_or_else(|| panic!("{authority} of {url} resolves to no address"));
        Self::start(target).await
    }

    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port for the proxy");
        let address = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accepting = tokio::spawn(accept(listener, target, shared.clone()));
        Proxy {
            address,
            target,
            shared,
            accepting,
        }
    }

    /// `url` with its host and port replaced by this proxy's, so that a
    /// client of it connects through the proxy.
    pub fn url(&self, url: &str) -> String {
        url.replacen(host_port(url), &self.address.to_string(), 1)
    }

    /// Closes every open connection and refuses new ones (each is accepted
    /// and closed at once) until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut shared = self.shared();
        shared.cut = true;
        for connection in shared.open.drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.shared().cut = false;
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.shared().cut
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// `HOST:PORT` of a URL: after `scheme://` and any `user@`, before the path.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port)
}

async fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Mutex<Shared>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if shared.cut {
            // Accepted and closed: the client sees its connection end at once.
            drop(client);
            continue;
        }
        let forwarding = tokio::spawn(forward(client, target));
        shared.open.retain(|connection| !connection.is_finished());
        shared.open.push(forwarding.abort_handle());
    }
}

/// Copies both ways until either side closes; a server that cannot be
/// reached closes the client.
async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn the_host_and_port_are_found_with_or_without_a_user() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/db?sslmode=disable"),
            "127.0.0.1:5432"
        );
        assert_eq!(
            host_port("postgres://u:p@ss@localhost:5433/db"),
            "localhost:5433"
        );
        assert_eq!(host_port("postgres://127.0.0.1:5432"), "127.0.0.1:5432");
    }
}
