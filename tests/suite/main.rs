//! The integration tests, linked into one binary: each test binary statically links tract,
//! so one binary instead of six saves minutes of linking and gigabytes of disk in CI.
//! `tests/arch.rs` stays apart because it alone is also built and run for aarch64.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod allocations;
mod bench;
mod calibrate;
mod cascade;
mod cli;
mod decode;
mod embed;
mod full_set;
mod mlserver;
mod models;
mod remote;
mod remote_cascade;
mod search;
mod stream;
