//! The data-folder options shared by `eval`, `calibrate` and `bench`.

use std::path::PathBuf;

use cascade::tune::dataset::Dataset;
use cascade::runtime::labels::Labels;

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Labelled image folder: `<synset>_*.JPEG` files, or one subfolder per class.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Class list to label the folder with (default: the first model's labels).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl DataArgs {
    /// Opens the folder, labelled with `--classes` or else `model_labels`, cut to `--limit`.
    pub fn open(&self, model_labels: &Labels) -> cascade::Result<Dataset> {
        let labels = match &self.classes {
            Some(p) => Labels::from_file(p)?,
            None => model_labels.clone(),
        };
        let mut dataset = Dataset::open(&self.data, &labels)?;
        if let Some(n) = self.limit {
            dataset.truncate(n);
        }
        Ok(dataset)
    }
}
