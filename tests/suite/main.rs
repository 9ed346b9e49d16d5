//! The integration tests, linked into one binary: each test binary statically links tract,
//! so one binary instead of six saves minutes of linking and gigabytes of disk in CI.
//! The check that runs on aarch64 too (logits against the x86_64 reference) is a unit test
//! of the library (`src/runtime/reference_logits.rs`), whose tests run there anyway.

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
mod tls;
