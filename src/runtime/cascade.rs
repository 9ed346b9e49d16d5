//! The cascade: run the cheapest stage on every input and defer to the next, more expensive
//! stage only while the current one is not confident enough.
//!
//! The first stage is made resident when the cascade is built; later stages are loaded the
//! first time an input is deferred to them and stay resident (unless released), so a
//! workload of easy inputs never pays for the large model at all.
//!
//! Every load keeps to the memory budget's share for models
//! ([`MemoryBudget::model_bytes`]): a later stage is loaded only if its estimated
//! [`Footprint`](crate::runtime::Footprint) fits beside the resident stages, after releasing
//! other later stages (least recently used first) if that makes room. A stage that still
//! does not fit is refused, and the input is answered by the stage before it, marked
//! [`CutShort::Memory`], rather than the process being killed by the kernel.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::memory::MemoryBudget;
use crate::remote::{Access, Unanswered};
use crate::runtime::Labels;
use crate::runtime::Stage;
use crate::runtime::{ExitRule, Metric, Ranked, Summary, Threshold, TOP_K};
use crate::runtime::{LoadOptions, ModelSpec};

/// Most stages a cascade may have; fixes the size of a [`Decision`] on the stack.
pub const MAX_STAGES: usize = 8;

/// What happened at one executed stage for one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageRun {
    pub stage: usize,
    /// The stage's own prediction and its confidence under the cascade's metric.
    pub class: usize,
    pub confidence: f32,
    pub preprocess: Duration,
    pub inference: Duration,
    /// Set when the stage had to be loaded for this input (not counted in `inference`).
    pub load: Option<Duration>,
}

/// Why an input was answered before its exit rule was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutShort {
    /// The caller's deadline did not allow the next stage.
    Deadline,
    /// The next stage does not fit the memory budget beside the resident ones.
    Memory,
    /// The next stage is on a server that did not answer (down, slow, not ready, an
    /// error, or backing off after failures).
    Unanswered,
}

impl CutShort {
    /// The name in JSON records.
    pub fn name(self) -> &'static str {
        match self {
            CutShort::Deadline => "deadline",
            CutShort::Memory => "memory",
            CutShort::Unanswered => "unanswered",
        }
    }
}

/// The record of one input through the cascade.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The answer: the exit stage's best class.
    pub class: usize,
    /// Exit stage's confidence under the cascade's metric.
    pub confidence: f32,
    /// Exit stage's best classes with softmax probabilities.
    pub top: heapless::Vec<Ranked, TOP_K>,
    /// Index of the stage that answered.
    pub exit_stage: usize,
    /// Every executed stage, in order; the last one is the exit stage.
    pub stages: heapless::Vec<StageRun, MAX_STAGES>,
    /// Set when the exit rule wanted a later stage that the deadline or the memory budget
    /// did not allow, or that was on a server that did not answer.
    pub cut_short: Option<CutShort>,
    /// Time spent on a stage that gave no answer (a served model's failed request), which
    /// `stages` does not hold.
    pub unanswered: Duration,
}

impl Decision {
    /// Preprocessing plus inference over all executed stages, and any time spent waiting
    /// on a server that did not answer (load time excluded).
    pub fn compute_time(&self) -> Duration {
        self.stages
            .iter()
            .map(|s| s.preprocess + s.inference)
            .sum::<Duration>()
            + self.unanswered
    }

    /// Load time paid during this input, if any stage was loaded for it.
    pub fn load_time(&self) -> Option<Duration> {
        self.stages
            .iter()
            .filter_map(|s| s.load)
            .reduce(|a, b| a + b)
    }
}

/// The exit threshold when none is given: a stage answers when its confidence (by the
/// default metric, the top class's softmax probability) is at least 0.7. On the bundled
/// EfficientNet-Lite0 -> Lite2 cascade this answers about 60% of ImageNet inputs at the
/// first stage with the large model's accuracy; `cascade calibrate` fits a better one for
/// a given budget.
pub const DEFAULT_THRESHOLD: f32 = 0.7;

