//! The calibration profile: which models (pinned by SHA-256), how they are fed, the exit
//! metric and threshold, what each stage measured on this device, and the calibration
//! result with its threshold curve. Written by `cascade calibrate`, read by `--profile`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tune::curve::{CurvePoint, Reference, Target};
use crate::runtime::cascade::CascadeBuilder;
use crate::runtime::confidence::{Metric, Threshold};
use crate::error::{one_line, Error, Result};
use crate::runtime::model::ModelSpec;

/// A saved calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// When the profile was made (RFC 3339, UTC).
    pub created: String,
    pub tool_version: String,
    /// Board description used for estimates, if any.
    pub board: Option<String>,
    /// CPU model as the OS names it.
    pub cpu: String,
    pub arch: String,
    pub threads: usize,
    /// Exit metric name (`max-prob`, `margin`, `entropy`).
    pub metric: String,
    /// The chosen exit threshold, shared by every exit.
    pub threshold: f32,
    pub stages: Vec<ProfileStage>,
    pub calibration: Calibration,
    /// The fitted threshold curve, cheapest threshold first.
    pub curve: Vec<CurvePoint>,
}

/// One stage as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileStage {
    /// Model path as given to `calibrate` (relative paths are tried against the profile's
    /// folder first, then the working directory).
    pub model: PathBuf,
    pub sha256: String,
    /// Input tensor shape.
    pub input: Vec<usize>,
    pub load_ms: f64,
    pub latency: MeasuredLatency,
    pub energy: Option<MeasuredEnergy>,
}

/// Latency of preprocessing plus inference over warm runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredLatency {
    pub runs: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// Energy per inference and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredEnergy {
    pub meter: String,
    /// True when it comes from a board power model rather than a meter.
    pub estimate: bool,
    pub total_mj: f64,
    pub above_idle_mj: f64,
    pub idle_w: f64,
}

/// What calibration aimed at and what it reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub data: String,
    pub target: Target,
    pub margin: f64,
    pub reference: Reference,
    pub fit_inputs: usize,
    pub holdout_inputs: usize,
    /// The chosen point on the inputs it was fitted on.
    pub fit: CurvePoint,
    /// The same threshold on held-out inputs, if any were held out.
    pub holdout: Option<HeldOut>,
}

/// The chosen threshold on inputs it was not fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub point: CurvePoint,
    /// Mean per-input latency measured on those inputs (sum of the stages each reached).
    pub measured_mean_ms: f64,
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Current time as RFC 3339 UTC, seconds precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The CPU's name as the OS reports it (`model name` on x86, `Model`/`Hardware` on ARM).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for key in ["model name", "Model", "Hardware"] {
        if let Some(v) = info
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
        {
            return v.1.trim().to_string();
        }
    }
    format!("unknown {} CPU", std::env::consts::ARCH)
}

