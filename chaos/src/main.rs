//! `gregor-chaos`: chaos campaigns over the deterministic simulator.
//!
//! ```text
//! gregor-chaos sim --scenario single-broker --seeds 1..2000        # a campaign
//! gregor-chaos sim --scenario single-broker --seeds 42 --trace     # replay one seed
//! gregor-chaos sim --seeds 1..50 --check-determinism               # every seed twice
//! gregor-chaos sim --seeds 1..200 --bug ack-before-fsync           # mutation testing
//! gregor-chaos sim --scenario cluster --seeds 1..500 --jobs 1      # a 3-node KRaft cluster
//! gregor-chaos sim --scenario cluster --seeds 1..100 --bug commit-without-majority
//! gregor-chaos real --nodes 3 --duration 300s --nemesis kill,pause,restart-all --seed 7
//! ```
//!
//! `real` runs the real-process suite ([`real::run`]) in an ordinary build.
//!
//! The simulator exists only in `RUSTFLAGS="--cfg madsim"` builds. An ordinary build of this
//! binary re-runs itself through `cargo run --release` with that flag, in its own target
//! directory (`target-sim`), so the command above works from a fresh checkout.

#[cfg(madsim)]
mod campaign;
// The real-process suite: nothing in it needs the simulator.
mod real;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("real") {
        std::process::exit(real::run::main(args[1..].to_vec()));
    }
    #[cfg(madsim)]
    std::process::exit(campaign::main(args));
    #[cfg(not(madsim))]
    std::process::exit(reexec_under_madsim(args));
}

/// Builds and runs this binary with `--cfg madsim`, forwarding the arguments.
#[cfg(not(madsim))]
fn reexec_under_madsim(args: Vec<String>) -> i32 {
    if args.first().map(String::as_str) != Some("sim") {
        eprintln!("usage: gregor-chaos sim --seeds A..B [--scenario NAME] [--trace] [--bug NAME]... [--jobs N] [--check-determinism]");
        eprintln!("       gregor-chaos real [--nodes N] [--duration 120s] [--nemesis kill,pause,restart,restart-all,kill-all] [--seed S] [--acks all|1] [--unclean]  (--help for all)");
        return 2;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    flags.push_str(" --cfg madsim");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("RUSTFLAGS", flags.trim())
        .env("CARGO_TARGET_DIR", root.join("target-sim"))
        .args(["run", "--quiet", "--release", "-p", "gregor-chaos", "--"])
        .args(&args)
        .status();
    match status {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            eprintln!("gregor-chaos: cannot run cargo to build the simulator: {e}");
            1
        }
    }
}
