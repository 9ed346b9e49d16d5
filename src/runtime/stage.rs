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

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::runtime::{Footprint, Preprocessor};
use crate::runtime::{LoadOptions, Model, ModelSpec};

/// A cascade stage.
#[derive(Debug)]
pub struct Stage {
    spec: ModelSpec,
    options: LoadOptions,
    footprint: Footprint,
    shared: Arc<Mutex<Slot>>,
    /// This worker's handle on the slot's weights, with its own execution state.
    model: Option<Model>,
    preprocessor: Option<Preprocessor>,
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

/// What one run of a stage produced. The logits borrow the stage's reused buffer.
#[derive(Debug)]
pub struct StageOutput<'a> {
    pub logits: &'a [f32],
    pub preprocess: Duration,
    pub inference: Duration,
    /// Time spent loading the model during this run, if it was not resident.
    pub load: Option<Duration>,
}

impl Stage {
    /// A stage that loads nothing until it is first run or [`Stage::load`]ed. It compiles
    /// with the spec's own options where it has them (chosen for it by measurement), else
    /// with `options`.
    pub fn new(spec: ModelSpec, options: LoadOptions) -> Stage {
        Stage {
            footprint: Footprint::of_file(&spec.path),
            options: spec.options.unwrap_or(options),
            spec,
            shared: Arc::default(),
            model: None,
            preprocessor: None,
        }
    }

    /// The same stage for another worker thread: one model slot between them (see the
    /// module's documentation), its own execution state and preprocessing buffers.
    pub fn fork(&self) -> Stage {
        Stage {
            spec: self.spec.clone(),
            options: self.options,
            footprint: self.footprint,
            shared: Arc::clone(&self.shared),
            model: None,
            preprocessor: None,
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A worker that panicked mid-load left nothing half-written: the slot is only
        // assigned whole.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the model resident. Returns the load time if it was loaded now, `None` if it
    /// already was (by this worker or, for a fork, by another).
    pub fn load(&mut self) -> Result<Option<Duration>> {
        let shared = Arc::clone(&self.shared);
        let mut slot = shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = &slot.model {
            if !self
                .model
                .as_ref()
                .is_some_and(|m| m.shares_weights_with(loaded))
            {
                self.attach(loaded.fork()?);
            }
            return Ok(None);
        }
        // Released by another worker since this one last ran: let go of the old weights
        // before loading new ones.
        self.model = None;
        let model = Model::load(&self.spec, self.options)?;
        for assumption in model.assumptions() {
            log::warn!(
                "{}: no manifest, assuming {assumption}",
                self.spec.path.display()
            );
        }
        let took = model.load_time();
        log::info!(
            "loaded {} in {:.0} ms ({} classes, input {:?})",
            self.spec.path.display(),
            took.as_secs_f64() * 1e3,
            model.num_classes(),
            model.input().shape()
        );
        self.attach(model.fork()?);
        slot.model = Some(model);
        slot.loads += 1;
        // Idleness counts from the load, so a preloaded stage that is never needed can
        // still be released.
        slot.last_used = Some(Instant::now());
        Ok(Some(took))
    }

    fn attach(&mut self, model: Model) {
        if self.preprocessor.is_none() {
            self.preprocessor = Some(Preprocessor::new(model.input().clone()));
        }
        self.model = Some(model);
    }

    /// Drops the model and gives its memory back to the system; the next run loads it
    /// again. Returns whether anything was released. Other workers' handles keep the
    /// weights alive until each next runs the stage.
    pub fn release(&mut self) -> bool {
        let was = self.slot().model.take().is_some();
        self.model = None;
        if was {
            crate::memory::return_freed_memory();
            log::info!("released {}", self.spec.path.display());
        }
        was
    }

    /// The model's estimated memory (see [`Footprint`]).
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Whether the model is resident (for any worker).
    pub fn is_loaded(&self) -> bool {
        self.slot().model.is_some()
    }

    /// How many times the model has been loaded so far, by this stage and its forks.
    pub fn load_count(&self) -> usize {
        self.slot().loads
    }

    /// When the stage last ran or was loaded, by this worker or any fork, if ever.
    pub fn last_used(&self) -> Option<Instant> {
        self.slot().last_used
    }

    /// How this stage's model is compiled and run.
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// This worker's handle on the model, once it has loaded or attached to it.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// Preprocesses `image` for this stage, loading the model first if need be, and runs it.
    pub fn run(&mut self, image: &RgbImage) -> Result<StageOutput<'_>> {
        let load = self.load()?;
        // load() leaves both in place; the error arm only guards that invariant.
        let (Some(model), Some(pre)) = (self.model.as_mut(), self.preprocessor.as_mut()) else {
            return Err(Error::Internal(format!(
                "{} is not loaded after loading it",
                self.spec.path.display()
            )));
        };
        let t0 = Instant::now();
        let tensor = pre.run(image)?;
        let t1 = Instant::now();
        let logits = model.infer(tensor)?;
        let t2 = Instant::now();
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_used = Some(t2);
        Ok(StageOutput {
            logits,
            preprocess: t1 - t0,
            inference: t2 - t1,
            load,
        })
    }
}