/// A cascade's configuration: its stages, exit rules and residency. Built in a chain
/// (`CascadeBuilder::new().stage(a).stage(b).threshold(t)`) or from a profile, and plain
/// data, so a benchmark can read what it is about to run. Validated by
/// [`CascadeBuilder::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeBuilder {
    /// The models, cheapest first.
    pub stages: Vec<ModelSpec>,
    pub metric: Metric,
    /// One threshold for every exit, or one per stage but the last; none means
    /// [`DEFAULT_THRESHOLD`].
    pub thresholds: Vec<Threshold>,
    pub options: LoadOptions,
    /// Load every stage when building instead of on first need.
    pub preload: bool,
    /// Load every later stage once when building, to find an unreadable model before the
    /// first input needs it, then release it again.
    pub check: bool,
    /// Release a later stage once it has not run for this long (checked after each input).
    pub release_after_idle: Option<Duration>,
    /// The memory the models must keep within; `None` means the process's
    /// ([`MemoryBudget::current`]).
    pub memory: Option<MemoryBudget>,
    /// How stages on servers are reached (token, timeouts).
    pub access: Access,
}

impl Default for CascadeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CascadeBuilder {
    pub fn new() -> Self {
        CascadeBuilder {
            stages: Vec::new(),
            metric: Metric::default(),
            thresholds: Vec::new(),
            options: LoadOptions::default(),
            preload: false,
            check: false,
            release_after_idle: None,
            memory: None,
            access: Access::default(),
        }
    }

    /// Appends a stage; stages run in the order added, cheapest first.
    pub fn stage(mut self, spec: ModelSpec) -> Self {
        self.stages.push(spec);
        self
    }

    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// One threshold for every exit, or one per stage but the last.
    pub fn thresholds(mut self, thresholds: impl IntoIterator<Item = Threshold>) -> Self {
        self.thresholds = thresholds.into_iter().collect();
        self
    }

    pub fn threshold(self, threshold: Threshold) -> Self {
        self.thresholds([threshold])
    }

    /// How stages compile and run unless a stage's spec has its own options (chosen for
    /// it by measurement: see [`ModelSpec::options`]).
    pub fn load_options(mut self, options: LoadOptions) -> Self {
        self.options = options;
        self
    }

    /// tract's `conv_nhwc` rewrite on or off for every stage, including those a profile
    /// chose for by measurement: an explicit choice by the user wins over the profile's.
    pub fn conv_nhwc(mut self, on: bool) -> Self {
        self.options.conv_nhwc = on;
        for spec in &mut self.stages {
            if let Some(options) = &mut spec.options {
                options.conv_nhwc = on;
            }
        }
        self
    }

    /// Load every stage when building, for latency-critical use.
    pub fn preload(mut self, preload: bool) -> Self {
        self.preload = preload;
        self
    }

    /// Check every later stage loads when building (see the field's docs).
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// Release a later stage once it has not run for this long (checked after each input).
    pub fn release_after_idle(mut self, idle: Option<Duration>) -> Self {
        self.release_after_idle = idle;
        self
    }

    /// How stages on servers are reached: the token and the timeouts.
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Gives the served stages (`--stage URL`), in order, their manifests: how the board
    /// preprocesses for each. As many manifests as served stages, or none (each input is
    /// then as its server's metadata declares, with ImageNet normalization assumed).
    pub fn served_manifests(mut self, manifests: &[std::path::PathBuf]) -> Result<Self> {
        ModelSpec::give_served_manifests(&mut self.stages, manifests)?;
        Ok(self)
    }

    /// Keep the models within `budget` instead of the process's memory budget.
    pub fn memory(mut self, budget: MemoryBudget) -> Self {
        self.memory = Some(budget);
        self
    }

    /// Stage `i` alone, as a one-model cascade compiled, reached and kept within memory as
    /// this cascade's stages are: what a benchmark compares the cascade with.
    pub fn alone(&self, i: usize) -> Result<Cascade> {
        let spec = self.stages.get(i).cloned().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no stage {i} in a {}-stage cascade",
                self.stages.len()
            ))
        })?;
        Cascade::assemble(
            vec![spec],
            Vec::new(),
            self.metric,
            self.options,
            self.memory.unwrap_or_else(MemoryBudget::current),
            None,
            &self.access,
        )
    }

    /// Validates the configuration and loads the first stage (every stage with preload).
    pub fn build(&self) -> Result<Cascade> {
        let n = self.stages.len();
        if n < 2 {
            return Err(Error::InvalidArgument(format!(
                "a cascade needs at least two stages, got {n} (use --model for one model)"
            )));
        }
        if n > MAX_STAGES {
            return Err(Error::InvalidArgument(format!(
                "a cascade has at most {MAX_STAGES} stages, got {n}"
            )));
        }
        let rules: Vec<ExitRule> = match self.thresholds.len() {
            0 => vec![Threshold::default(); n - 1],
            1 => vec![self.thresholds[0]; n - 1],
            k if k == n - 1 => self.thresholds.clone(),
            k => {
                return Err(Error::InvalidArgument(format!(
                    "{k} thresholds for {n} stages: give one, or one per stage but the last ({})",
                    n - 1
                )))
            }
        }
        .into_iter()
        .map(|threshold| ExitRule {
            metric: self.metric,
            threshold,
        })
        .collect();
        let mut cascade = Cascade::assemble(
            self.stages.clone(),
            rules,
            self.metric,
            self.options,
            self.memory.unwrap_or_else(MemoryBudget::current),
            self.release_after_idle,
            &self.access,
        )?;
        cascade.warn_about_stages_that_never_fit();
        if self.preload {
            for i in 1..n {
                cascade.load_stage_if_it_fits(i)?;
            }
        }
        if self.check {
            cascade.check()?;
        }
        Ok(cascade)
    }
}

