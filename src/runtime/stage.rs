//! One stage of a cascade: a model that may or may not be resident, with its preprocessing.
//!
//! A stage knows how to load itself the first time it is needed and how to let go of the
//! model again (to free memory on a small board); its preprocessing buffers survive a
//! release because they are small and their shape never changes.
//!
//! Forks of a stage ([`Stage::fork`], one per worker thread) share one slot for the model:
//! whichever worker first needs it loads it, the others attach to the same weights with
//! their own execution state, and a release empties the slot for all of them (a worker
//! drops its handle when it next runs the stage and finds the slot changed).
//!
//! A stage whose model is on a server ([`Location::Remote`]) preprocesses here and sends
//! only the tensor. "Loading" it is connecting; it holds no weights, so it always fits the
//! memory budget and a release has nothing to give back. When the server does not answer,
//! the run says why ([`StageOutput::answer`]) instead of failing, and the cascade answers
//! with the stage before it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::remote::{Access, RemoteStats, ServedModel, Unanswered};
use crate::runtime::{Footprint, InputSpec, Labels, Location, Preprocessor};
use crate::runtime::{LoadOptions, Model, ModelSpec};

/// A cascade stage.
#[derive(Debug)]
pub struct Stage {
    spec: ModelSpec,
    footprint: Footprint,
    backend: Backend,
    preprocessor: Option<Preprocessor>,
}

/// Where the stage's inferences run.
#[derive(Debug)]
enum Backend {
    Local(Local),
    Remote(Remote),
}

/// A model run in this process.
#[derive(Debug)]
struct Local {
    options: LoadOptions,
    shared: Arc<Mutex<Slot>>,
    /// This worker's handle on the slot's weights, with its own execution state.
    model: Option<Model>,
}

/// A model on a server. Each fork keeps its own connection (and back-off).
#[derive(Debug)]
struct Remote {
    access: Access,
    /// Boxed: a connection (an HTTP agent, a back-off) is twice a local model's handle,
    /// and every stage would pay for the larger variant.
    served: Option<Box<ServedModel>>,
    connects: usize,
    last_used: Option<Instant>,
}

/// The model every fork of a stage runs: loaded at most once at a time.
#[derive(Debug, Default)]
struct Slot {
    /// The loaded model; workers run forks of it, never it.
    model: Option<Model>,
    loads: usize,
    /// When any fork last ran the stage or loaded it: idleness is the stage's, not one
    /// worker's, or a worker that has not deferred for a while would release the model
    /// from under the others (which would then load it again).
    last_used: Option<Instant>,
}

/// What one run of a stage produced.
#[derive(Debug)]
pub struct StageOutput<'a> {
    /// The logits (borrowing the stage's reused buffer), or why a served model gave none.
    pub answer: std::result::Result<&'a [f32], Unanswered>,
    pub preprocess: Duration,
    /// Inference here, or the round trip to the server (also when it failed).
    pub inference: Duration,
    /// Time spent loading the model (or connecting to it) during this run, if it was not
    /// resident.
    pub load: Option<Duration>,
}

impl Stage {
    /// A stage that loads nothing until it is first run or [`Stage::load`]ed. It compiles
    /// with the spec's own options where it has them (chosen for it by measurement), else
    /// with `options`. A served model is reached as `access` says.
    pub fn new(spec: ModelSpec, options: LoadOptions, access: &Access) -> Stage {
        let (footprint, backend) = match &spec.location {
            Location::File(path) => (
                Footprint::of_file(path),
                Backend::Local(Local {
                    options: spec.options.unwrap_or(options),
                    shared: Arc::default(),
                    model: None,
                }),
            ),
            Location::Remote(_) => (
                Footprint::default(),
                Backend::Remote(Remote {
                    access: access.clone(),
                    served: None,
                    connects: 0,
                    last_used: None,
                }),
            ),
        };
        Stage {
            spec,
            footprint,
            backend,
            preprocessor: None,
        }
    }

