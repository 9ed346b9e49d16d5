//! Throughput mode: several inputs at once, one per worker thread, each worker running its
//! own fork of the cascade (shared weights, own execution state; see [`Cascade::fork`]).
//!
//! tract splits only matrix products across threads, so one inference scales poorly with
//! cores; independent inputs scale almost linearly. Results are delivered in input order,
//! whatever order the workers finish in, so a caller sees exactly what one worker would
//! have produced, only sooner.

use std::num::NonZeroUsize;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::runtime::{Cascade, Threads};

/// How many inputs run at once, each on its own thread: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers(NonZeroUsize);

impl Workers {
    /// One worker: latency mode, everything on the calling thread.
    pub const ONE: Workers = Workers(NonZeroUsize::MIN);

    /// `n` workers, at least 1 and at most 4 per core (more only adds switching).
    pub fn new(n: usize) -> Result<Workers> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let max = 4 * cores;
        match NonZeroUsize::new(n) {
            Some(n) if n.get() <= max => Ok(Workers(n)),
            _ => Err(Error::InvalidArgument(format!(
                "--workers must be at least 1 and at most {max} (4 per core on this machine), got {n}"
            ))),
        }
    }

    pub fn get(self) -> usize {
        self.0.get()
    }
}

/// One worker (latency mode): what a library caller gets unless it asks for more. The
/// command line's default is [`settle`]'s, one per big core.
impl Default for Workers {
    fn default() -> Workers {
        Workers::ONE
    }
}

impl std::str::FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        Workers::new(n).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The workers and tract threads a command runs with, from what was given: workers default
/// to the default thread count (one per big core); with several workers tract runs one
/// thread each unless `--threads` says otherwise (its executor is process-wide, so workers
/// would otherwise share and oversubscribe the cores). `default_threads` is asked once.
pub fn settle(
    workers: Option<Workers>,
    threads: Option<Threads>,
    default_threads: impl FnOnce() -> Threads,
) -> (Workers, Threads) {
    let mut default = Some(default_threads);
    let mut default_threads = || default.take().map_or(Threads::ONE, |f| f());
    let cores = match (workers, threads) {
        (Some(_), Some(_)) => None,
        _ => Some(default_threads()),
    };
    let workers = workers.unwrap_or_else(|| {
        cores
            .and_then(|c| Workers::new(c.get()).ok())
            .unwrap_or(Workers::ONE)
    });
    let threads = match threads {
        Some(t) => {
            if workers.get() > 1 && t.get() > 1 {
                log::warn!(
                    "--threads {t} with --workers {workers}: every worker shares tract's {t} threads"
                );
            }
            t
        }
        None if workers.get() > 1 => Threads::ONE,
        None => cores.unwrap_or(Threads::ONE),
    };
    (workers, threads)
}

/// What a worker runs on: a cascade, or a stream's classifier around one. A fork is the same
/// thing for another thread: the models' weights and anything meant to be shared (a stage's
/// model slot, a stream's budget controller) are shared, execution state and buffers are
/// the fork's own.
pub trait Fork: Sized {
    fn fork(&self) -> Result<Self>;
}

impl Fork for Cascade {
    fn fork(&self) -> Result<Cascade> {
        Cascade::fork(self)
    }
}

/// Inputs taken but not yet delivered, per worker. Bounds what waits behind a slow input
/// (a stage being loaded): without it, a caller that stops taking results (a stream whose
/// output is blocked) would let the workers run on and pile results up without end.
const WINDOW_PER_WORKER: usize = 4;

