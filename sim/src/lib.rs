//! The deterministic simulator of Gregor clusters (madsim). Not built yet: its scope is tracked in
//! the simulator issue. This crate intentionally holds no code until then, so nothing here pretends
//! to test anything.
