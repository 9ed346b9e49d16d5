//! A search's results for people (Markdown, and the text the CLI prints) and for scripts
//! (CSV, JSON), and the accuracy-against-cost plot of the front with every single model.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::bench::{AccuracyVsCost, Point};
use crate::error::{Error, Result};
use crate::output::atomically;
use crate::search::{CascadePoint, Search};
use crate::tune::curve::format_thresholds;

/// The files a search writes into its output folder.
#[derive(Debug, Clone)]
pub struct Files {
    pub markdown: PathBuf,
    pub csv: PathBuf,
    pub json: PathBuf,
    pub svg: PathBuf,
}

impl Search {
    /// A cascade's stages by name: `a -> b`.
    pub fn names(&self, p: &CascadePoint) -> String {
        p.stages
            .iter()
            .map(|&i| self.candidates[i].name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    fn accuracy_word(&self) -> &'static str {
        match self.agreement_with {
            None => "top-1",
            Some(_) => "agreement",
        }
    }

    /// The report as Markdown: candidates, front, best.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let unit = self.unit;
        let acc = self.accuracy_word();
        let _ = writeln!(out, "# Cascade search on {}\n", self.data);
        if let Some(name) = &self.agreement_with {
            let _ = writeln!(
                out,
                "The images have no labels: \"agreement\" is agreement with {name}, the costliest candidate.\n"
            );
        }
        let _ = writeln!(
            out,
            "{} candidates, {} cascades ({} cascade-and-threshold points) replayed on {} images (held out: {}); per-candidate runs {:.1} s, replay {:.3} s.\n",
            self.candidates.len(),
            self.replay.cascades,
            self.replay.points,
            self.fit_inputs,
            self.holdout_inputs,
            self.observe_seconds,
            self.replay_seconds
        );
        let _ = writeln!(out, "## Candidates alone (fitting images)\n");
        let _ = writeln!(out, "| model | {acc} | cost ({unit}) |\n|---|---|---|");
        for s in &self.replay.singles {
            let _ = writeln!(
                out,
                "| {} | {:.1}% | {:.2} |",
                self.names(s),
                100.0 * s.point.accuracy,
                s.point.expected_cost
            );
        }
        let _ = writeln!(out, "\n## Front (fitting images)\n");
        let _ = writeln!(
            out,
            "| cascade | thresholds | {acc} | cost ({unit}) | deferred |\n|---|---|---|---|---|"
        );
        for p in &self.replay.front {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1}% | {:.2} | {:.1}% |",
                self.names(p),
                format_thresholds(&p.point.thresholds),
                100.0 * p.point.accuracy,
                p.point.expected_cost,
                100.0 * p.point.deferral
            );
        }
        if let Some(best) = self.best_text() {
            let _ = writeln!(out, "\n## Best\n\n{best}");
        }
        out
    }

    /// The best cascade and what the held-out images say about it, or `None` without a
    /// target.
    pub fn best_text(&self) -> Option<String> {
        let best = self.best.as_ref()?;
        let target = self.plan_target?;
        let unit = self.unit;
        let acc = self.accuracy_word();
        let mut out = String::new();
        let p = &best.fit;
        let _ = writeln!(
            out,
            "best for {target}{}: {} at thresholds {}: {acc} {:.1}%, {:.2} {unit} per image on the fitting images",
            if self.guarantee { " (guaranteed)" } else { "" },
            self.names(p),
            if p.point.thresholds.is_empty() { "-".to_string() } else { format_thresholds(&p.point.thresholds) },
            100.0 * p.point.accuracy,
            p.point.expected_cost
        );
        if let Some(h) = &best.holdout {
            let _ = writeln!(
                out,
                "held out: {} images: {acc} {:.1}%, {:.2} {unit} per image expected, {:.2} ms measured",
                self.holdout_inputs,
                100.0 * h.point.accuracy,
                h.point.expected_cost,
                h.measured_mean_ms
            );
            if let Some(b) = &h.bounds {
                let _ = writeln!(
                    out,
                    "bounds at {:.0}% confidence on those images: {acc} >= {:.1}%, cost <= {:.2} {unit} (Clopper-Pearson{})",
                    100.0 * b.confidence.get(),
                    100.0 * b.accuracy_at_least,
                    b.cost_at_most,
                    if self.guarantee { ", Learn-then-Test" } else { "" }
                );
            }
        }
        Some(out)
    }

    /// Everything as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        let point = |p: &CascadePoint| {
            json!({
                "cascade": p.stages.iter().map(|&i| &self.candidates[i].name).collect::<Vec<_>>(),
                "thresholds": p.point.thresholds,
                "accuracy": p.point.accuracy,
                "deferral": p.point.deferral,
                "reach": p.point.reach,
                "expected_cost": p.point.expected_cost,
            })
        };
        json!({
            "data": self.data,
            "unit": self.unit,
            "reference": self.reference,
            "agreement_with": self.agreement_with,
            "metric": self.metric,
            "threads": self.threads,
            "fit_inputs": self.fit_inputs,
            "holdout_inputs": self.holdout_inputs,
            "cascades_evaluated": self.replay.cascades,
            "points_evaluated": self.replay.points,
            "observe_seconds": self.observe_seconds,
            "replay_seconds": self.replay_seconds,
            "candidates": self.candidates.iter().zip(&self.costs).map(|(c, cost)| json!({
                "name": c.name,
                "model": c.stage.model,
                "input_size": c.stage.input_size,
                "cost": cost,
                "latency_ms": c.stage.latency.mean_ms,
                "energy_mj": c.stage.energy.as_ref().map(|e| e.total_mj),
            })).collect::<Vec<_>>(),
            "singles": self.replay.singles.iter().map(point).collect::<Vec<_>>(),
            "front": self.replay.front.iter().map(point).collect::<Vec<_>>(),
            "target": self.plan_target.map(|t| t.to_string()),
            "guarantee": self.guarantee,
            "best": self.best.as_ref().map(|b| json!({
                "fit": point(&b.fit),
                "holdout": b.holdout,
            })),
        })
    }

    /// Writes `search.md`, `search.csv` (every front point and every single model),
    /// `search.json` and `search.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Files> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let files = Files {
            markdown: dir.join("search.md"),
            csv: dir.join("search.csv"),
            json: dir.join("search.json"),
            svg: dir.join("search.svg"),
        };
        atomically(&files.markdown, |w| w.write_all(self.markdown().as_bytes()))?;
        atomically(&files.csv, |out| {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "kind",
                "cascade",
                "thresholds",
                "accuracy",
                "deferral",
                "expected_cost",
            ])?;
            let rows = self
                .replay
                .singles
                .iter()
                .map(|p| ("single", p))
                .chain(self.replay.front.iter().map(|p| ("front", p)));
            for (kind, p) in rows {
                w.write_record([
                    kind.to_string(),
                    self.names(p),
                    format_thresholds(&p.point.thresholds),
                    format!("{:.6}", p.point.accuracy),
                    format!("{:.6}", p.point.deferral),
                    format!("{:.6}", p.point.expected_cost),
                ])?;
            }
            w.flush()
        })?;
        let text = serde_json::to_string_pretty(&self.json())
            .map_err(|e| Error::Internal(format!("search JSON: {e}")))?;
        atomically(&files.json, |w| w.write_all(text.as_bytes()))?;
        let to_point = |p: &CascadePoint| Point {
            name: self.names(p),
            accuracy: p.point.accuracy,
            cost: p.point.expected_cost,
        };
        let front: Vec<Point> = self.replay.front.iter().map(to_point).collect();
        let mut measured: Vec<Point> = self.replay.singles.iter().map(to_point).collect();
        let best = self.best.as_ref().map(|b| to_point(&b.fit));
        if let Some(b) = &best {
            if !measured.iter().any(|m| m.name == b.name) {
                measured.push(b.clone());
            }
        }
        let cost_label = format!("expected cost per image ({})", self.unit);
        let svg = AccuracyVsCost {
            title: "Cascade search: the front and every model alone",
            cost_label: &cost_label,
            curve: &front,
            curve_label: "front (best cascade at each cost)",
            measured: &measured,
            highlight: best.as_ref().map_or("", |b| b.name.as_str()),
        }
        .svg()
        .map_err(|reason| Error::Plot {
            path: files.svg.clone(),
            reason,
        })?;
        atomically(&files.svg, |w| w.write_all(svg.as_bytes()))?;
        Ok(files)
    }
}
