//! Liveness: once every fault is healed, the broker serves again within a bound of simulated
//! time: a probe record is acknowledged on every partition and every partition can be read from
//! its log start to its high watermark (a read may stop early only at a bit flip, which a single
//! broker cannot repair).

use super::{CheckContext, Findings, Violation};
use crate::history::HistoryData;

pub fn check(h: &HistoryData, ctx: &CheckContext) -> Option<Violation> {
    let mut f = Findings::new("liveness", "liveness failures after the heal");
    let fr = &h.final_read;
    if fr.served_after.is_none() {
        let missing: Vec<i32> = (0..h.partitions).filter(|p| !fr.records.contains_key(p)).collect();
        f.add(format!("not served within {:?} of the heal: partitions {missing:?} were not probed and read", ctx.liveness_bound));
    }
    for (p, (offset, why)) in &fr.stuck {
        if h.bit_flips.get(p).is_some_and(|&flip| flip <= *offset) {
            continue;
        }
        f.add(format!("partition {p}: read stuck at offset {offset}: {why}"));
    }
    for msg in &h.liveness_failures {
        f.add(msg.clone());
    }
    f.into_violation()
}
