//! Integration tests of symphony-core, in one binary to keep link time down.
//!
//! - `sim`: the deterministic simulator every test drives.
//! - `scenarios`: named SPEC 17.4 scenarios with snapshotted transcripts.
//! - `props`: property tests over random event sequences.

mod props;
mod scenarios;
mod sim;