/// What one [`Cascade::step`] decided for an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answered (by this stage, or, cut short, by the one before).
    Done(Decision),
    /// Not confident: the next stage runs, from here.
    Defer(Partial),
}

/// An input part-way through a cascade: what its stages so far said. On the stack, like
/// the [`Decision`] it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    runs: heapless::Vec<StageRun, MAX_STAGES>,
    /// The last stage's summary: the answer if the next stage cannot give one.
    last: Summary,
    /// Compute time so far.
    spent: Duration,
}

impl Partial {
    /// The stage that runs next.
    pub fn next_stage(&self) -> usize {
        self.runs.len()
    }

    /// Compute time spent on the input so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }
}

/// What running one stage on one input gave.
enum Ran {
    Answered(StageRun, Summary),
    /// A served stage gave no answer, after `spent` (preprocessing and the request).
    Unanswered {
        why: Unanswered,
        spent: Duration,
    },
}

/// A cascade of classifiers with exit rules; see the module docs.
#[derive(Debug)]
pub struct Cascade {
    stages: Vec<Stage>,
    /// `rules[i]` decides whether an input exits at stage `i`; the last stage has none.
    rules: Vec<ExitRule>,
    metric: Metric,
    release_after_idle: Option<Duration>,
    memory: MemoryBudget,
    /// Later stages released to make room for another one.
    released_for_memory: u64,
    num_classes: usize,
}

impl Cascade {
    /// A one-model "cascade": every input is answered by its only stage. Lets a single model
    /// be classified, evaluated and benchmarked through exactly the same path as a cascade.
    pub fn single(spec: ModelSpec, options: LoadOptions) -> Result<Cascade> {
        Self::assemble(
            vec![spec],
            Vec::new(),
            Metric::MaxProb,
            options,
            MemoryBudget::current(),
            None,
            &Access::default(),
        )
    }

    /// The stages, with the first one loaded (it must fit the budget on its own).
    fn assemble(
        specs: Vec<ModelSpec>,
        rules: Vec<ExitRule>,
        metric: Metric,
        options: LoadOptions,
        memory: MemoryBudget,
        release_after_idle: Option<Duration>,
        access: &Access,
    ) -> Result<Cascade> {
        let mut stages: Vec<Stage> = specs
            .into_iter()
            .map(|s| Stage::new(s, options, access))
            .collect();
        let need = stages[0].footprint().load_peak;
        if need > memory.model_bytes() {
            return Err(Error::Memory(format!(
                "{} needs about {} MB to load, more than the {} MB a {} MB budget leaves for \
                 models (see --max-memory-mb)",
                stages[0].spec(),
                need >> 20,
                memory.model_bytes() >> 20,
                memory.mb()
            )));
        }
        stages[0].load()?;
        let num_classes = stages[0].num_classes().unwrap_or(0);
        Ok(Cascade {
            stages,
            rules,
            metric,
            release_after_idle,
            memory,
            released_for_memory: 0,
            num_classes,
        })
    }

    /// Warns, once when building, about each later stage that cannot fit beside the first
    /// even with every other stage released: inputs it would get are answered earlier.
    /// The same cascade for another worker thread: each stage shares its model slot with
    /// this one (a stage is loaded once, by whichever worker first defers to it; see
    /// [`Stage::fork`]), with its own execution states and buffers. The memory budget is
    /// shared as the models are: forks do not count as more models.
    pub fn fork(&self) -> Result<Cascade> {
        let mut stages: Vec<Stage> = self.stages.iter().map(Stage::fork).collect();
        stages[0].load()?;
        Ok(Cascade {
            stages,
            rules: self.rules.clone(),
            metric: self.metric,
            release_after_idle: self.release_after_idle,
            memory: self.memory,
            released_for_memory: 0,
            num_classes: self.num_classes,
        })
    }

