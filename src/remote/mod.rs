//! A stage on a server: the Open Inference Protocol (KServe v2), which KServe, MLServer,
//! Triton and OpenVINO Model Server speak, so a board can hand its uncertain inputs to a
//! larger model on a server the site already runs. The board preprocesses; only the tensor
//! travels.
//!
//! - [`Client`]: the protocol over its bindings ([`RestClient`], v2 JSON over HTTP;
//!   [`GrpcClient`], v2 protobuf over HTTP/2 with the tensor as raw bytes): endpoint,
//!   [`Access`] (token, timeouts, [`TrustRoots`]), errors;
//! - [`RemoteStage`]: a model on a server as a stage that falls back instead of failing,
//!   backs off from a failing server and uses it again once it answers.
//!
//! - [`ServedModel`]: a served model as a cascade stage sees it (its input, from a manifest
//!   or the server's metadata; its classes); [`crate::runtime::Stage`] runs one wherever a
//!   stage's [`crate::runtime::Location`] is a URL (`--stage URL`, profiles).

mod client;
mod endpoint;
mod grpc;
mod rest;
mod served;
mod stage;
mod token;
mod trust;

pub use client::Client;
pub use endpoint::{Binding, Endpoint};
pub use grpc::GrpcClient;
pub use rest::{ModelMetadata, RestClient, TensorMetadata, Timeouts, BODY_SHOWN};
pub use served::{Access, ServedModel, TokenSource};
pub use stage::{Outcome, RemoteStage, RemoteStats, Unanswered, FIRST_BACKOFF, MAX_BACKOFF};
pub use token::Token;
pub use trust::TrustRoots;
