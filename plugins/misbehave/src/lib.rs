//! A plugin that breaks every rule, so the host's tests can show that a bad
//! plugin costs its own request and nothing else. What it does wrong on
//! create depends on the instance's name; every other action behaves.

use orizuru_sdk::{AppBinding, CreateRequest, Env, Error, Instance, Provisioned, Result, Service};

struct Misbehave;

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
            "refuse" => Err(Error::invalid(
                "this plugin refuses instances named \"refuse\"",
            )),
            _ => {
                eprintln!("creating {}", request.instance.name);
                Ok(Provisioned::ready())
            }
        }
    }

    fn bind_app(_instance: Instance, _app: AppBinding) -> Result<Env> {
        Ok(Env::from([(
            "MISBEHAVE".to_owned(),
            "behaved this time".to_owned(),
        )]))
    }
}

orizuru_sdk::export!(Misbehave);