    /// The same stage for another worker thread: one model slot between them (see the
    /// module's documentation), its own execution state and preprocessing buffers.
    pub fn fork(&self) -> Stage {
        let backend = match &self.backend {
            Backend::Local(l) => Backend::Local(Local {
                options: l.options,
                shared: Arc::clone(&l.shared),
                model: None,
            }),
            Backend::Remote(r) => Backend::Remote(Remote {
                access: r.access.clone(),
                served: None,
                connects: 0,
                last_used: None,
            }),
        };
        Stage {
            spec: self.spec.clone(),
            footprint: self.footprint,
            backend,
            preprocessor: None,
        }
    }

    /// Makes the model resident (connects to a served one). Returns the load time if it was
    /// loaded now, `None` if it already was (by this worker or, for a fork, by another).
    pub fn load(&mut self) -> Result<Option<Duration>> {
        match &mut self.backend {
            Backend::Local(local) => {
                let loaded = local.load(&self.spec)?;
                if let Some(model) = &local.model {
                    if self.preprocessor.is_none() {
                        self.preprocessor = Some(Preprocessor::new(model.input().clone()));
                    }
                }
                Ok(loaded)
            }
            Backend::Remote(remote) => {
                if remote.served.is_some() {
                    return Ok(None);
                }
                let served = ServedModel::connect(&self.spec, &remote.access)?;
                let took = served.connect_time();
                if self.preprocessor.is_none() {
                    self.preprocessor = Some(Preprocessor::new(served.input().clone()));
                }
                remote.served = Some(Box::new(served));
                remote.connects += 1;
                remote.last_used = Some(Instant::now());
                Ok(Some(took))
            }
        }
    }

    /// Drops the model and gives its memory back to the system; the next run loads it
    /// again. Returns whether anything was released. Other workers' handles keep the
    /// weights alive until each next runs the stage. A served model holds no memory here
    /// and stays connected.
    pub fn release(&mut self) -> bool {
        match &mut self.backend {
            Backend::Local(local) => {
                let was = local.slot().model.take().is_some();
                local.model = None;
                if was {
                    crate::memory::return_freed_memory();
                    log::info!("released {}", self.spec);
                }
                was
            }
            Backend::Remote(_) => false,
        }
    }

    /// The model's estimated memory (see [`Footprint`]); nothing for a served model.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Whether the model is resident (for any worker), or a served model connected.
    pub fn is_loaded(&self) -> bool {
        match &self.backend {
            Backend::Local(local) => local.slot().model.is_some(),
            Backend::Remote(remote) => remote.served.is_some(),
        }
    }

    /// How many times the model has been loaded so far, by this stage and its forks (a
    /// served model: connected, by this stage).
    pub fn load_count(&self) -> usize {
        match &self.backend {
            Backend::Local(local) => local.slot().loads,
            Backend::Remote(remote) => remote.connects,
        }
    }

    /// When the stage last ran or was loaded, by this worker or any fork, if ever.
    pub fn last_used(&self) -> Option<Instant> {
        match &self.backend {
            Backend::Local(local) => local.slot().last_used,
            Backend::Remote(remote) => remote.last_used,
        }
    }

