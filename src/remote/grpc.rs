//! The Open Inference Protocol's gRPC binding (KServe v2's `inference.GRPCInferenceService`),
//! as KServe, MLServer, Triton and OpenVINO Model Server speak it: model readiness, model
//! metadata, and inference with the tensor as `raw_input_contents` (little-endian FP32
//! bytes: no per-value encoding on either side, MLServer's fast path).
//!
//! tonic carries it over HTTP/2, driven from a small current-thread tokio runtime that the
//! client owns, so the calls block like the REST client's. A connect timeout and an overall
//! one per request bound every call: a dead or slow server costs at most the timeout.
//!
//! Errors are [`Error::Remote`] with `status: None` (gRPC's codes are not HTTP statuses): the
//! code's name and the start of the server's message are in the reason, the message alone in
//! `body`.

use std::sync::Arc;

use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Request, Status};
use tonic_prost::ProstCodec;

use crate::error::{Error, Result};
use crate::remote::rest::shown;
use crate::remote::{Access, Binding, Endpoint, ModelMetadata, TensorMetadata, Timeouts};

/// The v2 messages the client sends and reads, written out from KServe's
/// `grpc_predict_v2.proto` (MLServer's `dataplane.proto`, Triton's `grpc_service.proto`: the
/// same field numbers). Fields the client never uses are left out; prost skips them when
/// they arrive.
mod v2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyResponse {
        #[prost(bool, tag = "1")]
        pub ready: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelMetadataRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelMetadataResponse {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, repeated, tag = "2")]
        pub versions: Vec<String>,
        #[prost(string, tag = "3")]
        pub platform: String,
        #[prost(message, repeated, tag = "4")]
        pub inputs: Vec<TensorMetadata>,
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<TensorMetadata>,
    }

    /// The typed contents of a tensor; only the FP32 ones are read.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferTensorContents {
        #[prost(float, repeated, tag = "6")]
        pub fp32_contents: Vec<f32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferInputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferRequest {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(message, repeated, tag = "5")]
        pub inputs: Vec<InferInputTensor>,
        /// One entry per input, in order, instead of its `contents`.
        #[prost(bytes = "vec", repeated, tag = "7")]
        pub raw_input_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
        #[prost(message, optional, tag = "5")]
        pub contents: Option<InferTensorContents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferResponse {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<InferOutputTensor>,
        /// One entry per output, in order, when the server answers in raw bytes (MLServer
        /// does when the request came in raw bytes).
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub raw_output_contents: Vec<Vec<u8>>,
    }
}

const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";
const MODEL_METADATA: &str = "/inference.GRPCInferenceService/ModelMetadata";
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

/// A client for one model on one server, over gRPC. Clones share the connection.
#[derive(Clone)]
pub struct GrpcClient {
    endpoint: Endpoint,
    timeouts: Timeouts,
    /// `Bearer <token>`, marked sensitive (tonic and `http` then never show it).
    authorization: Option<MetadataValue<Ascii>>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Connects on first use and again after the connection fails.
    channel: Channel,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("endpoint", &self.endpoint)
            .field("timeouts", &self.timeouts)
            .field("token", &self.authorization.as_ref().map(|_| "Token(***)"))
            .finish_non_exhaustive()
    }
}