    fn warn_about_stages_that_never_fit(&self) {
        let first = &self.stages[0];
        let room = self
            .memory
            .model_bytes()
            .saturating_sub(first.footprint().resident);
        for stage in &self.stages[1..] {
            let need = stage.footprint().load_peak;
            if need > room {
                log::warn!(
                    "{} needs about {} MB to load but a {} MB memory budget leaves {} MB beside \
                     {}: inputs deferred to it will be answered by the stage before it",
                    stage.spec(),
                    need >> 20,
                    self.memory.mb(),
                    room >> 20,
                    first.spec()
                );
            }
        }
    }

    /// Whether stage `i` is resident or can be loaded within the memory budget, releasing
    /// other later stages (least recently used first) if that makes room.
    pub fn make_room(&mut self, i: usize) -> bool {
        let Some(stage) = self.stages.get(i) else {
            return false;
        };
        if stage.is_loaded() {
            return true;
        }
        let need = stage.footprint().load_peak;
        let share = self.memory.model_bytes();
        loop {
            let resident: u64 = self
                .stages
                .iter()
                .filter(|s| s.is_loaded())
                .map(|s| s.footprint().resident)
                .sum();
            if resident + need <= share {
                return true;
            }
            let victim = (1..self.stages.len())
                .filter(|&j| j != i && self.stages[j].is_loaded())
                .min_by_key(|&j| self.stages[j].last_used());
            let Some(j) = victim else {
                log::debug!(
                    "{} refused: needs about {} MB to load, {} MB of the {} MB for models are in use",
                    self.stages[i].spec(),
                    need >> 20,
                    resident >> 20,
                    share >> 20
                );
                return false;
            };
            log::info!(
                "releasing {} to make room for {} within the memory budget",
                self.stages[j].spec(),
                self.stages[i].spec()
            );
            self.stages[j].release();
            self.released_for_memory += 1;
        }
    }

    /// How many times a later stage was released to make room for another.
    pub fn released_for_memory(&self) -> u64 {
        self.released_for_memory
    }

    /// Loads stage `i` now if it is not resident, and checks that it agrees with stage 0.
    pub fn load_stage(&mut self, i: usize) -> Result<Option<Duration>> {
        if !self.make_room(i) {
            return Err(self.over_budget(i));
        }
        let stage = self.stage_mut(i)?;
        let loaded = stage.load()?;
        if loaded.is_some() {
            self.check_agrees(i)?;
        }
        Ok(loaded)
    }

    fn over_budget(&self, i: usize) -> Error {
        Error::Memory(format!(
            "{} (about {} MB to load) does not fit the {} MB the memory budget leaves for \
             models beside the resident stages (see --max-memory-mb)",
            self.stages[i].spec(),
            self.stages[i].footprint().load_peak >> 20,
            self.memory.model_bytes() >> 20
        ))
    }

    /// Loads every later stage once to check that it is readable and compatible, then
    /// releases those that were not resident, so laziness is kept. A stage that cannot fit
    /// the memory budget is skipped (the build warned about it).
    pub fn check(&mut self) -> Result<()> {
        for i in 1..self.stages.len() {
            if self.load_stage_if_it_fits(i)?.is_some() {
                self.stages[i].release();
            }
        }
        Ok(())
    }

    /// [`Cascade::load_stage`], skipping (with `Ok(None)`) a stage that does not fit the
    /// memory budget: the build has warned about it.
    fn load_stage_if_it_fits(&mut self, i: usize) -> Result<Option<Duration>> {
        match self.load_stage(i) {
            Err(Error::Memory(_)) => Ok(None),
            other => other,
        }
    }

    /// Releases stage `i`'s model (never the first stage, which is always resident).
    pub fn release(&mut self, i: usize) -> Result<bool> {
        if i == 0 {
            return Err(Error::InvalidArgument(
                "the first stage stays resident and cannot be released".into(),
            ));
        }
        Ok(self.stage_mut(i)?.release())
    }

    fn stage_mut(&mut self, i: usize) -> Result<&mut Stage> {
        let n = self.stages.len();
        self.stages
            .get_mut(i)
            .ok_or_else(|| Error::InvalidArgument(format!("no stage {i} in a {n}-stage cascade")))
    }

