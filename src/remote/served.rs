//! A model on a server, seen from a cascade stage: what the board needs to feed it (the
//! input the local preprocessing must produce, from a manifest or the server's metadata),
//! the class list, and a buffer for its answers.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::remote::TrustRoots;
use crate::remote::{Client, Endpoint, Outcome, RemoteStage, RemoteStats, Timeouts, Token};
use crate::remote::{ModelMetadata, Unanswered};
use crate::runtime::manifest::{InputSpec, Manifest};
use crate::runtime::{Labels, ModelSpec};

/// How this process reaches its servers: one token, one set of timeouts and one set of
/// trusted roots for every remote stage. The token is never written anywhere (see [`Token`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub token: Option<Token>,
    pub timeouts: Timeouts,
    /// The CAs a TLS server's certificate must chain to; `None`: the public web's.
    pub trust: Option<TrustRoots>,
}

/// Where the bearer token is read from: never the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The first line of a file.
    File(std::path::PathBuf),
    /// An environment variable.
    Env(String),
}

impl Access {
    /// The token read from `token` (if any) and a request timeout (default
    /// [`Timeouts::default`]'s). The connect timeout is the default one, or the request's
    /// when that is shorter: a request cannot wait on a connection longer than it may take.
    pub fn new(token: Option<&TokenSource>, request: Option<Duration>) -> Result<Access> {
        let token = match token {
            Some(TokenSource::File(path)) => Some(Token::from_file(path)?),
            Some(TokenSource::Env(name)) => Some(Token::from_env(name)?),
            None => None,
        };
        let mut timeouts = Timeouts::default();
        if let Some(request) = request {
            if request.is_zero() {
                return Err(Error::InvalidArgument(
                    "a remote request timeout must be more than 0 ms".into(),
                ));
            }
            timeouts.request = request;
            timeouts.connect = timeouts.connect.min(request);
        }
        Ok(Access {
            token,
            timeouts,
            trust: None,
        })
    }
}

impl Access {
    /// The same access, with `token` on every request.
    pub fn with_token(mut self, token: Token) -> Access {
        self.token = Some(token);
        self
    }

    /// The same access, trusting only `roots` for TLS servers (`--ca-cert`).
    pub fn trusting(mut self, roots: Option<TrustRoots>) -> Access {
        self.trust = roots;
        self
    }

    /// The same access with no request waiting longer than `limit` (a stream's per-frame
    /// deadline: an answer later than that is of no use to the frame).
    pub fn within(mut self, limit: Option<Duration>) -> Access {
        if let Some(limit) = limit.filter(|l| !l.is_zero()) {
            self.timeouts.request = self.timeouts.request.min(limit);
            self.timeouts.connect = self.timeouts.connect.min(limit);
        }
        self
    }
}

/// A served model, connected (or backing off until its server answers).
#[derive(Debug)]
pub struct ServedModel {
    stage: RemoteStage,
    input: InputSpec,
    labels: Labels,
    /// The classes the server's model declares, when it declares them.
    num_classes: Option<usize>,
    /// The last answer, kept so a run can lend it like a local model lends its logits.
    logits: Vec<f32>,
    connect_time: Duration,
}

impl ServedModel {
    /// Connects to the model `spec` names. Its input comes from the spec's manifest when
    /// one is given (then a server that is down now only delays the first answers), else
    /// from the server's metadata (then the server must answer now).
    pub fn connect(spec: &ModelSpec, access: &Access) -> Result<ServedModel> {
        let start = Instant::now();
        let endpoint: &Endpoint = spec
            .endpoint()
            .ok_or_else(|| Error::Internal(format!("{} is not a served model", spec.location)))?;
        let client = Client::new(endpoint.clone(), access)?;
        let manifest = spec
            .manifest
            .as_deref()
            .map(Manifest::from_file)
            .transpose()?;
        let (input, labels, metadata) = match manifest {
            Some(m) => {
                let labels = match &m.labels {
                    Some(path) => Some(Labels::from_file(path)?),
                    None => None,
                };
                (m.input, labels, None)
            }
            None => {
                let meta = client.metadata().map_err(|e| match e {
                    Error::Remote {
                        endpoint,
                        reason,
                        status,
                        body,
                    } => Error::Remote {
                        endpoint,
                        reason: format!(
                            "{reason}; without a manifest (--manifest) the stage's input comes from the server, which must answer"
                        ),
                        status,
                        body,
                    },
                    other => other,
                })?;
                let input = input_of(&meta, endpoint)?;
                (input, None, Some(meta))
            }
        };
        let stage = RemoteStage::connect(client, input.shape())?;
        let declared = metadata
            .as_ref()
            .and_then(|m| m.outputs.first())
            .and_then(|o| o.shape.last())
            .and_then(|&d| usize::try_from(d).ok())
            .filter(|&d| d >= 2);
        if let (Some(l), Some(d)) = (&labels, declared) {
            if l.len() != d {
                return Err(Error::remote(
                    endpoint,
                    format!(
                        "the manifest's labels list {} classes, the model outputs {d}",
                        l.len()
                    ),
                ));
            }
        }
        let num_classes = declared.or(labels.as_ref().map(Labels::len));
        log::info!(
            "remote stage {endpoint}: input {:?}, {} classes",
            input.shape(),
            num_classes.map_or_else(|| "unknown".into(), |n| n.to_string())
        );
        Ok(ServedModel {
            stage,
            labels: labels.unwrap_or_else(|| Labels::generic(num_classes.unwrap_or(0))),
            input,
            num_classes,
            logits: Vec::new(),
            connect_time: start.elapsed(),
        })
    }

