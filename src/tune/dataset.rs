//! Labeled image folders, in the two layouts users have:
//!
//! - flat: every image in one folder, named `<synset>_<anything>.<ext>` (the layout of the
//!   ImageNet sample sets), labelled through a class list that carries synsets;
//! - one subfolder per class, named by synset, by class name, or by class index.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::{decode_file_sized, DecodeSize, RgbImage};
use crate::runtime::Labels;

/// Which labelled folder to use and how: what evaluation, calibration and benchmarking
/// share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpec {
    /// `<synset>_*.JPEG` files, or one subfolder per class.
    pub dir: PathBuf,
    /// Class list to label the folder with; `None`: the first model's labels.
    pub classes: Option<PathBuf>,
    /// Use only the first this many images.
    pub limit: Option<usize>,
}

impl DataSpec {
    pub fn new(dir: impl Into<PathBuf>) -> DataSpec {
        DataSpec {
            dir: dir.into(),
            classes: None,
            limit: None,
        }
    }

    /// Opens the folder, labelled with `classes` or else `model_labels`, cut to `limit`.
    pub fn open(&self, model_labels: &Labels) -> Result<Dataset> {
        let labels = match &self.classes {
            Some(p) => Labels::from_file(p)?,
            None => model_labels.clone(),
        };
        let mut dataset = Dataset::open(&self.dir, &labels)?;
        if let Some(n) = self.limit {
            dataset.truncate(n);
        }
        Ok(dataset)
    }
}

/// One sample of a folder, decoded (or the reason it could not be).
#[derive(Debug)]
pub struct Decoded<'a> {
    pub sample: &'a Sample,
    pub image: Result<RgbImage>,
    /// Time spent reading and decoding the file.
    pub decode_time: Duration,
}

/// File extensions taken as images.
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "JPEG"];

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    /// Class index, `None` for an image whose label could not be derived.
    pub label: Option<usize>,
}

/// Which layout a folder was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    FlatSynsetPrefix,
    ClassSubfolders,
    Unlabeled,
}

/// The images of a data folder, sorted by path so every run sees the same order.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: LayoutKind,
    pub samples: Vec<Sample>,
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        entries.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

impl Dataset {
    /// Reads a data folder, labelling images with `labels`. Images whose class cannot be
    /// found get `label: None`; the layout is `Unlabeled` when none could be labelled.
    pub fn open(root: &Path, labels: &Labels) -> Result<Dataset> {
        if !root.is_dir() {
            return Err(Error::Dataset {
                path: root.to_path_buf(),
                reason: "not a folder".into(),
            });
        }
        let entries = sorted_entries(root)?;
        let subdirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
        let mut samples = Vec::new();
        let layout;
        if !subdirs.is_empty() {
            layout = LayoutKind::ClassSubfolders;
            for dir in subdirs {
                let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let label = labels
                    .index_of_synset(name)
                    .or_else(|| labels.index_of_name(name))
                    .or_else(|| name.parse::<usize>().ok().filter(|&i| i < labels.len()));
                if label.is_none() {
                    log::warn!(
                        "{}: no class named {name:?}; its images are unlabeled",
                        dir.display()
                    );
                }
                for path in sorted_entries(dir)?.into_iter().filter(|p| is_image(p)) {
                    samples.push(Sample { path, label });
                }
            }
        } else {
            layout = LayoutKind::FlatSynsetPrefix;
            for path in entries.into_iter().filter(|p| is_image(p)) {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let synset = stem.split('_').next().unwrap_or_default();
                let label = labels.index_of_synset(synset);
                samples.push(Sample { path, label });
            }
        }
        if samples.is_empty() {
            return Err(Error::Dataset {
                path: root.to_path_buf(),
                reason:
                    "no images (.jpg, .jpeg, .png) found, neither directly nor in class subfolders"
                        .into(),
            });
        }
        let labelled = samples.iter().filter(|s| s.label.is_some()).count();
        let layout = if labelled == 0 {
            LayoutKind::Unlabeled
        } else {
            layout
        };
        if labelled > 0 && labelled < samples.len() {
            log::warn!(
                "{}: {} of {} images have no label and are left out of accuracy",
                root.display(),
                samples.len() - labelled,
                samples.len()
            );
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            layout,
            samples,
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Every sample decoded, in order: the one loop over a folder's images. An image that
    /// cannot be decoded is logged as skipped and comes with its error, so the caller can
    /// count it (it is left out of every figure).
    /// `size`: how large the images must stay (a cascade's [`decode_size`]).
    ///
    /// [`decode_size`]: crate::runtime::Cascade::decode_size
    pub fn decoded(&self, size: DecodeSize) -> impl Iterator<Item = Decoded<'_>> + '_ {
        self.samples.iter().map(move |sample| {
            let decoded = Dataset::decode(sample, size);
            if let Err(e) = &decoded.image {
                log::warn!("skipping {e}");
            }
            decoded
        })
    }

    /// Reads and decodes one sample no larger than `size` needs, timed.
    pub fn decode(sample: &Sample, size: DecodeSize) -> Decoded<'_> {
        let t0 = Instant::now();
        let image = decode_file_sized(&sample.path, size);
        Decoded {
            sample,
            image,
            decode_time: t0.elapsed(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Keeps every `step`-th sample starting at 0 (a quick, evenly spread subset).
    pub fn take_every(&mut self, step: usize) {
        let step = step.max(1);
        let mut i = 0;
        self.samples.retain(|_| {
            i += 1;
            (i - 1) % step == 0
        });
    }

    /// Keeps at most the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        self.samples.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::parse("0\tn01\ttench\n1\tn02\tgoldfish\n").unwrap()
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn flat_layout_labels_by_synset_prefix() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("n02_goldfish.JPEG"));
        touch(&d.path().join("n01_tench.jpg"));
        touch(&d.path().join("notes.txt"));
        let ds = Dataset::open(d.path(), &labels()).unwrap();
        assert_eq!(ds.layout, LayoutKind::FlatSynsetPrefix);
        let got: Vec<Option<usize>> = ds.samples.iter().map(|s| s.label).collect();
        assert_eq!(got, vec![Some(0), Some(1)]);
    }

    #[test]
    fn subfolder_layout_by_synset_name_or_index() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("goldfish/a.png"));
        touch(&d.path().join("n01/b.jpeg"));
        touch(&d.path().join("1/c.jpg"));
        let ds = Dataset::open(d.path(), &labels()).unwrap();
        assert_eq!(ds.layout, LayoutKind::ClassSubfolders);
        let got: Vec<(String, Option<usize>)> = ds
            .samples
            .iter()
            .map(|s| {
                (
                    s.path.file_name().unwrap().to_string_lossy().into(),
                    s.label,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("c.jpg".into(), Some(1)),
                ("a.png".into(), Some(1)),
                ("b.jpeg".into(), Some(0))
            ]
        );
    }

    #[test]
    fn empty_and_missing_folders_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let err = Dataset::open(d.path(), &labels()).unwrap_err().to_string();
        assert!(err.contains("no images"), "{err}");
        assert!(Dataset::open(&d.path().join("nope"), &labels()).is_err());
    }

    #[test]
    fn unknown_names_make_an_unlabeled_set() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("holiday.jpg"));
        let ds = Dataset::open(d.path(), &labels()).unwrap();
        assert_eq!(ds.layout, LayoutKind::Unlabeled);
    }
}
