//! The run's report: a summary for the terminal and `index.html`, a page that shows, on one
//! time axis, the faults per node, the acknowledged sends per second, the acknowledgement
//! latency (p50, p99, max per 5 s), each partition's ISR size with its leader changes, each node's
//! under-replicated partitions from its Prometheus metrics; then every
//! checker's result with the records involved. The page is self-contained (inline SVG, no
//! scripts).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::checkers::NAMES;
use super::history::{Op, SendOutcome};
use super::run::{Options, Outcome};

/// Counts of the run's operations and faults.
#[derive(Default, Debug)]
pub struct Counts {
    pub acked: usize,
    pub unknown: usize,
    pub failed: usize,
    pub polled: usize,
    pub commits: usize,
    pub final_records: usize,
    pub faults: BTreeMap<String, usize>,
    pub end_ms: u64,
    /// Acknowledgement latencies (ms), sorted.
    pub latencies: Vec<u64>,
}

/// The `q`-quantile (0..=1) of sorted `v`.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub fn counts(o: &Outcome) -> Counts {
    let mut c = Counts::default();
    for op in &o.history.ops {
        c.end_ms = c.end_ms.max(op.time_ms());
        match op {
            Op::Send { outcome: SendOutcome::Acked { .. }, time_ms, sent_ms, .. } => {
                c.acked += 1;
                c.latencies.push(time_ms.saturating_sub(*sent_ms));
            }
            Op::Send { outcome: SendOutcome::Unknown { .. }, .. } => c.unknown += 1,
            Op::Send { outcome: SendOutcome::Failed { .. }, .. } => c.failed += 1,
            Op::Poll { records, .. } => c.polled += records.len(),
            Op::Commit { .. } => c.commits += 1,
            Op::FinalRead { records, .. } => c.final_records += records.len(),
            Op::Fault { kind, phase, .. } if phase == "start" => *c.faults.entry(kind.clone()).or_default() += 1,
            Op::Fault { .. } | Op::PartitionState { .. } | Op::NodeMetrics { .. } => {}
        }
    }
    c.latencies.sort_unstable();
    c
}

