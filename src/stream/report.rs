//! A stream's statistics for people: the block printed every few seconds and at the end.

use crate::stream::{LiveEnergy, Summary};
use crate::tune::curve::format_thresholds;

impl Summary {
    /// The statistics block for people; `with_deadline` adds the count of frames
    /// answered early.
    pub fn text(&self, with_deadline: bool) -> String {
        let s = self;
        let mut out = format!(
            "stream: {:.1} s, {} frames in ({:.1} fps), {} classified ({:.1} fps), {} dropped, {} skipped",
            s.elapsed.as_secs_f64(),
            s.frames_in,
            s.input_fps,
            s.classified,
            s.fps,
            s.dropped,
            s.skipped
        );
        if s.failed > 0 {
            out += &format!(", {} failed", s.failed);
        }
        if s.unfinished > 0 {
            out += &format!(", {} unfinished", s.unfinished);
        }
        out.push('\n');
        if s.classified == 0 {
            return out;
        }
        if s.exit_shares.len() > 1 {
            let shares: Vec<String> = s
                .exit_shares
                .iter()
                .enumerate()
                .map(|(i, share)| format!("stage {i} {:.1}%", 100.0 * share))
                .collect();
            out += &format!("  exits: {}", shares.join(", "));
            if with_deadline {
                out += &format!("; {} answered early for the deadline", s.cut_short);
            }
            if s.over_memory > 0 {
                out += &format!(
                    "; {} answered early: the next stage does not fit the memory budget",
                    s.over_memory
                );
            }
            if s.unanswered > 0 {
                out += &format!(
                    "; {} answered by the stage before a server that did not answer",
                    s.unanswered
                );
            }
            out.push('\n');
        }
        let workers = match s.workers {
            1 => "1 worker".to_string(),
            n => format!("{n} workers"),
        };
        out += &format!(
            "  latency ({workers}): mean {:.1} ms, p50 {:.1} ms, p95 {:.1} ms; arrival to answer: mean {:.1} ms, p50 {:.1} ms, p95 {:.1} ms\n",
            s.mean_ms, s.p50_ms, s.p95_ms, s.mean_age_ms, s.p50_age_ms, s.p95_age_ms
        );
        if let Some(b) = &s.budget {
            let (limit, unit) = (b.budget.value(), b.budget.unit());
            out += &format!(
                "  budget: running mean {:.2} {unit} per frame against {limit:.2} {unit} ({:+.1}%), recent {:.2} {unit}, {}\n",
                b.running_mean,
                100.0 * (b.running_mean / limit - 1.0),
                b.recent_mean,
                match b.thresholds.as_slice() {
                    [one] => format!("threshold {one:.3}"),
                    each => format!("thresholds {}", format_thresholds(each)),
                }
            );
        }
        if let Some(e) = s.mean_energy_mj {
            out +=
                &format!("  energy: mean {e:.1} mJ per frame (the profile's per-stage figures)\n");
        }
        out
    }
}

impl LiveEnergy {
    /// The meter's figures for the whole stream, idle power included, per classified
    /// frame of `s`.
    pub fn text(&self, s: &Summary) -> String {
        let (live, e) = (self, self.energy);
        let per_frame = if s.classified > 0 {
            format!(
                ", {:.1} mJ per classified frame",
                1e3 * e.joules / s.classified as f64
            )
        } else {
            String::new()
        };
        format!(
            "  energy measured by {}: {:.2} J over {:.1} s ({:.2} W mean, idle included){per_frame}\n",
            live.meter,
            e.joules,
            e.seconds,
            e.watts()
        )
    }
}