    /// Checks that stage `i` outputs as many classes as stage 0 (when both are known: a
    /// served model may declare none until it first answers, and is checked then).
    fn check_agrees(&mut self, i: usize) -> Result<()> {
        let Some(classes) = self.stages[i].num_classes() else {
            return Ok(());
        };
        if self.num_classes == 0 && i == 0 {
            self.num_classes = classes;
        }
        if classes != self.num_classes && self.num_classes != 0 {
            let path = self.stages[i].spec().label().into();
            self.stages[i].release();
            return Err(Error::ModelShape {
                path,
                reason: format!(
                    "it outputs {classes} classes but stage 0 outputs {}; stages must share one class list",
                    self.num_classes
                ),
            });
        }
        Ok(())
    }

    /// Classifies one decoded image. Allocates nothing on the decision path: summaries and
    /// the record live on the stack; model buffers are reused.
    pub fn classify(&mut self, image: &RgbImage) -> Result<Decision> {
        self.classify_until(image, |_, _| true)
    }

    /// Like [`Cascade::classify`], but before deferring to stage `next` asks
    /// `may_defer(next, elapsed)` (`elapsed`: compute time spent on this input so far);
    /// when it says no, the current stage answers and the decision is marked `cut_short`.
    /// This is how a stream keeps a per-frame deadline.
    pub fn classify_until(
        &mut self,
        image: &RgbImage,
        mut may_defer: impl FnMut(usize, Duration) -> bool,
    ) -> Result<Decision> {
        let mut so_far = None;
        loop {
            match self.step(image, so_far, &mut may_defer)? {
                Step::Done(decision) => return Ok(decision),
                Step::Defer(partial) => so_far = Some(partial),
            }
        }
    }

    /// Runs the next stage for an input (the first, or the one after `so_far`'s) and
    /// decides: an answer, or a deferral to the stage after. [`Cascade::classify_until`] is
    /// these steps in a loop; a pipeline runs each stage's steps on its own thread, each
    /// on a fork of the cascade. `may_defer` is as for `classify_until`.
    pub fn step(
        &mut self,
        image: &RgbImage,
        so_far: Option<Partial>,
        mut may_defer: impl FnMut(usize, Duration) -> bool,
    ) -> Result<Step> {
        let i = so_far.as_ref().map_or(0, Partial::next_stage);
        if i >= self.stages.len() {
            return Err(Error::InvalidArgument(format!(
                "no stage {i} in a {}-stage cascade",
                self.stages.len()
            )));
        }
        let (run, summary) = match self.run_stage(i, image)? {
            Ran::Answered(run, summary) => (run, summary),
            Ran::Unanswered { why, spent: waited } => {
                // A served stage gave nothing: the last stage that answered does.
                let Some(p) = so_far else {
                    return Err(self.unanswered(i, &why));
                };
                let Some(run) = p.runs.last().copied() else {
                    return Err(self.unanswered(i, &why));
                };
                log::debug!(
                    "{} did not answer ({why}): stage {} answers",
                    self.stages[i].spec(),
                    run.stage
                );
                self.release_idle(i);
                return Ok(Step::Done(Decision {
                    class: run.class,
                    confidence: run.confidence,
                    top: p.last.top,
                    exit_stage: run.stage,
                    stages: p.runs,
                    cut_short: Some(CutShort::Unanswered),
                    unanswered: waited,
                }));
            }
        };
        let (mut runs, mut spent) = so_far.map_or((heapless::Vec::new(), Duration::ZERO), |p| {
            (p.runs, p.spent)
        });
        spent += run.preprocess + run.inference;
        let exits = match self.rules.get(i) {
            Some(rule) => run.confidence >= rule.threshold.get(),
            None => true,
        };
        let cut_short = if exits {
            None
        } else if !may_defer(i + 1, spent) {
            Some(CutShort::Deadline)
        } else if !self.make_room(i + 1) {
            Some(CutShort::Memory)
        } else {
            None
        };
        // Capacity is MAX_STAGES and the builder caps the stage count at that.
        let _ = runs.push(run);
        if exits || cut_short.is_some() {
            self.release_idle(i);
            return Ok(Step::Done(Decision {
                class: run.class,
                confidence: run.confidence,
                top: summary.top,
                exit_stage: i,
                stages: runs,
                cut_short,
                unanswered: Duration::ZERO,
            }));
        }
        Ok(Step::Defer(Partial {
            runs,
            last: summary,
            spent,
        }))
    }

