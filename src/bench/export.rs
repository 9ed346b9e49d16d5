//! A benchmark report in the forms people and scripts read: a Markdown table, and a
//! folder of `bench.json`, `bench.csv`, `curve.csv` and SVG plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bench::plot::AccuracyVsCost;
use crate::bench::Report;
use crate::bench::{Axis, Cost};
use crate::error::{Error, Result};
use crate::output::atomically;

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn joined(values: &[f64], f: impl Fn(f64) -> String, sep: &str) -> String {
    values.iter().map(|&v| f(v)).collect::<Vec<_>>().join(sep)
}

impl Report {
    /// The report as Markdown: a context line, one table row per configuration, memory,
    /// and the comparison with the large model on each cost axis.
    pub fn markdown(&self) -> String {
        let (c, r) = (&self.context, &self.result);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "Benchmark on {} ({}), {} thread(s), {} images, tract {}, cascade at {} >= {}\n",
            c.cpu,
            c.arch,
            c.threads,
            c.images,
            c.tract_version,
            r.metric,
            r.thresholds
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        );
        out += "| config | top-1 | top-5 | mean ms | p50 ms | p95 ms | p99 ms | images/s | energy mJ (above idle) | exits per stage | load ms |\n";
        out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
        for f in &r.configs {
            let energy = f.energy.as_ref().map_or("n/a".to_string(), |e| {
                let est = if e.estimate { " est." } else { "" };
                format!("{:.1} ({:.1}){est}", e.total_mj, e.above_idle_mj)
            });
            let l = &f.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                f.name,
                pct(f.top1),
                pct(f.top5),
                l.mean_ms,
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                f.throughput,
                energy,
                joined(&f.exit_shares, |s| format!("{:.0}%", 100.0 * s), " / "),
                joined(&f.load_ms, |s| format!("{s:.0}"), " / "),
            );
        }
        out.push('\n');
        for f in &r.configs {
            if let Some(share) = f.remote_share {
                let _ = writeln!(
                    out,
                    "{}: {:.0}% of the per-image time is the round trip to the server",
                    f.name,
                    100.0 * share
                );
            }
        }
        if let (Some(base), Some(a), Some(b)) = (
            r.memory_before_models,
            r.memory_first_stage_only,
            r.memory_all_stages,
        ) {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let _ = writeln!(
                out,
                "memory: first stage resident +{:.1} MiB, every stage loaded +{:.1} MiB (process RSS {:.1} -> {:.1} -> {:.1} MiB, peak {:.1}; the decoded images are in the baseline)",
                mib(a.rss_kib.saturating_sub(base.rss_kib)),
                mib(b.rss_kib.saturating_sub(base.rss_kib)),
                mib(base.rss_kib),
                mib(a.rss_kib),
                mib(b.rss_kib),
                mib(b.peak_rss_kib)
            );
        }
        if !self.throughput.is_empty() {
            out += "\n| throughput | workers | threads | images/s | vs one worker | p50 ms | p95 ms | top-1 | exits per stage |\n";
            out += "|---|---|---|---|---|---|---|---|---|\n";
            for t in &self.throughput {
                let one = self
                    .throughput
                    .iter()
                    .find(|o| {
                        o.config == t.config && o.workers == 1 && o.threads == 1 && !o.pipelined
                    })
                    .map_or(f64::NAN, |o| o.images_per_s);
                let workers = if t.pipelined {
                    format!("{} (pipelined)", t.workers)
                } else {
                    t.workers.to_string()
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.2}x | {:.2} | {:.2} | {} | {} |",
                    t.config,
                    workers,
                    t.threads,
                    t.images_per_s,
                    t.images_per_s / one,
                    t.latency.p50_ms,
                    t.latency.p95_ms,
                    pct(t.top1),
                    joined(&t.exit_shares, |s| format!("{:.0}%", 100.0 * s), " / "),
                );
            }
            out.push('\n');
        }
        for axis in [&self.latency, &self.energy].into_iter().flatten() {
            let Some(cmp) = &axis.comparison else {
                continue;
            };
            let (what, unit) = match axis.cost {
                Cost::Latency => ("latency", "ms"),
                Cost::Energy => ("energy", "mJ"),
            };
            if let Some(p) = &cmp.accuracy_at_large_cost {
                let _ = writeln!(
                    out,
                    "{what}: at the large model's cost the cascade reaches {} ({}, {:.2} {unit})",
                    pct(Some(p.accuracy)),
                    p.name,
                    p.cost
                );
            }
            let _ = match (&cmp.cost_at_large_accuracy, cmp.saving_ratio) {
                (Some(p), Some(ratio)) => writeln!(
                    out,
                    "{what}: the large model's accuracy costs the cascade {:.2} {unit} ({}): {ratio:.2}x less",
                    p.cost, p.name
                ),
                _ => writeln!(
                    out,
                    "{what}: no threshold reaches the large model's accuracy on this data"
                ),
            };
            let _ = writeln!(
                out,
                "{what}: the measured cascade point is {}on the Pareto front of the measured points",
                if cmp.cascade_on_front { "" } else { "NOT " }
            );
        }
        out += "(threshold curve derived from the per-image records of the models-alone runs)\n";
        out
    }

    /// Writes `bench.json`, `bench.csv`, `curve.csv` and the SVG plots into `dir`
    /// (created if need be); returns the files written.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let mut written = Vec::new();
        let json = dir.join("bench.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("the report does not encode as JSON: {e}")))?;
        atomically(&json, |w| w.write_all(text.as_bytes()))?;
        written.push(json);
        written.push(self.configs_csv(&dir.join("bench.csv"))?);
        written.push(self.curve_csv(&dir.join("curve.csv"))?);
        for axis in [&self.latency, &self.energy].into_iter().flatten() {
            written.push(self.plot(axis, dir)?);
        }
        Ok(written)
    }

    fn configs_csv(&self, path: &Path) -> Result<PathBuf> {
        atomically(path, |out| {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "config",
                "images",
                "top1",
                "top5",
                "mean_ms",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "throughput_ips",
                "energy_mj",
                "energy_above_idle_mj",
                "meter",
                "exit_shares",
                "load_ms",
                "remote_share",
            ])?;
            let opt = |v: Option<f64>, digits: usize| {
                v.map_or(String::new(), |v| format!("{v:.digits$}"))
            };
            for f in &self.result.configs {
                let e = f.energy.as_ref();
                let l = &f.latency;
                w.write_record([
                    f.name.clone(),
                    f.images.to_string(),
                    opt(f.top1, 4),
                    opt(f.top5, 4),
                    format!("{:.3}", l.mean_ms),
                    format!("{:.3}", l.p50_ms),
                    format!("{:.3}", l.p95_ms),
                    format!("{:.3}", l.p99_ms),
                    format!("{:.3}", f.throughput),
                    opt(e.map(|e| e.total_mj), 3),
                    opt(e.map(|e| e.above_idle_mj), 3),
                    e.map_or(String::new(), |e| e.meter.clone()),
                    joined(&f.exit_shares, |s| format!("{s:.4}"), ";"),
                    joined(&f.load_ms, |s| format!("{s:.1}"), ";"),
                    opt(f.remote_share, 4),
                ])?;
            }
            w.flush()
        })?;
        Ok(path.to_path_buf())
    }

    fn curve_csv(&self, path: &Path) -> Result<PathBuf> {
        atomically(path, |out| {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "thresholds",
                "accuracy",
                "deferral",
                "latency_ms",
                "energy_mj",
            ])?;
            for c in &self.result.curve {
                w.write_record([
                    crate::tune::curve::format_thresholds(&c.thresholds),
                    format!("{:.6}", c.accuracy),
                    format!("{:.6}", c.deferral),
                    format!("{:.4}", c.latency_ms),
                    c.energy_mj.map_or(String::new(), |e| format!("{e:.4}")),
                ])?;
            }
            w.flush()
        })?;
        Ok(path.to_path_buf())
    }

    fn plot(&self, axis: &Axis, dir: &Path) -> Result<PathBuf> {
        let (file, title, cost_label) = match axis.cost {
            Cost::Latency => (
                "accuracy_vs_latency.svg",
                format!(
                    "Accuracy vs mean latency ({} thread(s), {})",
                    self.context.threads, self.context.cpu
                ),
                "mean latency per image (ms)",
            ),
            Cost::Energy => {
                let estimate = self
                    .result
                    .configs
                    .last()
                    .and_then(|f| f.energy.as_ref())
                    .is_some_and(|e| e.estimate);
                let note = if estimate {
                    " (board model estimate)"
                } else {
                    ""
                };
                (
                    "accuracy_vs_energy.svg",
                    format!("Accuracy vs energy per image{note}"),
                    "energy per image (mJ)",
                )
            }
        };
        let path = dir.join(file);
        let svg = AccuracyVsCost {
            title: &title,
            cost_label,
            curve: &axis.curve,
            curve_label: "cascade, threshold sweep (derived from per-model runs)",
            measured: &axis.measured,
            highlight: "cascade",
        }
        .svg()
        .map_err(|reason| Error::Plot {
            path: path.clone(),
            reason,
        })?;
        atomically(&path, |w| w.write_all(svg.as_bytes()))?;
        Ok(path)
    }
}
