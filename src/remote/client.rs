//! One protocol, its bindings: what a remote stage needs from a server, whichever way the
//! Open Inference Protocol is carried to it.

use crate::error::Result;
use crate::remote::{Access, Binding, Endpoint, GrpcClient, ModelMetadata, RestClient};

/// A client for one model on one server, over the binding its endpoint names.
#[derive(Debug, Clone)]
pub enum Client {
    /// `http(s)://HOST:PORT/v2/models/NAME`: v2 JSON over HTTP/1.1.
    Rest(RestClient),
    /// `grpc(s)://HOST:PORT/NAME`: v2 protobuf over HTTP/2, the tensor as raw bytes.
    Grpc(GrpcClient),
}

impl Client {
    /// A client for `endpoint`, over the binding its scheme names.
    pub fn new(endpoint: Endpoint, access: &Access) -> Result<Client> {
        Ok(match endpoint.binding() {
            Binding::Rest => Client::Rest(RestClient::new(endpoint, access)),
            Binding::Grpc => Client::Grpc(GrpcClient::new(endpoint, access)?),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Client::Rest(c) => c.endpoint(),
            Client::Grpc(c) => c.endpoint(),
        }
    }

    /// Ok when the server says the model is ready.
    pub fn ready(&self) -> Result<()> {
        match self {
            Client::Rest(c) => c.ready(),
            Client::Grpc(c) => c.ready(),
        }
    }

    /// The model's declared inputs and outputs.
    pub fn metadata(&self) -> Result<ModelMetadata> {
        match self {
            Client::Rest(c) => c.metadata(),
            Client::Grpc(c) => c.metadata(),
        }
    }

    /// One FP32 input tensor in; the first output's values out.
    pub fn infer(&self, input: &str, shape: &[usize], data: &[f32]) -> Result<Vec<f32>> {
        match self {
            Client::Rest(c) => c.infer(input, shape, data),
            Client::Grpc(c) => c.infer(input, shape, data),
        }
    }
}

impl From<RestClient> for Client {
    fn from(c: RestClient) -> Client {
        Client::Rest(c)
    }
}

impl From<GrpcClient> for Client {
    fn from(c: GrpcClient) -> Client {
        Client::Grpc(c)
    }
}
