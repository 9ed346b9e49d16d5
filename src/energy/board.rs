//! What the cost tools need to know about the device: core count, default thread count,
//! memory, and a whole-board power model for when no energy meter is present.
//!
//! Boards are described in `boards/<name>.toml`. The shipped files are embedded in the
//! binary so that `--board rpi4b` works on a device that has only the executable; a file
//! of your own is read with [`Board::from_file`]. Every file cites the sources of its power
//! figures, because an estimate is only as good as the measurement behind it.
//!
//! A shipped board file also says which `/proc/device-tree/model` strings it describes, so
//! that [`Board::detect`] finds the board the program runs on (`--board auto`, the
//! default of the commands that take `--board`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{one_line, Error, Result};

/// A board: its compute resources and a power model measured at the power input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short identifier, e.g. `rpi4b` (the file stem of the shipped files).
    pub name: String,
    /// Human-readable model, SoC and memory variant.
    pub description: String,
    /// CPU cores available to inference.
    pub cores: usize,
    /// Threads to use when the user does not say (1..=cores).
    pub default_threads: usize,
    /// Installed memory, megabytes.
    pub memory_mb: u64,
    /// Whole-board power with the CPU idle, watts.
    pub idle_watts: f64,
    /// `active_watts[k]`: whole-board power with `k + 1` cores busy, watts.
    pub active_watts: Vec<f64>,
    /// Where the power figures come from (measurement, setup, what was measured).
    pub sources: Vec<String>,
    /// The models this file describes as the device tree names them
    /// (`/proc/device-tree/model`) without the revision suffix, e.g. `Raspberry Pi 4 Model B`
    /// for `Raspberry Pi 4 Model B Rev 1.4`. Empty for a board that is never detected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_tree_models: Vec<String>,
}

/// The shipped board files, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("rpi3b", include_str!("../../boards/rpi3b.toml")),
    ("rpi4b", include_str!("../../boards/rpi4b.toml")),
    ("rpi5", include_str!("../../boards/rpi5.toml")),
    ("rpizero2w", include_str!("../../boards/rpizero2w.toml")),
    ("x86_64-host", include_str!("../../boards/x86_64-host.toml")),
];

const BUILTIN_NAMES: &[&str] = &["rpi3b", "rpi4b", "rpi5", "rpizero2w", "x86_64-host"];

/// `--board auto`: the detected board, if any.
pub const AUTO: &str = "auto";
/// `--board none`: no board power model, even where one would be detected.
pub const NONE: &str = "none";

/// Where the device tree's model string is, relative to the root: procfs first, then the
/// firmware folder it links to.
const DEVICE_TREE_MODEL: &[&str] = &[
    "proc/device-tree/model",
    "sys/firmware/devicetree/base/model",
];

/// The board's model as the device tree names it under `root` (`/` normally; tests pass a
/// folder holding a fake `proc/device-tree/model`), without the trailing NUL, e.g.
/// `Raspberry Pi 4 Model B Rev 1.4`; `None` where there is no device tree (x86 machines).
pub fn device_tree_model(root: &Path) -> Option<String> {
    DEVICE_TREE_MODEL.iter().find_map(|relative| {
        let bytes = std::fs::read(root.join(relative)).ok()?;
        let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
        let model = String::from_utf8_lossy(text).trim().to_string();
        (!model.is_empty()).then_some(model)
    })
}

/// A device-tree model without its revision: `Raspberry Pi 4 Model B Rev 1.4` ->
/// `Raspberry Pi 4 Model B`.
fn without_revision(model: &str) -> &str {
    match model.rsplit_once(" Rev ") {
        Some((base, _)) => base.trim(),
        None => model.trim(),
    }
}