/// How many inputs may be out (taken and not yet delivered) at once, and the stop signal.
#[derive(Debug)]
struct Gate {
    window: usize,
    state: Mutex<GateState>,
    /// Signalled when an input is delivered or the run stops.
    freed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    out: usize,
    stop: bool,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Two plain counters, consistent between statements: usable after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for room to take one more input; false once the run stops.
    fn enter(&self) -> bool {
        let mut s = self.lock();
        while !s.stop && s.out >= self.window {
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.stop {
            return false;
        }
        s.out += 1;
        true
    }

    /// One input delivered (or never taken: the inputs had ended).
    fn leave(&self) {
        let mut s = self.lock();
        s.out = s.out.saturating_sub(1);
        drop(s);
        self.freed.notify_one();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.freed.notify_all();
    }
}

/// Runs `work` on every input, `workers` at a time, and hands each result to `deliver` in
/// input order (with its index). `first` is the first worker's cascade (or classifier); the
/// others run forks of it, made here and dropped at the end (the stages they loaded stay
/// loaded in `first`). With one worker everything runs on the calling thread. The first
/// error in input order, from `work` or `deliver`, stops the run (every input before it has
/// been delivered): workers finish the input they hold and take no other.
///
/// At most four inputs per worker are out at once (taken, not yet delivered): a worker
/// waits for the oldest to be delivered before taking more, so a slow `deliver` holds the
/// workers back instead of letting results pile up. Nothing is allocated per input.
///
/// Workers take inputs one at a time under a lock; an iterator that waits for its next
/// input (a stream) must end by itself once its source is shut down, since a worker
/// waiting inside it cannot be interrupted.
pub fn run_in_order<S, I, T, W, D>(
    first: &mut S,
    workers: Workers,
    inputs: impl Iterator<Item = I> + Send,
    work: W,
    mut deliver: D,
) -> Result<()>
where
    S: Fork + Send,
    I: Send,
    T: Send,
    W: Fn(&mut S, I) -> Result<T> + Sync,
    D: FnMut(usize, T) -> Result<()>,
{
    if workers.get() == 1 {
        for (i, input) in inputs.enumerate() {
            deliver(i, work(first, input)?)?;
        }
        return Ok(());
    }
    let mut forks = (1..workers.get())
        .map(|_| first.fork())
        .collect::<Result<Vec<S>>>()?;
    let window = WINDOW_PER_WORKER * workers.get();
    let queue = Mutex::new(inputs.enumerate());
    let gate = Gate {
        window,
        state: Mutex::default(),
        freed: Condvar::new(),
    };
    // Never full: no more than `window` results are out at once.
    let (done, results) = mpsc::sync_channel::<(usize, Result<T>)>(window);
    std::thread::scope(|scope| {
        for mine in std::iter::once(&mut *first).chain(forks.iter_mut()) {
            let (queue, gate, work, done) = (&queue, &gate, &work, done.clone());
            let spawned = std::thread::Builder::new()
                .name("cascade-worker".into())
                .spawn_scoped(scope, move || loop {
                    if !gate.enter() {
                        return;
                    }
                    // The lock is held only to take the next input, never while working.
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, input)) = next else {
                        gate.leave();
                        return;
                    };
                    if done.send((i, work(mine, input))).is_err() {
                        return;
                    }
                });
            if let Err(source) = spawned {
                // The workers already started stop at their next input.
                gate.stop();
                return Err(Error::Thread {
                    what: "worker",
                    source,
                });
            }
        }
        drop(done);
        // Results arrive in any order; each waits in its place in a ring of `window` (an
        // input `i` is taken only while fewer than `window` are out, so `i - next` is
        // below `window`) until its turn, so that what is delivered before an error is
        // exactly the inputs before the failing one.
        let mut waiting: Vec<Option<Result<T>>> = (0..window).map(|_| None).collect();
        let mut next = 0;
        let mut outcome = Ok(());
        for (i, result) in results {
            if outcome.is_err() {
                continue;
            }
            waiting[i % window] = Some(result);
            while let Some(result) = waiting[next % window].take() {
                let delivered = result.and_then(|value| deliver(next, value));
                next += 1;
                gate.leave();
                if let Err(e) = delivered {
                    outcome = Err(e);
                    gate.stop();
                    break;
                }
            }
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::RgbImage;
    use crate::runtime::{CascadeBuilder, LoadOptions, ModelSpec, Threshold};
    use std::path::Path;

    fn tiny() -> ModelSpec {
        ModelSpec::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-1000class.onnx"),
        )
    }

    fn images(n: usize) -> Vec<RgbImage> {
        (0..n)
            .map(|i| {
                RgbImage::from_fn(40, 40, |x, y| {
                    image::Rgb([(x * 6 + i as u32 * 17) as u8, (y * 5) as u8, (i * 29) as u8])
                })
            })
            .collect()
    }

    /// Two stages of the same tiny model: what matters is who loads what, and the order.
    fn cascade(threshold: f32) -> Cascade {
        CascadeBuilder::new()
            .stage(tiny())
            .stage(tiny())
            .threshold(Threshold::new(threshold).unwrap())
            .load_options(LoadOptions::default())
            .build()
            .unwrap()
    }

    #[test]
    fn results_come_in_input_order_and_equal_one_workers() {
        let imgs = images(40);
        let mut alone = cascade(0.5);
        let want: Vec<(usize, usize)> = imgs
            .iter()
            .map(|im| {
                let d = alone.classify(im).unwrap();
                (d.class, d.exit_stage)
            })
            .collect();
        for n in [1, 2, 3] {
            let mut c = cascade(0.5);
            let mut got = Vec::new();
            run_in_order(
                &mut c,
                Workers::new(n).unwrap(),
                imgs.iter(),
                |c, im| c.classify(im),
                |i, d| {
                    assert_eq!(i, got.len(), "delivered in input order");
                    got.push((d.class, d.exit_stage));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(got, want, "{n} worker(s)");
        }
    }

    #[test]
    fn a_later_stage_is_loaded_once_for_every_worker() {
        // Threshold 1: every input defers, so every worker needs stage 1.
        let mut c = cascade(1.0);
        assert!(!c.stages()[1].is_loaded());
        run_in_order(
            &mut c,
            Workers::new(3).unwrap(),
            images(12).iter(),
            |c, im| c.classify(im),
            |_, d| {
                assert_eq!(d.exit_stage, 1);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            c.stages()[1].load_count(),
            1,
            "one load shared by three workers"
        );
    }

    #[test]
    fn a_stage_is_idle_only_when_no_worker_has_run_it() {
        // --release-after: a worker that has not deferred for a while must not see the
        // later stage as idle while another worker keeps running it.
        let a = cascade(1.0);
        let mut b = a.fork().unwrap();
        assert_eq!(a.stages()[1].last_used(), None);
        b.classify(&images(1)[0]).unwrap();
        let used = b.stages()[1].last_used();
        assert!(used.is_some());
        assert_eq!(a.stages()[1].last_used(), used, "one idle clock per stage");
    }

    #[test]
    fn the_first_error_stops_the_run() {
        let mut c = cascade(0.5);
        let mut delivered = Vec::new();
        let err = run_in_order(
            &mut c,
            Workers::new(2).unwrap(),
            0..1000usize,
            |_, i| {
                if i == 5 {
                    Err(Error::InvalidArgument("input 5 is bad".into()))
                } else {
                    Ok(i)
                }
            },
            |i, v| {
                delivered.push((i, v));
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("input 5 is bad"), "{err}");
        assert_eq!(delivered, (0..5).map(|i| (i, i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_slow_delivery_holds_the_workers_back() {
        // Inputs taken but not delivered never exceed four per worker, however fast the
        // workers are next to the delivery.
        use std::sync::atomic::{AtomicUsize, Ordering};
        let taken = AtomicUsize::new(0);
        let inputs = (0..200usize).inspect(|_| {
            taken.fetch_add(1, Ordering::SeqCst);
        });
        let mut c = cascade(0.5);
        let mut most = 0;
        run_in_order(
            &mut c,
            Workers::new(2).unwrap(),
            inputs,
            |_, i| Ok(i),
            |i, v| {
                assert_eq!(i, v);
                most = most.max(taken.load(Ordering::SeqCst) - i);
                std::thread::yield_now();
                Ok(())
            },
        )
        .unwrap();
        assert!((1..=8).contains(&most), "{most} out at once");
    }

    #[test]
    fn workers_and_threads_settle_by_one_rule() {
        let two = Threads::new(2).unwrap();
        let w = |n| Workers::new(n).unwrap();
        // Nothing given: one worker per default thread, one tract thread each.
        assert_eq!(settle(None, None, || two), (w(2), Threads::ONE));
        // One worker asked for: latency mode, every default thread on it.
        assert_eq!(settle(Some(w(1)), None, || two), (w(1), two));
        // --threads given: kept as given.
        assert_eq!(
            settle(None, Some(Threads::ONE), || two),
            (w(2), Threads::ONE)
        );
        assert_eq!(
            settle(Some(w(2)), Some(two), || unreachable!()),
            (w(2), two)
        );
        // A one-thread machine: one worker on one thread.
        assert_eq!(settle(None, None, || Threads::ONE), (w(1), Threads::ONE));
    }

    #[test]
    fn worker_counts_are_checked() {
        assert!(Workers::new(0).is_err());
        assert!(Workers::new(100_000).is_err());
        assert_eq!("2".parse::<Workers>().unwrap().get(), 2);
        assert!("two".parse::<Workers>().is_err());
    }
}