/// The terminal summary.
pub fn summary(o: &Outcome) -> String {
    let c = counts(o);
    let mut s = String::new();
    let _ = writeln!(s, "operations: {} sends acknowledged, {} unknown, {} failed; {} records polled; {} commits; final read {} records", c.acked, c.unknown, c.failed, c.polled, c.commits, c.final_records);
    let l = &c.latencies;
    let _ = writeln!(s, "acknowledgement latency: p50 {} ms, p99 {} ms, max {} ms", quantile(l, 0.5), quantile(l, 0.99), quantile(l, 1.0));
    let faults: Vec<String> = c.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(s, "faults: {}", if faults.is_empty() { "none".to_string() } else { faults.join(", ") });
    let _ = writeln!(s, "checkers: {}", NAMES.join(", "));
    if let Some(at) = o.interrupted_at_ms {
        let _ = writeln!(s, "interrupted at {} s: the history up to then was judged", at / 1000);
    }
    if o.violations.is_empty() {
        let _ = writeln!(s, "verdict: no violations");
    } else {
        let _ = writeln!(s, "verdict: {} VIOLATED", o.violations.iter().map(|v| v.checker).collect::<Vec<_>>().join(", "));
        for v in &o.violations {
            let _ = writeln!(s, "  {} ({}): {}", v.checker, v.count, v.detail);
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn color(kind: &str) -> &'static str {
    match kind {
        "kill" => "#d62728",
        "pause" => "#ff7f0e",
        "restart" => "#2ca02c",
        "restart-all" => "#1f77b4",
        "kill-all" => "#9467bd",
        "lagging-kill" => "#8c564b",
        "partition" => "#e377c2",
        "clog" => "#bcbd22",
        "loss" => "#17becf",
        _ => "#7f7f7f",
    }
}

/// The timeline: one row per node with its faults, then acknowledged sends per second.
fn timeline(o: &Outcome, nodes: u32, end_ms: u64) -> String {
    let (width, left, row) = (1000.0_f64, 80.0_f64, 22.0_f64);
    let x = |t: u64| left + (t as f64 / end_ms.max(1) as f64) * (width - left - 10.0);
    let chart_top = row * f64::from(nodes) + 20.0;
    let chart_h = 120.0;
    let mut svg = String::new();
    let partitions = o.history.ops.iter().filter_map(|op| if let Op::PartitionState { partition, .. } = op { Some(*partition) } else { None }).collect::<std::collections::BTreeSet<_>>().len();
    let height = chart_top + 2.0 * (chart_h + 20.0) + 40.0 * partitions as f64 + 104.0;
    let _ = write!(svg, r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#);
    for n in 1..=nodes {
        let y = row * f64::from(n - 1) + 10.0;
        let _ = write!(svg, r##"<text x="4" y="{}">node {n}</text><line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#ccc"/>"##, y + 14.0, width - 10.0, y + 10.0, y + 10.0);
    }
    // Fault bars from each start to its stop.
    let mut open: BTreeMap<(String, Vec<u32>), u64> = BTreeMap::new();
    for op in &o.history.ops {
        let Op::Fault { time_ms, kind, phase, nodes: on } = op else { continue };
        if phase == "start" {
            open.insert((kind.clone(), on.clone()), *time_ms);
        } else if let Some(from) = open.remove(&(kind.clone(), on.clone())) {
            for n in on {
                let y = row * f64::from(n - 1) + 10.0;
                let w = (x(*time_ms) - x(from)).max(2.0);
                let _ = write!(svg, r#"<rect class="fault" data-kind="{kind}" x="{:.1}" y="{y}" width="{w:.1}" height="18" fill="{}"><title>{kind} node {n}: {from}–{time_ms} ms</title></rect>"#, x(from), color(kind));
            }
        }
    }
    // Acknowledged sends per second.
    let mut per_s: BTreeMap<u64, usize> = BTreeMap::new();
    for op in &o.history.ops {
        if let Op::Send { time_ms, outcome: SendOutcome::Acked { .. }, .. } = op {
            *per_s.entry(time_ms / 1000).or_default() += 1;
        }
    }
    let max = per_s.values().copied().max().unwrap_or(1).max(1);
    let _ = write!(svg, r#"<text x="4" y="{}">acks/s</text><text x="4" y="{}">max {max}</text>"#, chart_top + 14.0, chart_top + 30.0);
    for (s, n) in &per_s {
        let h = chart_h * (*n as f64) / (max as f64);
        let w = (x((s + 1) * 1000) - x(s * 1000)).max(1.0);
        let _ = write!(svg, r##"<rect class="acks" x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="#4c78a8"><title>{}s: {n} acknowledged</title></rect>"##, x(s * 1000), chart_top + chart_h - h, s);
    }
    // Acknowledgement latency per 5 s window: p50, p99 and max, on a scale of the largest max.
    let lat_top = chart_top + chart_h + 20.0;
    let mut windows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for op in &o.history.ops {
        if let Op::Send { time_ms, sent_ms, outcome: SendOutcome::Acked { .. }, .. } = op {
            windows.entry(time_ms / 5000).or_default().push(time_ms.saturating_sub(*sent_ms));
        }
    }
    windows.values_mut().for_each(|v| v.sort_unstable());
    let lat_max = windows.values().map(|v| quantile(v, 1.0)).max().unwrap_or(1).max(1);
    let _ = write!(svg, r#"<text x="4" y="{}">ack latency</text><text x="4" y="{}">max {lat_max} ms</text>"#, lat_top + 14.0, lat_top + 30.0);
    for (q, stroke, class) in [(0.5, "#2ca02c", "p50"), (0.99, "#ff7f0e", "p99"), (1.0, "#d62728", "max")] {
        let points: Vec<String> = windows
            .iter()
            .map(|(w, v)| format!("{:.1},{:.1}", x(w * 5000 + 2500), lat_top + chart_h - chart_h * quantile(v, q) as f64 / lat_max as f64))
            .collect();
        let _ = write!(svg, r#"<polyline class="latency-{class}" fill="none" stroke="{stroke}" stroke-width="1.5" points="{}"><title>{class}</title></polyline>"#, points.join(" "));
    }
    let _ = write!(svg, r##"<text x="{}" y="{}" fill="#2ca02c">p50</text><text x="{}" y="{}" fill="#ff7f0e">p99</text><text x="{}" y="{}" fill="#d62728">max</text>"##, left + 5.0, lat_top + 12.0, left + 40.0, lat_top + 12.0, left + 75.0, lat_top + 12.0);
    // ISR size per partition, with a tick where its leader changed.
    let isr_top = lat_top + chart_h + 20.0;
    let mut states: BTreeMap<i32, Vec<(u64, i32, usize)>> = BTreeMap::new();
    for op in &o.history.ops {
        if let Op::PartitionState { time_ms, partition, leader, isr } = op {
            states.entry(*partition).or_default().push((*time_ms, *leader, isr.len()));
        }
    }
    let isr_row = 40.0;
    for (i, (p, samples)) in states.iter().enumerate() {
        let top = isr_top + isr_row * i as f64;
        let y = |n: usize| top + isr_row - 6.0 - (isr_row - 12.0) * n as f64 / f64::from(nodes.max(1));
        let _ = write!(svg, r#"<text x="4" y="{}">p{p} ISR</text>"#, top + 20.0);
        let mut points = Vec::new();
        let mut last_leader = None;
        for &(t, leader, n) in samples {
            if let Some(prev) = last_leader {
                if prev != leader {
                    let _ = write!(svg, r##"<line class="leader-change" x1="{:.1}" x2="{:.1}" y1="{top}" y2="{}" stroke="#555"><title>p{p} leader {prev} → {leader} at {t} ms</title></line>"##, x(t), x(t), top + isr_row - 4.0);
                }
            }
            last_leader = Some(leader);
            points.push(format!("{:.1},{:.1}", x(t), y(n)));
        }
        let _ = write!(svg, r##"<polyline class="isr" fill="none" stroke="#4c78a8" stroke-width="1.5" points="{}"/>"##, points.join(" "));
    }
    // Under-replicated partitions per node, from each node's Prometheus metrics.
    let urp_top = isr_top + isr_row * states.len() as f64 + 10.0;
    let mut urp: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for op in &o.history.ops {
        if let Op::NodeMetrics { time_ms, node, under_replicated, .. } = op {
            urp.entry(*node).or_default().push((*time_ms, *under_replicated));
        }
    }
    let urp_max = urp.values().flatten().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let urp_h = 60.0;
    let _ = write!(svg, r#"<text x="4" y="{}">under-</text><text x="4" y="{}">replicated</text><text x="4" y="{}">max {urp_max}</text>"#, urp_top + 14.0, urp_top + 28.0, urp_top + 42.0);
    for (node, samples) in &urp {
        let points: Vec<String> = samples.iter().map(|(t, n)| format!("{:.1},{:.1}", x(*t), urp_top + urp_h - urp_h * *n as f64 / urp_max as f64)).collect();
        let stroke = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"][(*node as usize) % 5];
        let _ = write!(svg, r#"<polyline class="urp" fill="none" stroke="{stroke}" stroke-width="1.5" points="{}"><title>node {node}: under-replicated partitions it leads</title></polyline>"#, points.join(" "));
    }
    let bottom = urp_top + urp_h + 4.0;
    let _ = write!(svg, r##"<line x1="{left}" x2="{}" y1="{bottom}" y2="{bottom}" stroke="#333"/><text x="{left}" y="{}">0 s</text><text x="{}" y="{}" text-anchor="end">{} s</text></svg>"##, width - 10.0, bottom + 16.0, width - 10.0, bottom + 16.0, end_ms / 1000);
    svg
}

pub fn write(o: &Outcome, opts: &Options) -> std::io::Result<()> {
    let c = counts(o);
    let mut h = String::new();
    let mut verdict = if o.violations.is_empty() { "no violations".to_string() } else { format!("{} violation(s)", o.violations.len()) };
    if let Some(at) = o.interrupted_at_ms {
        verdict.push_str(&format!(" (interrupted at {} s of {} s: the run ended early and what it recorded was judged)", at / 1000, opts.duration / 1000));
    }
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>gregor chaos: seed {seed}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.bad{{color:#b00}}.ok{{color:#070}}pre{{white-space:pre-wrap}}</style></head><body>",
        seed = opts.seed
    );
    let _ = write!(h, "<h1>gregor chaos run, seed {}</h1><p id=\"verdict\" class=\"{}\">{}</p>", opts.seed, if o.violations.is_empty() { "ok" } else { "bad" }, esc(&verdict));
    let _ = write!(h, "<p>Replay: <code>{}</code></p>", esc(&opts.replay_command()));
    let _ = write!(h, "<table><tr><th>nodes</th><td>{}</td></tr><tr><th>acks</th><td>{}{}</td></tr><tr><th>sends acknowledged / unknown / failed</th><td>{} / {} / {}</td></tr><tr><th>records polled</th><td>{}</td></tr><tr><th>commits</th><td>{}</td></tr><tr><th>final read</th><td>{} records</td></tr><tr><th>ack latency p50 / p99 / max</th><td>{} / {} / {} ms</td></tr><tr><th>faults</th><td>{}</td></tr></table>",
        opts.nodes, esc(&opts.acks), if opts.unclean { ", unclean elections" } else { "" }, c.acked, c.unknown, c.failed, c.polled, c.commits, c.final_records,
        quantile(&c.latencies, 0.5), quantile(&c.latencies, 0.99), quantile(&c.latencies, 1.0),
        esc(&c.faults.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")));
    let legend: String = c.faults.keys().map(|k| format!("<span style=\"background:{};color:#fff;padding:1px 6px;margin-right:6px\">{}</span>", color(k), esc(k))).collect();
    let _ = write!(h, "<h2>Timeline</h2><p>{legend}</p>{}", timeline(o, opts.nodes, c.end_ms));
    let _ = write!(h, "<h2>Fault schedule</h2><table><tr><th>at</th><th>for</th><th>fault</th><th>nodes</th></tr>");
    for f in &o.faults {
        let nodes: Vec<String> = f.nodes.iter().map(|n| (n + 1).to_string()).collect();
        let _ = write!(h, "<tr><td>{} ms</td><td>{} ms</td><td>{}</td><td>{}</td></tr>", f.at_ms, f.for_ms, f.kind.name(), nodes.join(", "));
    }
    let _ = write!(h, "</table>");
    let _ = write!(h, "<h2>Checkers</h2><table><tr><th>checker</th><th>result</th></tr>");
    for name in NAMES.iter().copied().chain(std::iter::once("cluster")) {
        match o.violations.iter().find(|v| v.checker == name) {
            Some(v) => {
                let _ = write!(h, "<tr><td>{name}</td><td class=\"bad\">{} instance(s)<pre>{}</pre></td></tr>", v.count, esc(&v.detail));
            }
            None => {
                let _ = write!(h, "<tr><td>{name}</td><td class=\"ok\">ok</td></tr>");
            }
        }
    }
    let _ = write!(h, "</table><p>Every operation: <a href=\"history.jsonl\">history.jsonl</a>. Node logs: nodeN/gregor.log; the workload's: workload.log.</p></body></html>\n");
    std::fs::write(o.dir.join("index.html"), h)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::real::checkers;
    use crate::real::history::tests::{ack, final_read};
    use crate::real::history::History;

    #[test]
    fn the_page_draws_faults_acks_latency_and_isr_and_lists_violations() {
        let fault = |t, phase: &str| Op::Fault { time_ms: t, kind: "kill".into(), phase: phase.into(), nodes: vec![2] };
        let state = |t, leader, isr: &[i32]| Op::PartitionState { time_ms: t, partition: 0, leader, isr: isr.to_vec() };
        let history = History {
            ops: vec![
                state(0, 1, &[1, 2, 3]),
                ack(1, 0, 10, 0),
                fault(1000, "start"),
                state(1500, 2, &[2, 3]),
                Op::NodeMetrics { time_ms: 1500, node: 1, under_replicated: 1, leaders: 1, elections: 1 },
                fault(3000, "stop"),
                ack(1, 0, 4000, 1),
                final_read(0, &[(1, 4000)]),
            ],
        };
        let dir = std::env::temp_dir().join(format!("gregor-chaos-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let violations = checkers::check_all(&history);
        assert!(violations.iter().any(|v| v.checker == "lost-write"), "value 10 at 0/0 was lost: {violations:?}");
        let outcome = Outcome { dir: dir.clone(), history, faults: vec![], violations, interrupted_at_ms: None };
        let opts = Options::try_parse_from(["gregor-chaos real", "--seed", "9"]).unwrap();
        write(&outcome, &opts).unwrap();
        let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(page.contains(r#"id="verdict" class="bad""#));
        assert!(page.contains(r#"<rect class="fault" data-kind="kill""#), "a bar for the kill");
        assert_eq!(page.matches(r#"<rect class="acks""#).count(), 2, "acks in seconds 0 and 4");
        assert!(page.contains(r#"class="latency-p99""#));
        assert!(page.contains(r#"class="leader-change""#) && page.contains("leader 1 → 2 at 1500 ms"));
        assert!(page.contains(r#"<polyline class="isr""#));
        assert!(page.contains(r#"<polyline class="urp""#), "under-replicated partitions from the metrics");
        assert!(page.contains("value 10 acknowledged at 0/0"), "the lost record is named");
        assert!(page.contains("--seed 9"), "the replay command");
    }
}
