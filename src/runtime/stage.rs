//! One stage of a cascade: a model that may or may not be resident, with its preprocessing.
//!
//! A stage knows how to load itself the first time it is needed and how to let go of the
//! model again (to free memory on a small board); its preprocessing buffers survive a
//! release because they are small and their shape never changes.

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
    model: Option<Model>,
    preprocessor: Option<Preprocessor>,
    loads: usize,
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
    /// A stage that loads nothing until it is first run or [`Stage::load`]ed.
    pub fn new(spec: ModelSpec, options: LoadOptions) -> Stage {
        Stage {
            footprint: Footprint::of_file(&spec.path),
            spec,
            options,
            model: None,
            preprocessor: None,
            loads: 0,
            last_used: None,
        }
    }

    /// Makes the model resident. Returns the load time if it was loaded now, `None` if it
    /// already was.
    pub fn load(&mut self) -> Result<Option<Duration>> {
        if self.model.is_some() {
            return Ok(None);
        }
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
        if self.preprocessor.is_none() {
            self.preprocessor = Some(Preprocessor::new(model.input().clone()));
        }
        self.model = Some(model);
        self.loads += 1;
        // Idleness counts from the load, so a preloaded stage that is never needed can
        // still be released.
        self.last_used = Some(Instant::now());
        Ok(Some(took))
    }

    /// Drops the model and gives its memory back to the system; the next run loads it
    /// again. Returns whether anything was released.
    pub fn release(&mut self) -> bool {
        let was = self.model.take().is_some();
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

    pub fn is_loaded(&self) -> bool {
        self.model.is_some()
    }

    /// How many times the model has been loaded so far.
    pub fn load_count(&self) -> usize {
        self.loads
    }

    /// When the stage last ran or was loaded, if ever.
    pub fn last_used(&self) -> Option<Instant> {
        self.last_used
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The resident model, if loaded.
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
        self.last_used = Some(t2);
        Ok(StageOutput {
            logits,
            preprocess: t1 - t0,
            inference: t2 - t1,
            load,
        })
    }
}
