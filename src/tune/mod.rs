//! Tuning: measuring stages on labelled data and choosing the exit threshold.
pub mod budget;
pub mod calibrate;
pub mod cost;
pub mod curve;
pub mod dataset;
pub mod eval;
pub mod latency;
pub mod profile;
pub mod tradeoff;