    /// How this stage's model is compiled and run (the defaults for a served model, which
    /// is not compiled here).
    pub fn options(&self) -> LoadOptions {
        match &self.backend {
            Backend::Local(local) => local.options,
            Backend::Remote(_) => LoadOptions::default(),
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Whether the model is on a server.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// This worker's handle on the model, once it has loaded or attached to it; `None` for
    /// a served model.
    pub fn model(&self) -> Option<&Model> {
        match &self.backend {
            Backend::Local(local) => local.model.as_ref(),
            Backend::Remote(_) => None,
        }
    }

    /// How long the model took to load, or a served model to connect (its manifest read,
    /// its metadata asked): what a first deferral to this stage waits for. `None` before
    /// either has happened.
    pub fn load_time(&self) -> Option<Duration> {
        match &self.backend {
            Backend::Local(local) => local.model.as_ref().map(|m| m.load_time()),
            Backend::Remote(remote) => remote.served.as_ref().map(|s| s.connect_time()),
        }
    }

    /// [`Stage::load_time`] in ms, 0 before any.
    pub fn load_ms(&self) -> f64 {
        self.load_time().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    /// The input the stage's preprocessing produces, once loaded.
    pub fn input(&self) -> Option<&InputSpec> {
        self.preprocessor.as_ref().map(Preprocessor::spec)
    }

    /// The classes the model outputs, once loaded (a served model: once declared or seen).
    pub fn num_classes(&self) -> Option<usize> {
        match &self.backend {
            Backend::Local(local) => local.model.as_ref().map(Model::num_classes),
            Backend::Remote(remote) => remote.served.as_deref().and_then(ServedModel::num_classes),
        }
    }

    /// The model's class names, once loaded.
    pub fn labels(&self) -> Option<&Labels> {
        match &self.backend {
            Backend::Local(local) => local.model.as_ref().map(Model::labels),
            Backend::Remote(remote) => remote.served.as_deref().map(ServedModel::labels),
        }
    }

    /// Requests, answers and failures of a served model, by this worker.
    pub fn remote_stats(&self) -> Option<RemoteStats> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Remote(remote) => Some(
                remote
                    .served
                    .as_deref()
                    .map_or_else(RemoteStats::default, ServedModel::stats),
            ),
        }
    }

    /// Preprocesses `image` for this stage, loading the model first if need be, and runs it.
    pub fn run(&mut self, image: &RgbImage) -> Result<StageOutput<'_>> {
        let load = self.load()?;
        // load() leaves the preprocessor in place; the error arm only guards that invariant.
        let Some(pre) = self.preprocessor.as_mut() else {
            return Err(Error::Internal(format!(
                "{} is not loaded after loading it",
                self.spec
            )));
        };
        let t0 = Instant::now();
        let tensor = pre.run(image)?;
        let t1 = Instant::now();
        let answer = match &mut self.backend {
            Backend::Local(local) => {
                let Some(model) = local.model.as_mut() else {
                    return Err(Error::Internal(format!(
                        "{} is not loaded after loading it",
                        self.spec
                    )));
                };
                let logits = model.infer(tensor)?;
                local
                    .shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_used = Some(Instant::now());
                Ok(logits)
            }
            Backend::Remote(remote) => {
                remote.last_used = Some(Instant::now());
                let Some(served) = remote.served.as_mut() else {
                    return Err(Error::Internal(format!(
                        "{} is not connected after connecting",
                        self.spec
                    )));
                };
                served.infer(tensor)?
            }
        };
        let t2 = Instant::now();
        Ok(StageOutput {
            answer,
            preprocess: t1 - t0,
            inference: t2 - t1,
            load,
        })
    }
}

impl Local {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A worker that panicked mid-load left nothing half-written: the slot is only
        // assigned whole.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Stage::load`].
    fn load(&mut self, spec: &ModelSpec) -> Result<Option<Duration>> {
        let shared = Arc::clone(&self.shared);
        let mut slot = shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = &slot.model {
            if !self
                .model
                .as_ref()
                .is_some_and(|m| m.shares_weights_with(loaded))
            {
                self.model = Some(loaded.fork()?);
            }
            return Ok(None);
        }
        // Released by another worker since this one last ran: let go of the old weights
        // before loading new ones.
        self.model = None;
        let model = Model::load(spec, self.options)?;
        for assumption in model.assumptions() {
            log::warn!("{spec}: no manifest, assuming {assumption}");
        }
        let took = model.load_time();
        log::info!(
            "loaded {spec} in {:.0} ms ({} classes, input {:?})",
            took.as_secs_f64() * 1e3,
            model.num_classes(),
            model.input().shape()
        );
        self.model = Some(model.fork()?);
        slot.model = Some(model);
        slot.loads += 1;
        // Idleness counts from the load, so a preloaded stage that is never needed can
        // still be released.
        slot.last_used = Some(Instant::now());
        Ok(Some(took))
    }
}