impl GrpcClient {
    /// A client for `endpoint` (a `grpc://` or `grpcs://` one). Nothing is sent yet: the
    /// connection opens on the first call, so a server that is down now is an error then,
    /// not here. Plain gRPC off this machine is allowed (a closed LAN) but warned about.
    pub fn new(endpoint: Endpoint, access: &Access) -> Result<GrpcClient> {
        let (token, timeouts) = (access.token.clone(), access.timeouts);
        if endpoint.binding() != Binding::Grpc {
            return Err(Error::InvalidArgument(format!(
                "{endpoint} is not a gRPC endpoint (grpc://HOST:PORT/NAME)"
            )));
        }
        if !endpoint.is_tls() && !endpoint.is_loopback() {
            log::warn!(
                "remote stage {endpoint} is gRPC in clear off this machine: inputs{} travel unencrypted; use grpcs:// where the network is not yours",
                if token.is_some() { " and the token" } else { "" }
            );
        }
        let authorization = token
            .map(|t| {
                let mut value = MetadataValue::try_from(t.header()).map_err(|_| {
                    Error::InvalidArgument(
                        "the token is not a valid gRPC metadata value (printable ASCII only)"
                            .into(),
                    )
                })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("the gRPC client's runtime: {e}")))?;
        let invalid = |e: tonic::transport::Error| {
            Error::InvalidArgument(format!("remote stage {endpoint}: {}", chain(&e)))
        };
        let mut builder = tonic::transport::Endpoint::from_shared(endpoint.origin())
            .map_err(invalid)?
            .connect_timeout(timeouts.connect)
            .tcp_nodelay(true);
        if endpoint.is_tls() {
            let tls = match &access.trust {
                Some(roots) => roots.grpc(),
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            builder = builder.tls_config(tls).map_err(invalid)?;
        }
        // The channel's worker task lives on the runtime, and runs whenever a call blocks
        // on it.
        let channel = {
            let _context = runtime.enter();
            builder.connect_lazy()
        };
        Ok(GrpcClient {
            endpoint,
            timeouts,
            authorization,
            runtime: Arc::new(runtime),
            channel,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `ModelReady`: Ok when the server says the model is ready.
    pub fn ready(&self) -> Result<()> {
        let answer: v2::ModelReadyResponse = self.call(
            MODEL_READY,
            v2::ModelReadyRequest {
                name: self.endpoint.model().to_string(),
                version: String::new(),
            },
        )?;
        if answer.ready {
            Ok(())
        } else {
            Err(self.error("the model is not ready".into(), ""))
        }
    }

    /// `ModelMetadata`: the model's declared inputs and outputs.
    pub fn metadata(&self) -> Result<ModelMetadata> {
        let answer: v2::ModelMetadataResponse = self.call(
            MODEL_METADATA,
            v2::ModelMetadataRequest {
                name: self.endpoint.model().to_string(),
                version: String::new(),
            },
        )?;
        let tensors = |ts: Vec<v2::TensorMetadata>| {
            ts.into_iter()
                .map(|t| TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                })
                .collect()
        };
        Ok(ModelMetadata {
            name: answer.name,
            platform: answer.platform,
            inputs: tensors(answer.inputs),
            outputs: tensors(answer.outputs),
        })
    }

    /// `ModelInfer` with one FP32 input tensor as raw little-endian bytes; the first
    /// output's values, from `raw_output_contents` or else the output's `fp32_contents`.
    pub fn infer(&self, input: &str, shape: &[usize], data: &[f32]) -> Result<Vec<f32>> {
        let mut raw = Vec::with_capacity(std::mem::size_of_val(data));
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let request = v2::ModelInferRequest {
            model_name: self.endpoint.model().to_string(),
            inputs: vec![v2::InferInputTensor {
                name: input.to_string(),
                datatype: "FP32".into(),
                shape: shape.iter().map(|&d| d as i64).collect(),
                contents: None,
            }],
            raw_input_contents: vec![raw],
            ..Default::default()
        };
        let answer: v2::ModelInferResponse = self.call(MODEL_INFER, request)?;
        first_output(answer).map_err(|reason| self.error(reason, ""))
    }

    /// One unary call, bounded by the request timeout (connecting included).
    fn call<Q, A>(&self, path: &'static str, message: Q) -> Result<A>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let mut request = Request::new(message);
        // The deadline travels too (`grpc-timeout`), so the server can give up with us.
        request.set_timeout(self.timeouts.request);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        let mut grpc = Grpc::new(self.channel.clone());
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(self.timeouts.request, async {
                grpc.ready().await.map_err(|e| {
                    let mut s = Status::unavailable(chain(&e));
                    s.set_source(Arc::new(e));
                    s
                })?;
                grpc.unary(
                    request,
                    PathAndQuery::from_static(path),
                    ProstCodec::<Q, A>::default(),
                )
                .await
            })
            .await
        });
        match answer {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.status_error(&status)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> Error {
        self.error(
            format!(
                "no answer in time ({} ms)",
                self.timeouts.request.as_millis()
            ),
            "",
        )
    }

    /// A failed call as an error: the server's status with its code named, or why no server
    /// answered.
    fn status_error(&self, status: &Status) -> Error {
        // Statuses the server sent carry no source; those tonic made from a transport
        // failure (refused, reset, TLS, closed) do.
        if let Some(source) = std::error::Error::source(status) {
            // tonic's own deadline (from `grpc-timeout`, the same as ours) may fire first.
            let mut next = Some(source);
            while let Some(e) = next {
                if e.is::<tonic::TimeoutExpired>() {
                    return self.timed_out();
                }
                next = e.source();
            }
            return self.error(
                format!("cannot reach the server: {}", shown(&chain(source))),
                "",
            );
        }
        let message = shown(status.message());
        let mut reason = format!(
            "{} (gRPC {}",
            describe(status.code()),
            code_name(status.code())
        );
        if !message.is_empty() {
            reason.push_str(": ");
            reason.push_str(&message);
        }
        reason.push(')');
        self.error(reason, &message)
    }

    fn error(&self, reason: String, body: &str) -> Error {
        Error::Remote {
            endpoint: self.endpoint.to_string(),
            reason,
            status: None,
            body: body.to_string(),
        }
    }
}

/// The first output's FP32 values, or why the answer has none.
fn first_output(answer: v2::ModelInferResponse) -> std::result::Result<Vec<f32>, String> {
    let first = answer
        .outputs
        .into_iter()
        .next()
        .ok_or("the answer has no output")?;
    if !first.datatype.is_empty() && first.datatype != "FP32" {
        return Err(format!("the output is {}, not FP32 logits", first.datatype));
    }
    let values: Vec<f32> = match (answer.raw_output_contents.first(), first.contents) {
        (Some(raw), _) => {
            if raw.len() % 4 != 0 {
                return Err(format!(
                    "the output's raw contents are {} bytes, not whole FP32 values",
                    raw.len()
                ));
            }
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        (None, Some(contents)) => contents.fp32_contents,
        (None, None) => return Err("the output has no contents".into()),
    };
    let declared = first
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
    match declared {
        Some(n) if !first.shape.is_empty() && n != values.len() => Err(format!(
            "the output's shape {:?} holds {n} values, but {} came",
            first.shape,
            values.len()
        )),
        _ if values.is_empty() => Err("the output is empty".into()),
        _ => Ok(values),
    }
}

/// What a gRPC status means for a remote stage (the REST binding's words where they match).
fn describe(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            "the server refused the request"
        }
        Code::Unauthenticated | Code::PermissionDenied => "the server refused the credentials",
        Code::NotFound => "no such model (or not ready)",
        Code::Unavailable => "the server is not ready",
        Code::DeadlineExceeded => "no answer in time",
        Code::ResourceExhausted => "the server is overloaded or the message too large",
        Code::Unimplemented => "the server does not serve the Open Inference Protocol over gRPC",
        Code::Cancelled | Code::Aborted => "the request was cancelled",
        Code::Internal | Code::Unknown | Code::DataLoss => "the server failed",
        _ => "unexpected answer",
    }
}

/// The code's name as the gRPC specification writes it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error and its sources on one line, each message once (tonic's wrap one another's).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::Token;
    use prost::Message;

    fn output(datatype: &str, shape: Vec<i64>, fp32: Option<Vec<f32>>) -> v2::InferOutputTensor {
        v2::InferOutputTensor {
            name: "output".into(),
            datatype: datatype.into(),
            shape,
            contents: fp32.map(|fp32_contents| v2::InferTensorContents { fp32_contents }),
        }
    }

    #[test]
    fn raw_bytes_are_little_endian_fp32_and_typed_contents_are_read_too() {
        let values = [1.5f32, -2.25, 0.0, 3.0e-8];
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let answer = v2::ModelInferResponse {
            outputs: vec![output("FP32", vec![1, 4], None)],
            raw_output_contents: vec![raw],
            ..Default::default()
        };
        // Through the wire format, as the server would send it.
        let answer = v2::ModelInferResponse::decode(answer.encode_to_vec().as_slice()).unwrap();
        assert_eq!(first_output(answer).unwrap(), values);
        let answer = v2::ModelInferResponse {
            outputs: vec![output("FP32", vec![1, 4], Some(values.to_vec()))],
            ..Default::default()
        };
        assert_eq!(first_output(answer).unwrap(), values);
    }

    #[test]
    fn answers_without_usable_logits_say_why() {
        let cases = [
            (vec![], vec![], "no output"),
            (
                vec![output("INT64", vec![1], Some(vec![]))],
                vec![],
                "INT64",
            ),
            (
                vec![output("FP32", vec![1, 2], None)],
                vec![vec![0u8; 7]],
                "7 bytes",
            ),
            (
                vec![output("FP32", vec![1, 3], None)],
                vec![vec![0u8; 8]],
                "holds 3",
            ),
            (vec![output("FP32", vec![], None)], vec![], "no contents"),
            (vec![output("FP32", vec![], Some(vec![]))], vec![], "empty"),
        ];
        for (outputs, raw_output_contents, expected) in cases {
            let answer = v2::ModelInferResponse {
                outputs,
                raw_output_contents,
                ..Default::default()
            };
            let e = first_output(answer).unwrap_err();
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }

    #[test]
    fn the_request_has_the_v2_field_numbers() {
        // Hand-checked against grpc_predict_v2.proto: model_name = 1, inputs = 5 (name = 1,
        // datatype = 2, shape = 3, packed), raw_input_contents = 7.
        let request = v2::ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![v2::InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                contents: None,
            }],
            raw_input_contents: vec![vec![0xAB; 2]],
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        let expected = [
            0x0A, 1, b'm', // 1: model_name
            0x2A, 13, // 5: inputs, 13 bytes
            0x0A, 1, b'x', // 1: name
            0x12, 4, b'F', b'P', b'3', b'2', // 2: datatype
            0x1A, 2, 1, 2, // 3: shape, packed
            0x3A, 2, 0xAB, 0xAB, // 7: raw_input_contents
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn the_token_travels_as_sensitive_metadata_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let token = Token::from_file(&path).unwrap();
        let endpoint: Endpoint = "grpc://127.0.0.1:1/m".parse().unwrap();
        let client = GrpcClient::new(endpoint, &Access::default().with_token(token)).unwrap();
        let value = client.authorization.as_ref().unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer s3cret-value");
        assert!(value.is_sensitive());
        let shown = format!("{client:?} {value:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Token(***)"), "{shown}");
        // Nothing listens on port 1: the error names the endpoint, not the token.
        let e = client.ready().unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("cannot reach the server"), "{text}");
    }