    /// Sends one preprocessed tensor: the server's logits, or why there are none (the
    /// caller falls back). An error only for an answer of the wrong length, or a model
    /// found on first contact to take another shape.
    pub fn infer(&mut self, tensor: &[f32]) -> Result<std::result::Result<&[f32], Unanswered>> {
        match self.stage.infer(tensor)? {
            Outcome::Answered(logits) => {
                if let Some(n) = self.num_classes.filter(|&n| n != logits.len()) {
                    return Err(Error::remote(
                        self.stage.client().endpoint(),
                        format!(
                            "answered {} values, the model declares {n} classes",
                            logits.len()
                        ),
                    ));
                }
                self.num_classes = Some(logits.len());
                self.logits = logits;
                Ok(Ok(&self.logits))
            }
            Outcome::Unanswered(why) => Ok(Err(why)),
        }
    }

    /// What the local preprocessing must produce.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The classes the model outputs, once declared or seen.
    pub fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    pub fn stats(&self) -> RemoteStats {
        self.stage.stats()
    }

    /// How long connecting took (reading the manifest, the metadata request).
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }
}

/// The input a server's model declares, as an image input (`[1,3,H,W]` or `[1,H,W,3]`, a
/// free batch counting as 1) with the usual assumptions about its normalization, warned.
fn input_of(meta: &ModelMetadata, endpoint: &Endpoint) -> Result<InputSpec> {
    let bad = |reason: String| Error::remote(endpoint, reason);
    let first = meta
        .inputs
        .first()
        .ok_or_else(|| bad("the model declares no input".into()))?;
    let dims: Option<Vec<usize>> = first
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            -1 if i == 0 => Some(1),
            d => usize::try_from(d).ok().filter(|&d| d > 0),
        })
        .collect();
    let dims = dims.ok_or_else(|| {
        bad(format!(
            "its input {:?} has free dimensions; give the stage a manifest (--manifest)",
            first.shape
        ))
    })?;
    let (input, assumed) = InputSpec::infer(&dims).map_err(bad)?;
    for a in assumed {
        log::warn!("{endpoint}: no manifest, assuming {a}");
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_waits_past_its_timeout_or_a_frame_deadline() {
        let d = Timeouts::default();
        assert_eq!(Access::new(None, None).unwrap().timeouts, d);
        // A short request timeout shortens the connect timeout too.
        let a = Access::new(None, Some(Duration::from_millis(300))).unwrap();
        assert_eq!(
            (a.timeouts.connect, a.timeouts.request),
            (Duration::from_millis(300), Duration::from_millis(300))
        );
        let a = Access::new(None, Some(Duration::from_secs(20))).unwrap();
        assert_eq!(
            (a.timeouts.connect, a.timeouts.request),
            (d.connect, Duration::from_secs(20))
        );
        assert!(Access::new(None, Some(Duration::ZERO)).is_err());
        // A 40 ms deadline bounds both; no deadline (or a zero one) changes nothing.
        let w = a.clone().within(Some(Duration::from_millis(40)));
        assert_eq!(
            (w.timeouts.connect, w.timeouts.request),
            (Duration::from_millis(40), Duration::from_millis(40))
        );
        assert_eq!(a.clone().within(None), a);
        assert_eq!(a.clone().within(Some(Duration::ZERO)), a);
        // A token from a variable that is not set is a clear error naming the variable.
        let e = Access::new(
            Some(&TokenSource::Env("CASCADE_NO_SUCH_VAR_9".into())),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CASCADE_NO_SUCH_VAR_9"), "{e}");
    }
}
