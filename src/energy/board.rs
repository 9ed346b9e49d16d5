//! What the cost tools need to know about the device: core count, default thread count,
//! memory, and a whole-board power model for when no energy meter is present.
//!
//! Boards are described in `boards/<name>.toml`. The shipped files are embedded in the
//! binary so that `--board rpi4b` works on a device that has only the executable; a file
//! of your own is read with [`Board::from_file`]. Every file cites the sources of its power
//! figures, because an estimate is only as good as the measurement behind it.

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

impl Board {
    /// One of the shipped boards ([`Board::builtin_names`]).
    pub fn builtin(name: &str) -> Result<Board> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Board::parse(text, name),
            None => Err(Error::Board {
                name: name.to_string(),
                reason: format!(
                    "unknown board; known boards: {} (or give a path to a board .toml file)",
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

    #[test]
    fn power_at_clamps_busy_cores() {
        let b = Board::parse(VALID, "t").unwrap();
        assert_eq!(b.power_at(0), 1.0);
        assert_eq!(b.power_at(1), 2.0);
        assert_eq!(b.power_at(2), 3.0);
        assert_eq!(b.power_at(64), 3.0);
    }
}