impl Board {
    /// One of the shipped boards ([`Board::builtin_names`]).
    pub fn builtin(name: &str) -> Result<Board> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Board::parse(text, name),
            None => Err(Error::Board {
                name: name.to_string(),
                reason: format!(
                    "unknown board; known boards: {} (or `{AUTO}` for this machine's, `{NONE}`, \
                     or a path to a board .toml file)",
                    BUILTIN_NAMES.join(", ")
                ),
            }),
        }
    }

    /// Names of the shipped boards.
    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// A board file of the user's own.
    pub fn from_file(path: &Path) -> Result<Board> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Board::parse(&text, &path.display().to_string())
    }

    /// A shipped board by name, or a board file when `spec` looks like a path (ends in
    /// `.toml` or contains a path separator), as a `--board` option would take it.
    pub fn resolve(spec: &str) -> Result<Board> {
        if spec.ends_with(".toml") || spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/')
        {
            Board::from_file(Path::new(spec))
        } else {
            Board::builtin(spec)
        }
    }

    /// The shipped board whose `device_tree_models` names this device-tree model (compared
    /// without the ` Rev x.y` suffix, so that a Pi 3 Model B Plus is not taken for a Pi 3
    /// Model B), if any.
    pub fn matching(model: &str) -> Option<Board> {
        let base = without_revision(model);
        BUILTIN.iter().find_map(|(name, text)| {
            let board = match Board::parse(text, name) {
                Ok(board) => board,
                Err(e) => {
                    log::warn!("{e}");
                    return None;
                }
            };
            board
                .device_tree_models
                .iter()
                .any(|m| m.trim() == base)
                .then_some(board)
        })
    }

    /// The shipped board this machine is, from the device tree under `root` (`/` normally;
    /// tests pass a folder holding a fake `proc/device-tree/model`); `None` when there is no
    /// device tree or no shipped board file names its model.
    pub fn detect_in(root: &Path) -> Option<Board> {
        let model = device_tree_model(root)?;
        let board = Board::matching(&model);
        match &board {
            Some(b) => log::debug!("device tree model {model:?} is board {}", b.name),
            None => log::debug!("device tree model {model:?} matches no shipped board file"),
        }
        board
    }

    /// [`Board::detect_in`] on this machine.
    pub fn detect() -> Option<Board> {
        Board::detect_in(Path::new("/"))
    }

    /// The board a `--board` option asks for, with `root` as in [`Board::detect_in`]:
    ///
    /// - not given (`None`): the detected board where a shipped board file matches this
    ///   machine, else no board;
    /// - `auto`: the same, with a warning when nothing matches (the user asked for a board
    ///   model and gets none; energy then needs a meter);
    /// - `none`: no board model;
    /// - a shipped board's name or a board file: that board ([`Board::resolve`]), an error
    ///   listing the known boards for an unknown name.
    pub fn select_in(root: &Path, spec: Option<&str>) -> Result<Option<Board>> {
        let explicit = match spec.map(str::trim) {
            None => false,
            Some(AUTO) => true,
            Some(NONE) => return Ok(None),
            Some(spec) => return Board::resolve(spec).map(Some),
        };
        let model = device_tree_model(root);
        let board = model.as_deref().and_then(Board::matching);
        match (&board, &model) {
            (Some(b), Some(model)) => log::info!(
                "board {} (detected: the device tree says {model:?}; --board to override)",
                b.name
            ),
            (None, _) if explicit => log::warn!(
                "--board auto: {}; continuing without a board power model (energy needs a \
                 meter on this machine). Known boards: {}, or give a board .toml file",
                match &model {
                    Some(model) => format!("no board file matches this machine ({model:?})"),
                    None =>
                        "this machine has no device-tree model to match a board file by".to_string(),
                },
                BUILTIN_NAMES.join(", ")
            ),
            _ => log::debug!("no board detected: no board power model unless --board names one"),
        }
        Ok(board)
    }

    /// [`Board::select_in`] on this machine.
    pub fn select(spec: Option<&str>) -> Result<Option<Board>> {
        Board::select_in(Path::new("/"), spec)
    }

    /// Parses and validates a board description; `name_for_errors` names it in messages
    /// (the board name or the file path).
    pub fn parse(text: &str, name_for_errors: &str) -> Result<Board> {
        let bad = |reason: String| Error::Board {
            name: name_for_errors.to_string(),
            reason,
        };
        let board: Board = toml::from_str(text).map_err(|e| bad(one_line(&e)))?;
        board.validate().map_err(bad)?;
        Ok(board)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if self.cores == 0 {
            return Err("cores must be at least 1".into());
        }
        if !(1..=self.cores).contains(&self.default_threads) {
            return Err(format!(
                "default_threads = {} is not in 1..={} (cores)",
                self.default_threads, self.cores
            ));
        }
        if self.memory_mb == 0 {
            return Err("memory_mb must be positive".into());
        }
        if self.active_watts.len() != self.cores {
            return Err(format!(
                "active_watts has {} values, expected one per busy-core count (cores = {})",
                self.active_watts.len(),
                self.cores
            ));
        }
        let positive = |w: f64| w.is_finite() && w > 0.0;
        if !positive(self.idle_watts) {
            return Err(format!(
                "idle_watts = {} must be positive and finite",
                self.idle_watts
            ));
        }
        let mut previous = self.idle_watts;
        for (k, &w) in self.active_watts.iter().enumerate() {
            if !positive(w) {
                return Err(format!(
                    "active_watts[{k}] = {w} must be positive and finite"
                ));
            }
            if w < previous {
                return Err(format!(
                    "active_watts[{k}] = {w} is below the power with fewer busy cores ({previous}); \
                     power must not decrease as cores get busy"
                ));
            }
            previous = w;
        }
        if self.sources.iter().all(|s| s.trim().is_empty()) {
            return Err("sources is empty: say where the power figures come from".into());
        }
        if self.device_tree_models.iter().any(|m| m.trim().is_empty()) {
            return Err("device_tree_models has an empty model".into());
        }
        Ok(())
    }

    /// Whole-board power with `busy_cores` cores busy, watts. 0 means idle; more than
    /// `cores` is clamped to all cores (threads beyond the core count add no power).
    pub fn power_at(&self, busy_cores: usize) -> f64 {
        if busy_cores == 0 {
            return self.idle_watts;
        }
        let k = busy_cores.min(self.active_watts.len()) - 1;
        self.active_watts.get(k).copied().unwrap_or(self.idle_watts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_boards_all_parse_and_match_their_names() {
        assert_eq!(BUILTIN.len(), BUILTIN_NAMES.len());
        for name in Board::builtin_names() {
            let board = Board::builtin(name).unwrap();
            assert_eq!(&board.name, name);
            assert!(board.default_threads <= board.cores);
            assert!(!board.sources.is_empty());
        }
    }

    #[test]
    fn board_files_on_disk_are_the_embedded_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        for name in Board::builtin_names() {
            let from_disk = Board::from_file(&dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(from_disk, Board::builtin(name).unwrap());
        }
    }

    #[test]
    fn unknown_board_lists_known_names() {
        let e = Board::builtin("rpi9").unwrap_err().to_string();
        assert!(e.contains("rpi9"), "{e}");
        assert!(e.contains("unknown board"), "{e}");
        for name in Board::builtin_names() {
            assert!(e.contains(name), "{e}");
        }
    }

    const VALID: &str = r#"
name = "test"
description = "a test board"
cores = 2
default_threads = 2
memory_mb = 512
idle_watts = 1.0
active_watts = [2.0, 3.0]
sources = ["made up for the test"]
device_tree_models = ["Test Board"]
"#;

    fn with(field: &str, value: &str) -> String {
        VALID
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{field} =")) {
                    format!("{field} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn invalid_board_files_are_rejected_with_the_reason() {
        assert!(Board::parse(VALID, "t").is_ok());
        let cases = [
            ("default_threads", "3", "default_threads"),
            ("default_threads", "0", "default_threads"),
            ("cores", "0", "cores"),
            ("active_watts", "[2.0]", "active_watts has 1 values"),
            ("active_watts", "[3.0, 2.0]", "must not decrease"),
            ("active_watts", "[0.5, 3.0]", "must not decrease"),
            ("active_watts", "[2.0, nan]", "finite"),
            ("idle_watts", "-1.0", "idle_watts"),
            ("sources", "[]", "sources"),
            ("memory_mb", "0", "memory_mb"),
            ("device_tree_models", "[\" \"]", "device_tree_models"),
        ];
        for (field, value, expected) in cases {
            let e = Board::parse(&with(field, value), "my.toml")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("board my.toml:"), "{field}={value}: {e}");
            assert!(e.contains(expected), "{field}={value}: {e}");
        }
        let e = Board::parse(&format!("{VALID}\ncolour = \"red\""), "t").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn from_file_reads_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, VALID).unwrap();
        assert_eq!(Board::from_file(&path).unwrap().name, "test");
        assert_eq!(Board::resolve(path.to_str().unwrap()).unwrap().name, "test");
        assert!(matches!(
            Board::from_file(&dir.path().join("missing.toml")),
            Err(Error::Io { .. })
        ));
        assert_eq!(Board::resolve("rpi5").unwrap().name, "rpi5");
    }

    /// A root folder whose device tree names `model` (NUL-terminated, as the kernel writes
    /// it).
    fn root_with_model(model: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::energy::tests::put(dir.path(), "proc/device-tree/model", &format!("{model}\0"));
        dir
    }

    #[test]
    fn device_tree_models_detect_their_boards() {
        let cases = [
            ("Raspberry Pi 4 Model B Rev 1.4", Some("rpi4b")),
            ("Raspberry Pi 4 Model B Rev 1.1", Some("rpi4b")),
            ("Raspberry Pi 5 Model B Rev 1.0", Some("rpi5")),
            ("Raspberry Pi 3 Model B Rev 1.2", Some("rpi3b")),
            ("Raspberry Pi Zero 2 W Rev 1.0", Some("rpizero2w")),
            // Other boards, whose power differs: not taken for a shipped one.
            ("Raspberry Pi 3 Model B Plus Rev 1.3", None),
            ("Raspberry Pi 400 Rev 1.0", None),
            ("Raspberry Pi Compute Module 4 Rev 1.0", None),
            ("Radxa ROCK 5B", None),
        ];
        for (model, expected) in cases {
            let dir = root_with_model(model);
            assert_eq!(device_tree_model(dir.path()).as_deref(), Some(model));
            let board = Board::detect_in(dir.path());
            assert_eq!(board.map(|b| b.name).as_deref(), expected, "{model}");
        }
        // No device tree (x86), or an empty one.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(device_tree_model(empty.path()), None);
        assert!(Board::detect_in(empty.path()).is_none());
        assert!(Board::detect_in(root_with_model("").path()).is_none());
        // The firmware folder procfs links to.
        crate::energy::tests::put(
            empty.path(),
            "sys/firmware/devicetree/base/model",
            "Raspberry Pi 5 Model B Rev 1.0\0",
        );
        assert_eq!(Board::detect_in(empty.path()).unwrap().name, "rpi5");
    }

    #[test]
    fn every_shipped_pi_is_detectable_and_the_host_placeholder_is_not() {
        for name in Board::builtin_names() {
            let board = Board::builtin(name).unwrap();
            assert_eq!(
                board.device_tree_models.is_empty(),
                *name == "x86_64-host",
                "{name}"
            );
            for model in &board.device_tree_models {
                let found = Board::matching(&format!("{model} Rev 1.0")).unwrap();
                assert_eq!(&found.name, name);
            }
        }
    }

    #[test]
    fn select_follows_the_board_option() {
        let pi4 = root_with_model("Raspberry Pi 4 Model B Rev 1.4");
        let x86 = tempfile::tempdir().unwrap();
        let name = |b: Option<Board>| b.map(|b| b.name);
        // Not given, or auto: the detected board, else none.
        assert_eq!(
            name(Board::select_in(pi4.path(), None).unwrap()).as_deref(),
            Some("rpi4b")
        );
        assert_eq!(
            name(Board::select_in(pi4.path(), Some("auto")).unwrap()).as_deref(),
            Some("rpi4b")
        );
        assert_eq!(Board::select_in(x86.path(), None).unwrap(), None);
        assert_eq!(Board::select_in(x86.path(), Some("auto")).unwrap(), None);
        // none, a name or a file win over detection.
        assert_eq!(Board::select_in(pi4.path(), Some("none")).unwrap(), None);
        assert_eq!(
            name(Board::select_in(pi4.path(), Some("rpi3b")).unwrap()).as_deref(),
            Some("rpi3b")
        );
        let e = Board::select_in(pi4.path(), Some("rpi9"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown board") && e.contains("rpi4b") && e.contains("auto"),
            "{e}"
        );
    }

    #[test]
    fn power_at_clamps_busy_cores() {
        let b = Board::parse(VALID, "t").unwrap();
        assert_eq!(b.power_at(0), 1.0);
        assert_eq!(b.power_at(1), 2.0);
        assert_eq!(b.power_at(2), 3.0);
        assert_eq!(b.power_at(64), 3.0);
    }
}
