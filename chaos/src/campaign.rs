//! The campaign driver: parses the command line, runs seeds (in parallel: each seed is its own
//! single-threaded madsim world), shows progress, prints every failure with its knobs, the
//! violated property, the offending records and the line that replays it, then a summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gregor_core::bugs::Bug;
use gregor_sim::{run_seed, Report, RunOptions, Scenario};

/// The usage text; scenario and bug names come from their lists, so they never go stale.
fn usage() -> String {
    let scenarios: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
    let bugs: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
    format!(
        "usage: gregor-chaos sim --seeds A..B [--scenario NAME|all] [--trace] [--bug NAME]... [--jobs N] [--check-determinism]

  --seeds A..B          seeds A to B-1 (also A..=B, or one seed N)
  --scenario NAME       {} (default: single-broker), or all
  --trace               print each run's event log and broker log (use with one seed)
  --bug NAME            inject a bug: {}
  --jobs N              seeds run in parallel (default: number of CPUs)
  --check-determinism   run every seed twice and compare trace hashes",
        scenarios.join(", "),
        bugs.join(", ")
    )
}

struct Args {
    seeds: Vec<u64>,
    scenarios: Vec<Scenario>,
    trace: bool,
    bugs: Vec<Bug>,
    jobs: usize,
    check_determinism: bool,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    if it.next().as_deref() != Some("sim") {
        return Err("the first argument must be `sim`".into());
    }
    let mut out = Args {
        seeds: Vec::new(),
        scenarios: vec![Scenario::SingleBroker],
        trace: false,
        bugs: Vec::new(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        check_determinism: false,
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--seeds" => out.seeds = parse_seeds(&value("--seeds")?)?,
            "--scenario" => {
                let v = value("--scenario")?;
                out.scenarios = if v == "all" { Scenario::ALL.to_vec() } else { vec![v.parse()?] };
            }
            "--trace" => out.trace = true,
            "--bug" => out.bugs.push(value("--bug")?.parse()?),
            "--jobs" => out.jobs = value("--jobs")?.parse().map_err(|_| "--jobs needs a number".to_string())?,
            "--check-determinism" => out.check_determinism = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if out.seeds.is_empty() {
        return Err("--seeds is required".into());
    }
    out.jobs = out.jobs.max(1);
    if out.trace {
        out.jobs = 1;
    }
    Ok(out)
}

fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let num = |x: &str| x.trim().parse::<u64>().map_err(|_| format!("bad seed {x:?}"));
    if let Some((a, b)) = s.split_once("..=") {
        Ok((num(a)?..=num(b)?).collect())
    } else if let Some((a, b)) = s.split_once("..") {
        Ok((num(a)?..num(b)?).collect())
    } else {
        Ok(vec![num(s)?])
    }
}

pub fn main(args: Vec<String>) -> i32 {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("gregor-chaos: {e}");
            }
            eprintln!("{}", usage());
            return 2;
        }
    };
    let work: Vec<(Scenario, u64)> = args.scenarios.iter().flat_map(|&s| args.seeds.iter().map(move |&seed| (s, seed))).collect();
    let total = work.len();
    let queue = Arc::new(Mutex::new(work.into_iter()));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let reports: Arc<Mutex<Vec<Report>>> = Arc::new(Mutex::new(Vec::new()));
    let nondeterministic: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal() && !args.trace;
    let mut threads = Vec::new();
    for _ in 0..args.jobs.min(total) {
        let (queue, done, failed, reports, nondet) = (queue.clone(), done.clone(), failed.clone(), reports.clone(), nondeterministic.clone());
        let (bugs, trace, check) = (args.bugs.clone(), args.trace, args.check_determinism);
        threads.push(std::thread::spawn(move || loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((scenario, seed)) = next else { return };
            let opts = RunOptions { scenario, trace, bugs: bugs.clone() };
            let report = run_seed(seed, &opts);
            if check {
                let again = run_seed(seed, &RunOptions { trace: false, ..opts });
                if again.trace_hash != report.trace_hash || again.violations != report.violations {
                    nondet.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                        "seed {seed} ({scenario}): trace hash {:016x} then {:016x}",
                        report.trace_hash, again.trace_hash
                    ));
                }
            }
            if !report.passed() {
                failed.fetch_add(1, Ordering::SeqCst);
                print_failure(&report, &bugs);
            } else if trace {
                eprintln!("seed {seed} ({scenario}) passed; trace hash {:016x}", report.trace_hash);
            }
            reports.lock().unwrap_or_else(|e| e.into_inner()).push(report);
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            progress(n, total as u64, failed.load(Ordering::SeqCst), started.elapsed(), tty);
        }));
    }
    for t in threads {
        if t.join().is_err() {
            eprintln!("gregor-chaos: a worker thread panicked");
            return 1;
        }
    }
    if tty {
        eprintln!();
    }
    let reports = reports.lock().unwrap_or_else(|e| e.into_inner());
    let nondet = nondeterministic.lock().unwrap_or_else(|e| e.into_inner());
    summary(&reports, &nondet, started.elapsed(), &args);
    if failed.load(Ordering::SeqCst) > 0 || !nondet.is_empty() {
        1
    } else {
        0
    }
}

