//! A server-side model as a cascade stage: it answers when the server does, and otherwise
//! says why not, at once, so the cascade can fall back to its last local answer. Failure is
//! part of the design: a dead, slow, unready or erroring server costs at most one timeout,
//! then is left alone for a back-off that doubles while it keeps failing, and is used again
//! as soon as it answers.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::remote::Client;

/// The first pause after a failure: long enough not to pay a timeout on every input of a
/// stream while a server is down, short enough to notice a restart quickly.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest pause between attempts while a server keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the remote stage did not answer an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Unanswered {
    /// The request failed: the server is down, slow, not ready or answered an error.
    Failed { reason: String },
    /// The server failed recently and is being left alone until its back-off ends.
    BackingOff { retry_in_ms: u64 },
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Failed { reason } => f.write_str(reason),
            Unanswered::BackingOff { retry_in_ms } => write!(
                f,
                "the server failed recently; not asked again for {retry_in_ms} ms"
            ),
        }
    }
}

/// What asking the remote stage gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server's logits.
    Answered(Vec<f32>),
    /// No answer: fall back to the last local stage's.
    Unanswered(Unanswered),
}

/// Counts over the stage's life, for stream statistics and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RemoteStats {
    /// Requests sent.
    pub requests: u64,
    pub answered: u64,
    pub failed: u64,
    /// Inputs not sent because the server was backing off.
    pub skipped: u64,
}

/// A model on an Open Inference Protocol server, used as a stage. See the module docs.
#[derive(Debug)]
pub struct RemoteStage {
    client: Client,
    /// The local preprocessing's tensor shape, which the server's model must take.
    shape: [usize; 4],
    /// The server's input name, once its metadata has been read and checked.
    input: Option<String>,
    /// When the next attempt may be made after failures, and the pause that led there.
    backoff: Option<(Instant, Duration)>,
    stats: RemoteStats,
}

impl RemoteStage {
    /// A remote stage fed tensors of `shape` (the local preprocessing's). When the server
    /// answers now, its metadata is checked at once: a model that takes another shape, or
    /// declares no input, is an error here, not a fallback on every input later. When it
    /// does not answer, the stage starts backing off and checks on first contact.
    pub fn connect(client: impl Into<Client>, shape: [usize; 4]) -> Result<RemoteStage> {
        let mut stage = RemoteStage {
            client: client.into(),
            shape,
            input: None,
            backoff: None,
            stats: RemoteStats::default(),
        };
        match stage.client.metadata() {
            Ok(meta) => stage.input = Some(stage.check(&meta)?),
            Err(e) => {
                log::warn!("{e}; the stage falls back to local answers until it answers");
                stage.fail();
            }
        }
        Ok(stage)
    }

    /// The input name, when the model takes the local tensor's shape (a `-1` dimension
    /// takes any size).
    fn check(&self, meta: &crate::remote::ModelMetadata) -> Result<String> {
        let input = meta
            .inputs
            .first()
            .ok_or_else(|| Error::remote(self.client.endpoint(), "the model declares no input"))?;
        let fits = input.shape.len() == self.shape.len()
            && input
                .shape
                .iter()
                .zip(self.shape)
                .all(|(&d, s)| d == -1 || usize::try_from(d) == Ok(s));
        if !fits || input.datatype != "FP32" {
            return Err(Error::remote(
                self.client.endpoint(),
                format!(
                    "the model takes {} {:?}, but this stage's preprocessing gives FP32 {:?}",
                    input.datatype, input.shape, self.shape
                ),
            ));
        }
        Ok(input.name.clone())
    }

    /// Sends one preprocessed tensor. Never an error for what the server does: a failure
    /// is an [`Outcome::Unanswered`] with its reason. An error only for a model found, on
    /// first contact, to take another shape.
    pub fn infer(&mut self, tensor: &[f32]) -> Result<Outcome> {
        if let Some((until, _)) = self.backoff {
            let now = Instant::now();
            if now < until {
                self.stats.skipped += 1;
                return Ok(Outcome::Unanswered(Unanswered::BackingOff {
                    retry_in_ms: (until - now).as_millis() as u64,
                }));
            }
        }
        let input = match &self.input {
            Some(name) => name.clone(),
            None => match self.client.metadata() {
                Ok(meta) => {
                    let name = self.check(&meta)?;
                    self.input = Some(name.clone());
                    name
                }
                Err(e) => return Ok(self.failed(e)),
            },
        };
        self.stats.requests += 1;
        match self.client.infer(&input, &self.shape, tensor) {
            Ok(logits) => {
                if self.backoff.take().is_some() {
                    log::info!("{} answers again", self.client.endpoint());
                }
                self.stats.answered += 1;
                Ok(Outcome::Answered(logits))
            }
            Err(e) => Ok(self.failed(e)),
        }
    }

    fn failed(&mut self, e: Error) -> Outcome {
        self.stats.failed += 1;
        let pause = self.fail();
        log::warn!(
            "{e}; falling back to local answers for {} ms",
            pause.as_millis()
        );
        Outcome::Unanswered(Unanswered::Failed {
            reason: e.to_string(),
        })
    }

    /// Starts or lengthens the back-off; the pause now in force.
    fn fail(&mut self) -> Duration {
        let pause = match self.backoff {
            None => FIRST_BACKOFF,
            Some((_, last)) => (last * 2).min(MAX_BACKOFF),
        };
        self.backoff = Some((Instant::now() + pause, pause));
        pause
    }

    /// Ends any back-off: the next input is sent (a caller that knows the server is back).
    pub fn retry_now(&mut self) {
        if let Some((_, pause)) = self.backoff {
            self.backoff = Some((Instant::now(), pause));
        }
    }

    pub fn stats(&self) -> RemoteStats {
        self.stats
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}
