//! Prometheus' text exposition format (version 0.0.4): `# HELP` and `# TYPE` once per metric
//! family, then its samples, label values escaped.
//!
//! Guarantees: every family is declared before its samples and at most once per page (a
//! second declaration is a programming error, asserted), and label values are escaped so any
//! topic, group or API name yields a page that parses.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Histogram;

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page being written.
#[derive(Default)]
pub struct Page {
    out: String,
    declared: BTreeSet<&'static str>,
}

fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Page {
    /// Declares the family `name` (for a counter, its name ends in `_total`).
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        assert!(self.declared.insert(name), "metric family {name} declared twice");
        debug_assert!(!matches!(kind, Kind::Counter) || name.ends_with("_total"), "counter {name} must end in _total");
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of `name` (a declared family, or its `_bucket`/`_sum`/`_count`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &'static str, kind: Kind, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram (of a declared histogram family) with `labels`.
    pub fn histogram(&mut self, name: &'static str, labels: &[(&str, &str)], h: &Histogram) {
        let (buckets, sum_us, count) = h.snapshot();
        for (bound, n) in buckets {
            let le = match bound {
                Some(us) => seconds(us),
                None => "+Inf".to_string(),
            };
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &l, n);
        }
        self.sample(&format!("{name}_sum"), labels, seconds(sum_us));
        self.sample(&format!("{name}_count"), labels, count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Microseconds as seconds, exactly (no float rounding in the page).
fn seconds(us: u64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        format!("{s}")
    } else {
        let f = format!("{frac:06}");
        format!("{s}.{}", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_declares_then_samples_and_escapes_labels() {
        let mut p = Page::default();
        p.family("x_total", Kind::Counter, "Things.");
        p.sample("x_total", &[("topic", "a\"b\\c\nd")], 3);
        p.single("y", Kind::Gauge, "A level.", -1);
        let text = p.finish();
        assert_eq!(text, "# HELP x_total Things.\n# TYPE x_total counter\nx_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n# HELP y A level.\n# TYPE y gauge\ny -1\n");
    }

    #[test]
    fn histograms_print_cumulative_buckets_in_seconds() {
        let h = Histogram::default();
        h.observe_us(700);
        h.observe_us(2_000_000);
        let mut p = Page::default();
        p.family("t_seconds", Kind::Histogram, "Time.");
        p.histogram("t_seconds", &[("request", "Produce")], &h);
        let text = p.finish();
        assert!(text.contains("t_seconds_bucket{request=\"Produce\",le=\"0.0005\"} 0\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{request=\"Produce\",le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{request=\"Produce\",le=\"2.5\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{request=\"Produce\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_sum{request=\"Produce\"} 2.0007\n"), "{text}");
        assert!(text.contains("t_seconds_count{request=\"Produce\"} 2\n"), "{text}");
    }

    #[test]
    #[should_panic(expected = "declared twice")]
    fn a_family_cannot_be_declared_twice() {
        let mut p = Page::default();
        p.single("y", Kind::Gauge, "A level.", 1);
        p.single("y", Kind::Gauge, "A level.", 2);
    }
}