impl Profile {
    /// Writes the profile as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| Error::Profile {
            path: path.to_path_buf(),
            reason: one_line(&e),
        })?;
        let header = "# Written by `cascade calibrate`. Model hashes pin the files this was measured with.\n";
        std::fs::write(path, format!("{header}{text}")).map_err(|e| Error::io(path, e))
    }

    /// Reads a profile and checks it is still valid: known metric, threshold in range, and
    /// every model present with the hash it was calibrated with.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |reason: String| Error::Profile {
            path: path.to_path_buf(),
            reason,
        };
        let mut profile: Profile = toml::from_str(&text).map_err(|e| bad(one_line(&e)))?;
        profile.metric.parse::<Metric>().map_err(bad)?;
        Threshold::new(profile.threshold).map_err(|e| bad(e.to_string()))?;
        if profile.stages.len() < 2 {
            return Err(bad("a profile needs at least two stages".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for stage in &mut profile.stages {
            let beside = base.join(&stage.model);
            let resolved = if stage.model.is_relative() && beside.is_file() {
                beside
            } else {
                stage.model.clone()
            };
            let actual = sha256_file(&resolved)?;
            if actual != stage.sha256 {
                return Err(bad(format!(
                    "{} has changed since calibration (SHA-256 {} expected, {} found); run `cascade calibrate` again",
                    resolved.display(),
                    short(&stage.sha256),
                    short(&actual)
                )));
            }
            stage.model = resolved;
        }
        Ok(profile)
    }

    pub fn metric(&self) -> Metric {
        self.metric.parse().unwrap_or_default()
    }

    /// A cascade builder with the profile's stages, metric and threshold.
    pub fn builder(&self) -> Result<CascadeBuilder> {
        Ok(self
            .stages
            .iter()
            .fold(CascadeBuilder::new(), |b, s| {
                b.stage(ModelSpec::new(&s.model))
            })
            .metric(self.metric())
            .threshold(Threshold::new(self.threshold)?))
    }

    /// Mean latency of each stage, in stage order.
    pub fn stage_latencies_ms(&self) -> Vec<f64> {
        self.stages.iter().map(|s| s.latency.mean_ms).collect()
    }

    /// Each stage's energy per run (mJ), when every stage has one.
    pub fn stage_energies_mj(&self) -> Option<Vec<f64>> {
        self.stages
            .iter()
            .map(|s| s.energy.as_ref().map(|e| e.total_mj))
            .collect()
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::curve::Budget;

    fn point(t: f32) -> CurvePoint {
        CurvePoint {
            threshold: t,
            accuracy: 0.9,
            reach: vec![1.0, 0.4],
            deferral: 0.4,
            expected_cost: 30.0,
        }
    }

    fn profile(dir: &Path) -> Profile {
        let a = dir.join("a.onnx");
        let b = dir.join("b.onnx");
        std::fs::write(&a, b"model a").unwrap();
        std::fs::write(&b, b"model b").unwrap();
        let stage = |p: &Path, name: &str| ProfileStage {
            model: PathBuf::from(name),
            sha256: sha256_file(p).unwrap(),
            input: vec![1, 3, 224, 224],
            load_ms: 80.0,
            latency: MeasuredLatency {
                runs: 30,
                mean_ms: 20.0,
                p50_ms: 19.5,
                p95_ms: 25.0,
            },
            energy: Some(MeasuredEnergy {
                meter: "board model rpi4b (estimate)".into(),
                estimate: true,
                total_mj: 100.0,
                above_idle_mj: 40.0,
                idle_w: 2.7,
            }),
        };
        Profile {
            created: now_rfc3339(),
            tool_version: "test".into(),
            board: Some("rpi4b".into()),
            cpu: cpu_model(),
            arch: "x86_64".into(),
            threads: 1,
            metric: "max-prob".into(),
            threshold: 0.7,
            stages: vec![stage(&a, "a.onnx"), stage(&b, "b.onnx")],
            calibration: Calibration {
                data: "data".into(),
                target: Target::Budget(Budget::latency_ms(35.0).unwrap()),
                margin: 0.0,
                reference: Reference::Labels,
                fit_inputs: 350,
                holdout_inputs: 150,
                fit: point(0.7),
                holdout: Some(HeldOut {
                    point: point(0.7),
                    measured_mean_ms: 31.0,
                }),
            },
            curve: vec![point(0.0), point(0.7), point(1.0)],
        }
    }

    #[test]
    fn round_trip_resolves_models_beside_the_profile() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(d.path());
        let path = d.path().join("profile.toml");
        p.save(&path).unwrap();
        let back = Profile::load(&path).unwrap();
        assert_eq!(back.stages[0].model, d.path().join("a.onnx"));
        let mut expect = p.clone();
        for (s, b) in expect.stages.iter_mut().zip(&back.stages) {
            s.model = b.model.clone();
        }
        assert_eq!(back, expect);
        assert_eq!(back.metric(), Metric::MaxProb);
    }

    #[test]
    fn changed_model_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("profile.toml");
        profile(d.path()).save(&path).unwrap();
        std::fs::write(d.path().join("b.onnx"), b"retrained model b").unwrap();
        let err = Profile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("b.onnx has changed since calibration"),
            "{err}"
        );
        std::fs::remove_file(d.path().join("b.onnx")).unwrap();
        assert!(Profile::load(&path)
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("profile.toml");
        let mut p = profile(d.path());
        p.metric = "vibes".into();
        p.save(&path).unwrap();
        assert!(Profile::load(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown metric"));
        std::fs::write(&path, "threshold = ").unwrap();
        let err = Profile::load(&path).unwrap_err().to_string();
        assert!(err.starts_with("profile ") && !err.contains('\n'), "{err}");
    }
}