    #[test]
    fn grpcs_takes_rustls_with_webpki_roots_and_rest_endpoints_are_refused() {
        // Nothing is sent: the connection opens on the first call.
        let endpoint: Endpoint = "grpcs://models.example.org/m".parse().unwrap();
        let client = GrpcClient::new(endpoint, &Access::default()).unwrap();
        assert!(client.endpoint().is_tls());
        let endpoint: Endpoint = "http://127.0.0.1:1/v2/models/m".parse().unwrap();
        let e = GrpcClient::new(endpoint, &Access::default()).unwrap_err();
        assert!(e.to_string().contains("not a gRPC endpoint"), "{e}");
    }

    #[test]
    fn statuses_are_named_and_their_messages_kept_short() {
        let endpoint: Endpoint = "grpc://127.0.0.1:1/m".parse().unwrap();
        let client = GrpcClient::new(endpoint, &Access::default()).unwrap();
        let e = client.status_error(&Status::not_found("Model m not found"));
        assert_eq!(
            e.to_string(),
            "remote stage grpc://127.0.0.1:1/m: no such model (or not ready) (gRPC NOT_FOUND: Model m not found)"
        );
        let Error::Remote { status, body, .. } =
            client.status_error(&Status::internal("x".repeat(1000)))
        else {
            panic!("not a remote error")
        };
        assert_eq!(status, None);
        assert_eq!(body.chars().count(), crate::remote::BODY_SHOWN + 3);
        // tonic's own deadline, and a transport failure: no server answer, no code shown.
        let e = client.status_error(&Status::from_error(Box::new(tonic::TimeoutExpired(()))));
        assert!(
            e.to_string().ends_with("no answer in time (5000 ms)"),
            "{e}"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = client.status_error(&Status::from_error(Box::new(refused)));
        assert!(
            e.to_string().ends_with("cannot reach the server: refused"),
            "{e}"
        );
        let e = client.status_error(&Status::unauthenticated(""));
        assert!(
            e.to_string()
                .ends_with("refused the credentials (gRPC UNAUTHENTICATED)"),
            "{e}"
        );
    }
}
