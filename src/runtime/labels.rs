//! Class names for a classifier's output indices.

use std::path::Path;

use crate::error::{Error, Result};

/// The names of a classifier's classes, indexed like its logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    names: Vec<String>,
    /// WordNet ids (`n01440764`) when the file carries them; used to label data folders.
    synsets: Vec<Option<String>>,
}

impl Labels {
    /// Placeholder names (`class 17`) for a model that came without a labels file.
    pub fn generic(count: usize) -> Self {
        Labels {
            names: (0..count).map(|i| format!("class {i}")).collect(),
            synsets: vec![None; count],
        }
    }

    /// Reads a labels file. Two formats are accepted, line by line:
    /// `index<TAB>synset<TAB>name` (the ImageNet class list) or one plain name per line.
    /// In the tab-separated form the index must count up from 0, so a shuffled or
    /// truncated file is caught instead of silently mislabeling every class.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|reason| Error::Labels {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses the text of a labels file (see [`Labels::from_file`]).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut names = Vec::new();
        let mut synsets = Vec::new();
        for (line_no, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                [index, synset, name] => {
                    let index: usize = index
                        .trim()
                        .parse()
                        .map_err(|_| format!("line {}: bad index {index:?}", line_no + 1))?;
                    if index != names.len() {
                        return Err(format!(
                            "line {}: index {index} out of order (expected {})",
                            line_no + 1,
                            names.len()
                        ));
                    }
                    names.push(name.trim().to_string());
                    synsets.push(Some(synset.trim().to_string()));
                }
                [name] => {
                    names.push(name.trim().to_string());
                    synsets.push(None);
                }
                _ => {
                    return Err(format!(
                        "line {}: expected `index<TAB>synset<TAB>name` or a plain name",
                        line_no + 1
                    ))
                }
            }
        }
        if names.is_empty() {
            return Err("no class names".into());
        }
        Ok(Labels { names, synsets })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `index`, or `"?"` past the end (never panics).
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map(String::as_str).unwrap_or("?")
    }

    /// The class index of a WordNet id, if the labels carry synsets.
    pub fn index_of_synset(&self, synset: &str) -> Option<usize> {
        self.synsets
            .iter()
            .position(|s| s.as_deref() == Some(synset))
    }

    /// The class index whose name matches exactly.
    pub fn index_of_name(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tsv_with_synsets() {
        let l = Labels::parse("0\tn01\ttench\n1\tn02\tgoldfish\n").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.name(1), "goldfish");
        assert_eq!(l.index_of_synset("n02"), Some(1));
        assert_eq!(l.index_of_synset("n03"), None);
        assert_eq!(l.name(7), "?");
    }

    #[test]
    fn parses_plain_names() {
        let l = Labels::parse("cat\ndog\n\n").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.index_of_name("dog"), Some(1));
    }

    #[test]
    fn rejects_out_of_order_and_empty() {
        assert!(Labels::parse("1\tn01\ttench\n")
            .unwrap_err()
            .contains("out of order"));
        assert!(Labels::parse("\n\n").is_err());
        assert!(Labels::parse("a\tb\n").is_err());
    }
}
