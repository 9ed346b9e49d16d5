//! The Open Inference Protocol's REST binding (KServe v2), as KServe, MLServer, Triton and
//! OpenVINO Model Server speak it: readiness by status code, model metadata, and inference
//! with the tensor as JSON. Blocking, with a connect timeout and an overall one per request,
//! so a dead or slow server costs at most the timeout, never a stall.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::remote::{Access, Endpoint, Token};

/// How much of a server's error body an error keeps: enough for a message, not a page.
pub const BODY_SHOWN: usize = 200;

/// How long a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the connection (TCP and TLS).
    pub connect: Duration,
    /// The whole request, connection included.
    pub request: Duration,
}

impl Default for Timeouts {
    /// One second to connect (a loopback or LAN server answers in milliseconds), five for a
    /// request (a large model on a busy server).
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(5),
        }
    }
}

/// A tensor as the model's metadata declares it. `-1` in a shape is a free dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    #[serde(default)]
    pub shape: Vec<i64>,
}

/// `GET /v2/models/NAME`: the model's declared inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub inputs: Vec<TensorMetadata>,
    #[serde(default)]
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Serialize)]
struct InferInput<'a> {
    name: &'a str,
    shape: &'a [usize],
    datatype: &'static str,
    data: &'a [f32],
}

#[derive(Serialize)]
struct InferRequest<'a> {
    inputs: [InferInput<'a>; 1],
}

#[derive(Deserialize)]
struct InferOutput {
    #[serde(default)]
    datatype: String,
    data: Vec<f32>,
}

#[derive(Deserialize)]
struct InferResponse {
    outputs: Vec<InferOutput>,
}

/// A client for one model on one server.
#[derive(Debug, Clone)]
pub struct RestClient {
    agent: ureq::Agent,
    endpoint: Endpoint,
    token: Option<Token>,
}

impl RestClient {
    /// A client for `endpoint`, with `access`'s token, timeouts and trusted roots. Plain
    /// HTTP off this machine is allowed (a closed LAN) but warned about: the images'
    /// tensors and any token would cross the network in clear.
    pub fn new(endpoint: Endpoint, access: &Access) -> RestClient {
        let (token, timeouts) = (access.token.clone(), access.timeouts);
        if !endpoint.is_tls() && !endpoint.is_loopback() {
            log::warn!(
                "remote stage {endpoint} is plain HTTP off this machine: inputs{} travel unencrypted; use https:// where the network is not yours",
                if token.is_some() { " and the token" } else { "" }
            );
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .http_status_as_error(false);
        if let Some(roots) = &access.trust {
            config = config.tls_config(roots.rest());
        }
        let agent: ureq::Agent = config.build().into();
        RestClient {
            agent,
            endpoint,
            token,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET .../ready`: Ok when the server says the model is ready (status 200). Servers
    /// differ in what they put in the body (nothing, JSON, text), so only the status counts.
    pub fn ready(&self) -> Result<()> {
        self.get("/ready").map(|_| ())
    }

    /// `GET /v2/models/NAME`: the model's declared inputs and outputs.
    pub fn metadata(&self) -> Result<ModelMetadata> {
        let body = self.get("")?;
        serde_json::from_str(&body)
            .map_err(|e| self.error(format!("unreadable model metadata: {e}"), None, &body))
    }

    /// `POST .../infer` with one FP32 input tensor; the first output's values.
    pub fn infer(&self, input: &str, shape: &[usize], data: &[f32]) -> Result<Vec<f32>> {
        let request = InferRequest {
            inputs: [InferInput {
                name: input,
                shape,
                datatype: "FP32",
                data,
            }],
        };
        let json = serde_json::to_string(&request)
            .map_err(|e| Error::Internal(format!("inference request: {e}")))?;
        let mut call = self.agent.post(self.endpoint.url("/infer"));
        call = call.header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            call = call.header("Authorization", t.header());
        }
        let body = self.answer(call.send(json))?;
        let response: InferResponse = serde_json::from_str(&body)
            .map_err(|e| self.error(format!("unreadable inference answer: {e}"), None, &body))?;
        let first = response
            .outputs
            .into_iter()
            .next()
            .ok_or_else(|| self.error("the answer has no output".into(), None, ""))?;
        if !first.datatype.is_empty() && first.datatype != "FP32" {
            return Err(self.error(
                format!("the output is {}, not FP32 logits", first.datatype),
                None,
                "",
            ));
        }
        Ok(first.data)
    }

    fn get(&self, tail: &str) -> Result<String> {
        let mut call = self.agent.get(self.endpoint.url(tail));
        if let Some(t) = &self.token {
            call = call.header("Authorization", t.header());
        }
        self.answer(call.call())
    }

    /// The body of a 2xx answer; anything else an error with the status and the start of
    /// the body.
    fn answer(
        &self,
        sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let mut response = sent.map_err(|e| {
            let reason = match &e {
                ureq::Error::Timeout(_) => format!("no answer in time ({e})"),
                _ => format!("cannot reach the server: {e}"),
            };
            self.error(reason, None, "")
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.error(format!("cannot read the answer: {e}"), Some(status), ""))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(self.error(describe(status).into(), Some(status), &body))
        }
    }

    fn error(&self, reason: String, status: Option<u16>, body: &str) -> Error {
        Error::Remote {
            endpoint: self.endpoint.to_string(),
            reason,
            status,
            body: shown(body),
        }
    }
}

/// What a status means for a remote stage.
fn describe(status: u16) -> &'static str {
    match status {
        400 | 422 => "the server refused the request",
        401 | 403 => "the server refused the credentials",
        404 => "no such model (or not ready)",
        503 => "the server is not ready",
        500..=599 => "the server failed",
        _ => "unexpected answer",
    }
}

/// The start of a body, on one line: JSON errors (`{"error": ...}`, FastAPI's
/// `{"detail": [...]}`) and plain text alike.
pub(crate) fn shown(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(BODY_SHOWN) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_kept_short_and_on_one_line() {
        assert_eq!(shown("Internal\n  Server   Error"), "Internal Server Error");
        let long = "x".repeat(1000);
        let s = shown(&long);
        assert_eq!(s.chars().count(), BODY_SHOWN + 3);
        // Multi-byte text is cut on a character boundary.
        let s = shown(&"é".repeat(500));
        assert!(s.ends_with("..."));
        assert_eq!(describe(503), "the server is not ready");
    }
}
