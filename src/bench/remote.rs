//! A model in process against the same model on Open Inference Protocol servers (or one
//! server over several bindings), timed on the same preprocessed input in one run: what
//! sending an input to a server costs the board, next to answering it here.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::remote::Client;
use crate::runtime::{LoadOptions, Model, ModelSpec, Preprocessor};
use crate::tune::Latency;

/// What [`time_remote`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteTiming {
    pub model: String,
    /// In-process inference (the input preprocessed once, before the runs).
    pub local: Latency,
    /// Each endpoint's round trip, in the order given.
    pub remote: Vec<RoundTrip>,
    /// Whether every endpoint gave the local class on every run.
    pub same_class: bool,
}

/// One endpoint's round trips: encoding the request (JSON, or protobuf with the tensor as
/// raw bytes), the network, the server's inference, decoding the answer.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    pub endpoint: String,
    #[serde(flatten)]
    pub latency: Latency,
    /// Whether it gave the local class on every run.
    pub same_class: bool,
}

/// Loads `spec` (for its preprocessing and the in-process runs), preprocesses `image`
/// once, then `runs` times (after one untimed warm-up of each) runs it in process and sends
/// it to each client in turn, so a drifting machine load hits all of them alike.
pub fn time_remote(
    spec: &ModelSpec,
    options: LoadOptions,
    clients: &[Client],
    image: &RgbImage,
    runs: usize,
) -> Result<RemoteTiming> {
    if !(1..=super::MAX_RUNS).contains(&runs) {
        return Err(Error::InvalidArgument(format!(
            "runs must be in 1..={}, got {runs}",
            super::MAX_RUNS
        )));
    }
    if clients.is_empty() {
        return Err(Error::InvalidArgument("no remote endpoint to time".into()));
    }
    let mut model = Model::load(spec, options)?;
    let mut pre = Preprocessor::new(model.input().clone());
    let shape = model.input().shape();
    let tensor = pre.run(image)?.to_vec();
    let inputs = clients
        .iter()
        .map(|client| {
            client
                .metadata()?
                .inputs
                .first()
                .map(|i| i.name.clone())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("{} declares no input", client.endpoint()))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    model.infer(&tensor)?;
    for (client, input) in clients.iter().zip(&inputs) {
        client.infer(input, &shape, &tensor)?;
    }
    let mut local = Vec::with_capacity(runs);
    let mut remote: Vec<(Vec<Duration>, bool)> =
        vec![(Vec::with_capacity(runs), true); clients.len()];
    for _ in 0..runs {
        let t0 = Instant::now();
        let here = argmax(model.infer(&tensor)?);
        local.push(t0.elapsed());
        for ((client, input), (times, same)) in clients.iter().zip(&inputs).zip(&mut remote) {
            let t0 = Instant::now();
            let there = argmax(&client.infer(input, &shape, &tensor)?);
            times.push(t0.elapsed());
            *same &= here == there;
        }
    }
    let remote: Vec<RoundTrip> = clients
        .iter()
        .zip(remote)
        .map(|(client, (times, same_class))| RoundTrip {
            endpoint: client.endpoint().to_string(),
            latency: Latency::of(&times),
            same_class,
        })
        .collect();
    Ok(RemoteTiming {
        model: model.name().to_string(),
        local: Latency::of(&local),
        same_class: remote.iter().all(|r| r.same_class),
        remote,
    })
}
