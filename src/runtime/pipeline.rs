//! Pipelined stages: one thread per stage, each running its stage on a fork of the cascade,
//! so stage 0 of the next input runs while stage 1 of this one does.
//!
//! The other way to use several cores is whole-cascade workers ([`super::run_in_order`]):
//! each worker runs every stage of its own input. Workers balance themselves and reach the
//! higher throughput whenever the stages' work is uneven (a pipeline runs at the pace of
//! its slowest stage: with Lite0 on every input and Lite2 on a third of them, stage 0 is
//! the bottleneck and the second core idles part of the time). A pipeline holds one
//! execution state per stage instead of one per worker for every stage, which is what a
//! board too small for several activations of the large model needs. `cascade bench`
//! measures both on the same images (its throughput table's `pipelined` row).
//!
//! Answers leave in input order, as one worker gives them: the decisions are the ones
//! [`Cascade::classify`] makes, step for step.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver};

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::runtime::{Cascade, Decision, Partial, Step};

/// Inputs that may wait between two stages: enough to smooth a burst of deferrals, few
/// enough to bound the memory a blocked caller lets pile up.
const QUEUE: usize = 4;

/// An input on its way, with its place in the input order.
type InFlight<I> = (usize, I, Partial);

/// Runs every input through the cascade with one thread per stage (see the module docs)
/// and hands each answer to `deliver`, in input order, on the calling thread. `image`
/// gives an input's decoded image. The first error (a stage's, or `deliver`'s) stops the
/// run and is returned once every thread has ended.
pub fn run_pipelined<I, F>(
    cascade: &Cascade,
    inputs: impl Iterator<Item = I> + Send,
    image: F,
    mut deliver: impl FnMut(I, Decision) -> Result<()>,
) -> Result<()>
where
    I: Send,
    F: Fn(&I) -> &RgbImage + Sync,
{
    let n = cascade.stages().len();
    let forks = (0..n).map(|_| cascade.fork()).collect::<Result<Vec<_>>>()?;
    let (done_tx, done_rx) = sync_channel::<(usize, I, Result<Decision>)>(QUEUE * n);
    std::thread::scope(|scope| {
        let image = &image;
        let mut from_before: Option<Receiver<InFlight<I>>> = None;
        let mut inputs = Some(inputs);
        for (k, mut fork) in forks.into_iter().enumerate() {
            let (to_next, from_here) = if k + 1 < n {
                let (tx, rx) = sync_channel::<InFlight<I>>(QUEUE);
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let done = done_tx.clone();
            let source = match (k, from_before.take(), inputs.take()) {
                (0, _, Some(inputs)) => Source::Inputs(inputs),
                (_, Some(rx), _) => Source::Stage(rx),
                _ => return Err(Error::Internal("a pipeline stage has no source".into())),
            };
            scope.spawn(move || {
                let mut handle = |seq: usize, item: I, so_far: Option<Partial>| -> bool {
                    match fork.step(image(&item), so_far, |_, _| true) {
                        Ok(Step::Done(d)) => done.send((seq, item, Ok(d))).is_ok(),
                        Ok(Step::Defer(p)) => match &to_next {
                            Some(next) => next.send((seq, item, p)).is_ok(),
                            None => done
                                .send((
                                    seq,
                                    item,
                                    Err(Error::Internal("the last stage deferred".into())),
                                ))
                                .is_ok(),
                        },
                        Err(e) => done.send((seq, item, Err(e))).is_ok(),
                    }
                };
                // A failed send means the run is over (the caller stopped): end quietly.
                match source {
                    Source::Inputs(inputs) => {
                        for (seq, item) in inputs.enumerate() {
                            if !handle(seq, item, None) {
                                return;
                            }
                        }
                    }
                    Source::Stage(rx) => {
                        for (seq, item, partial) in rx {
                            if !handle(seq, item, Some(partial)) {
                                return;
                            }
                        }
                    }
                }
            });
            from_before = from_here;
        }
        drop(done_tx);
        // Answers arrive as stages finish them (a deferred input after later easy ones):
        // hold each until those before it have been delivered.
        let mut waiting = BTreeMap::new();
        let mut next = 0usize;
        for (seq, item, decision) in done_rx {
            waiting.insert(seq, (item, decision?));
            while let Some((item, decision)) = waiting.remove(&next) {
                deliver(item, decision)?;
                next += 1;
            }
        }
        Ok(())
    })
}

/// Where a pipeline stage takes its inputs from.
enum Source<It, I> {
    /// The caller's inputs (the first stage).
    Inputs(It),
    /// The stage before.
    Stage(Receiver<InFlight<I>>),
}
