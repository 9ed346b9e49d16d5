//! Benchmarking: the cascade against each of its models, measured in one run.
pub mod compare;
pub mod measure;
pub mod plot;
