//! A model in process against the same model on an Open Inference Protocol server, timed
//! on the same preprocessed input in one run: what sending an input to the server costs the
//! board, next to answering it here.

use std::time::Instant;

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
    pub endpoint: String,
    /// In-process inference (the input preprocessed once, before the runs).
    pub local: Latency,
    /// The whole round trip: the request's JSON, the network, the server's inference, the
    /// answer's JSON.
    pub remote: Latency,
    /// Whether both gave the same class on every run.
    pub same_class: bool,
}

/// Loads `spec` (for its preprocessing and the in-process runs), preprocesses `image`
/// once, then alternates an in-process inference and a request to `client`, `runs` times
/// after one untimed warm-up of each, so a drifting machine load hits both alike.
pub fn time_remote(
    spec: &ModelSpec,
    options: LoadOptions,
    client: &Client,
    image: &RgbImage,
    runs: usize,
) -> Result<RemoteTiming> {
    if !(1..=super::MAX_RUNS).contains(&runs) {
        return Err(Error::InvalidArgument(format!(
            "runs must be in 1..={}, got {runs}",
            super::MAX_RUNS
        )));
    }
    let mut model = Model::load(spec, options)?;
    let mut pre = Preprocessor::new(model.input().clone());
    let shape = model.input().shape();
    let tensor = pre.run(image)?.to_vec();
    let input = client
        .metadata()?
        .inputs
        .first()
        .map(|i| i.name.clone())
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{} declares no input", client.endpoint()))
        })?;
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    model.infer(&tensor)?;
    client.infer(&input, &shape, &tensor)?;
    let (mut local, mut remote) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut same_class = true;
    for _ in 0..runs {
        let t0 = Instant::now();
        let here = argmax(model.infer(&tensor)?);
        local.push(t0.elapsed());
        let t0 = Instant::now();
        let there = argmax(&client.infer(&input, &shape, &tensor)?);
        remote.push(t0.elapsed());
        same_class &= here == there;
    }
    Ok(RemoteTiming {
        model: model.name().to_string(),
        endpoint: client.endpoint().to_string(),
        local: Latency::of(&local),
        remote: Latency::of(&remote),
        same_class,
    })
}
