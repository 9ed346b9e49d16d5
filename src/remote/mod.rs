//! A stage on a server: the Open Inference Protocol (KServe v2), which KServe, MLServer,
//! Triton and OpenVINO Model Server speak, so a board can hand its uncertain inputs to a
//! larger model on a server the site already runs. The board preprocesses; only the tensor
//! travels.
//!
//! This is the client and its checks (endpoint, token, timeouts, error bodies); running it
//! as a cascade stage with a local fallback is the next step (see issue 15).

mod endpoint;
mod rest;
mod token;

pub use endpoint::Endpoint;
pub use rest::{ModelMetadata, RestClient, TensorMetadata, Timeouts, BODY_SHOWN};
pub use token::Token;