fn progress(done: u64, total: u64, failed: u64, elapsed: Duration, tty: bool) {
    const WIDTH: u64 = 30;
    if tty {
        let filled = (done * WIDTH / total.max(1)) as usize;
        eprint!(
            "\r[{}{}] {done}/{total} seeds, {failed} failed, {:.0} s",
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            elapsed.as_secs_f64()
        );
        let _ = std::io::stderr().flush();
    } else if done == total || done % (total / 10).max(1) == 0 {
        eprintln!("{done}/{total} seeds, {failed} failed, {:.0} s", elapsed.as_secs_f64());
    }
}

fn print_failure(r: &Report, bugs: &[Bug]) {
    let mut out = String::new();
    out.push_str(&format!("\nFAILED seed {} (scenario {}), trace hash {:016x}\n", r.seed, r.scenario, r.trace_hash));
    out.push_str(&format!("configuration drawn from the seed:\n{}\n", r.knobs));
    for v in &r.violations {
        out.push_str(&format!("  violated {v}\n"));
    }
    out.push_str(&format!("replay: {}\n", r.replay_line(bugs)));
    eprint!("{out}");
}

fn summary(reports: &[Report], nondet: &[String], wall: Duration, args: &Args) {
    let mut by_scenario: BTreeMap<String, (u64, Duration, Duration, u64)> = BTreeMap::new();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ops, mut acks, mut sim) = (0u64, 0u64, Duration::ZERO);
    for r in reports {
        let e = by_scenario.entry(r.scenario.to_string()).or_default();
        e.0 += 1;
        e.1 += r.sim_time;
        e.2 += r.wall_time;
        e.3 += u64::from(!r.passed());
        for (k, v) in &r.faults {
            *faults.entry(k.clone()).or_default() += v;
        }
        ops += r.operations;
        acks += r.acks;
        sim += r.sim_time;
    }
    let failed: Vec<u64> = reports.iter().filter(|r| !r.passed()).map(|r| r.seed).collect();
    println!("\n== gregor-chaos summary ==");
    if !args.bugs.is_empty() {
        let names: Vec<String> = args.bugs.iter().map(|b| b.to_string()).collect();
        println!("injected bugs:       {}", names.join(", "));
    }
    println!("seeds run:           {}", reports.len());
    println!("simulated time:      {:.2} h ({:.0} s)", sim.as_secs_f64() / 3600.0, sim.as_secs_f64());
    println!("wall time:           {:.1} s with {} jobs", wall.as_secs_f64(), args.jobs);
    for (s, (n, sim, wall, bad)) in &by_scenario {
        println!(
            "  {s}: {n} seeds, {bad} failed; {:.1} simulated s per wall s per job, {:.0} seeds per minute per job",
            sim.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            *n as f64 * 60.0 / wall.as_secs_f64().max(1e-9)
        );
    }
    println!("faults injected:");
    for (k, v) in &faults {
        println!("  {k:<28} {v}");
    }
    println!("operations checked:  {ops} ({acks} acknowledged records)");
    println!("violations:          {} seeds{}", failed.len(), if failed.is_empty() { String::new() } else { format!(" {failed:?}") });
    if args.check_determinism {
        println!("determinism:         {}", if nondet.is_empty() { "every seed ran twice with equal trace hashes".to_string() } else { format!("{} seeds differ", nondet.len()) });
        for n in nondet {
            println!("  {n}");
        }
    }
}
