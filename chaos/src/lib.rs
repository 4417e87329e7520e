//! Chaos campaigns (simulator swarms and real-process faults). Not built yet: it arrives with the
//! simulator. This crate intentionally holds no code until then.