    /// The error for a served stage that did not answer with no stage before it to stand
    /// in.
    fn unanswered(&self, i: usize, why: &Unanswered) -> Error {
        Error::remote(
            self.stages[i].spec().label(),
            format!("no answer, and no earlier stage to fall back to: {why}"),
        )
    }

    /// Sets the confidence metric of every exit rule (and of reported confidences).
    pub fn set_metric(&mut self, metric: Metric) {
        self.metric = metric;
        for rule in &mut self.rules {
            rule.metric = metric;
        }
    }

    /// Sets one threshold for every exit.
    pub fn set_threshold(&mut self, threshold: Threshold) {
        for rule in &mut self.rules {
            rule.threshold = threshold;
        }
    }

    /// Sets each exit's threshold, one per stage but the last (the online budget controller
    /// moves them).
    pub fn set_thresholds(&mut self, thresholds: &[Threshold]) -> Result<()> {
        if thresholds.len() != self.rules.len() {
            return Err(Error::InvalidArgument(format!(
                "{} thresholds for a cascade with {} exits",
                thresholds.len(),
                self.rules.len()
            )));
        }
        for (rule, &t) in self.rules.iter_mut().zip(thresholds) {
            rule.threshold = t;
        }
        Ok(())
    }

    /// Runs every stage on `image`, whatever the exit rules say (loading any that is not
    /// resident): what calibration needs to know how each stage does on each input. A stage
    /// that cannot fit the memory budget is an error here: there is no earlier answer to
    /// stand in for a measurement.
    pub fn observe_all(&mut self, image: &RgbImage) -> Result<heapless::Vec<StageRun, MAX_STAGES>> {
        let mut runs = heapless::Vec::new();
        for i in 0..self.stages.len() {
            if !self.make_room(i) {
                return Err(self.over_budget(i));
            }
            match self.run_stage(i, image)? {
                Ran::Answered(run, _) => {
                    let _ = runs.push(run);
                }
                Ran::Unanswered { why, .. } => {
                    return Err(Error::remote(
                        self.stages[i].spec().label(),
                        format!("no answer to measure: {why}"),
                    ))
                }
            }
        }
        Ok(runs)
    }

    /// Runs stage `i` and judges its output under the cascade's metric.
    fn run_stage(&mut self, i: usize, image: &RgbImage) -> Result<Ran> {
        let out = self.stages[i].run(image)?;
        let (preprocess, inference, load) = (out.preprocess, out.inference, out.load);
        let logits = match out.answer {
            Ok(logits) => logits,
            Err(why) => {
                return Ok(Ran::Unanswered {
                    why,
                    spent: preprocess + inference,
                })
            }
        };
        let summary = Summary::for_metric(logits, self.metric);
        let answered = logits.len();
        if (load.is_some() || self.stages[i].is_remote()) && i > 0 {
            self.check_agrees(i)?;
        }
        if self.num_classes != 0 && answered != self.num_classes {
            return Err(Error::Inference {
                path: self.stages[i].spec().label().into(),
                reason: format!(
                    "it answered {answered} values for {} classes",
                    self.num_classes
                ),
            });
        }
        let class = summary.class().ok_or_else(|| Error::Inference {
            path: self.stages[i].spec().label().into(),
            reason: "every logit is NaN".into(),
        })?;
        let run = StageRun {
            stage: i,
            class,
            confidence: self.metric.of(&summary),
            preprocess,
            inference,
            load,
        };
        Ok(Ran::Answered(run, summary))
    }

    /// Releases later stages (past `used`) that have been idle past the configured limit.
    fn release_idle(&mut self, used: usize) {
        let Some(limit) = self.release_after_idle else {
            return;
        };
        let now = Instant::now();
        for stage in self.stages.iter_mut().skip(used + 1) {
            if stage
                .last_used()
                .is_some_and(|t| now.duration_since(t) >= limit)
            {
                stage.release();
            }
        }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Direct access to stage `i` (benchmarks run its model on a fixed tensor).
    pub fn stage_mut_at(&mut self, i: usize) -> Option<&mut Stage> {
        self.stages.get_mut(i)
    }

    pub fn rules(&self) -> &[ExitRule] {
        &self.rules
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Class names, from the first stage's labels (all stages share one class list).
    pub fn labels(&self) -> &Labels {
        // The first stage is always resident, so this is its model's labels.
        self.stages[0].labels().unwrap_or_else(|| empty_labels())
    }
}

fn empty_labels() -> &'static Labels {
    static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Labels::generic(0))
}
