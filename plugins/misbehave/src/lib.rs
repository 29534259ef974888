//! A plugin that breaks every rule, so the host's tests can show that a bad
//! plugin costs its own request and nothing else. What it does wrong on
//! create depends on the instance's name; on bind-app, on the app's name;
//! on info and proxy, on the instance's name. Otherwise it behaves.

use orizuru_sdk::{
    AppBinding, Context, CreateRequest, Env, Error, InfoItem, Instance, Provisioned, ProxyRequest,
    ProxyResponse, Result, Service,
};

struct Misbehave;

/// The instances this plugin instance answered `info` for, in order: what
/// a plugin instance serving more than one call (`reuse_calls`) remembers,
/// and a fresh one never does.
static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Recursion whose frames live on wasm's own call stack, not in linear
/// memory, so it ends in the engine's stack-overflow trap.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return depth;
    }
    // Not an accumulator the compiler could turn into a loop.
    recurse(depth + 1).wrapping_mul(3) ^ depth
}

impl Service for Misbehave {
    fn create(request: CreateRequest) -> Result<Provisioned> {
        match request.instance.name.as_str() {
            "panic" => panic!("create was asked to panic"),
            "loop" => loop {
                std::hint::black_box(0);
            },
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "deep" => {
                std::hint::black_box(recurse(0));
                Ok(Provisioned::ready())
            }
            "sleep" => {
                // Parks in a WASI host call, where epoch interruption cannot reach.
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Provisioned::ready())
            }
            "chatty" => {
                for line in 0..20_000 {
                    println!("line {line} of a plugin that will not stop talking");
                }
                Ok(Provisioned::ready())
            }
            // Slow, but within a deadline of half a second.
            "slow" => {
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(Provisioned::ready())
            }
            // Reaches for the host's environment, files and network, and
            // refuses with what it found.
            "snoop" => {
                let env: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
                let file = std::fs::read_to_string("/etc/passwd")
                    .map(|text| format!("read {} bytes", text.len()))
                    .unwrap_or_else(|err| format!("refused ({})", err.kind()));
                let network = std::net::TcpStream::connect("127.0.0.1:22")
                    .map(|_| "connected".to_owned())
                    .unwrap_or_else(|err| format!("refused ({})", err.kind()));
                Err(Error::invalid(format!(
                    "env vars: {}; /etc/passwd: {file}; 127.0.0.1:22: {network}",
                    env.len()
                )))
            }
            "refuse" => Err(Error::invalid(
                "this plugin refuses instances named \"refuse\"",
            )),
            _ => {
                eprintln!("creating {}", request.instance.name);
                Ok(Provisioned::ready())
            }
        }
    }

    fn bind_app(_instance: Instance, app: AppBinding) -> Result<Env> {
        match app.app_name.as_str() {
            // More env vars than a host allows by default.
            "many-env" => Ok((0..500)
                .map(|n| (format!("VAR_{n}"), "x".to_owned()))
                .collect()),
            // More bytes of env than a host allows by default.
            "fat-env" => Ok(Env::from([("FAT".to_owned(), "x".repeat(100 * 1024))])),
            _ => Ok(Env::from([(
                "MISBEHAVE".to_owned(),
                "behaved this time".to_owned(),
            )])),
        }
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        if instance.name.starts_with("seen") {
            let mut seen = SEEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.push(instance.name);
            return Ok(vec![InfoItem::new("Seen", seen.join(","))]);
        }
        let items = if instance.name == "big-info" { 1000 } else { 1 };
        Ok((0..items)
            .map(|n| InfoItem::new(format!("item {n}"), n))
            .collect())
    }

    fn proxy(instance: Option<Instance>, _request: ProxyRequest) -> Result<ProxyResponse> {
        let big = instance.is_some_and(|instance| instance.name == "big-body");
        let size = if big { 2 << 20 } else { 16 };
        Ok(ProxyResponse::new(200, vec![b'x'; size]))
    }
}

orizuru_sdk::export!(Misbehave);
