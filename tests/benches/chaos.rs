//! The long chaos run: creates, binds, unbinds and removes through clients
//! that cut their connections at random, a stop of the host in the middle,
//! and then the ledger against the plugin's own books (see
//! `orizuru_tests::chaos`). The suite runs a short one on every build.
//!
//! Run with `cargo bench -p orizuru-tests --bench chaos`;
//! `ORIZURU_CHAOS_OPERATIONS` (default 10,000), `ORIZURU_CHAOS_ROUNDS`
//! (default 3) and `ORIZURU_CHAOS_SEED` change the run.

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let operations = usize::try_from(setting("ORIZURU_CHAOS_OPERATIONS", 10_000)).unwrap_or(10_000);
    let rounds = setting("ORIZURU_CHAOS_ROUNDS", 3);
    let first_seed = setting("ORIZURU_CHAOS_SEED", fastrand::u64(..));
    let mut mismatches = 0;
    for round in 0..rounds {
        let report = runtime.block_on(orizuru_tests::chaos::run(
            operations,
            20,
            50,
            first_seed.wrapping_add(round),
        ));
        println!("round {}: {report}", round + 1);
        for mismatch in &report.mismatches {
            println!("  mismatch: {mismatch}");
        }
        mismatches += report.mismatches.len();
    }
    assert_eq!(mismatches, 0, "the ledger and the plugin disagreed");
}
