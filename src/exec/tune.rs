//! Autotune: where an op family offers several correct lowerings
//! (`Family::lower_variants`, e.g. matmul reading a transposed operand in
//! place or copying it first), the scheduler times each once per family
//! and shapes on this adapter and keeps the fastest. Choices are kept in
//! memory and, natively, in a small JSON file next to the pipeline cache
//! (one per adapter and driver), so a process pays for each timing once.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
pub(crate) struct Tuning {
    choices: BTreeMap<String, usize>,
    path: Option<PathBuf>,
}

impl Tuning {
    /// The choices saved at `path` (none if it is missing or unreadable).
    pub fn load(path: Option<PathBuf>) -> Tuning {
        let choices = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Tuning { choices, path }
    }

    pub fn get(&self, key: &str) -> Option<usize> {
        self.choices.get(key).copied()
    }

    /// Records a choice and saves the file (temporary file renamed into place).
    pub fn set(&mut self, key: String, choice: usize) {
        self.choices.insert(key, choice);
        let Some(path) = &self.path else { return };
        let saved = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let temp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temp, serde_json::to_vec_pretty(&self.choices)?)?;
            std::fs::rename(&temp, path)
        })();
        if let Err(e) = saved {
            log::warn!("webgrad: could not save the tuning file {path:?}: {e}");
        }
    }
}

/// The file name of an adapter's tuning choices.
pub(crate) fn file_name(adapter: &str, driver: &str) -> String {
    let clean: String = format!("{adapter} {driver}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("tuning_{clean}.json")
}
