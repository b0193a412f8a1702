//! Autotune: where an op family offers several correct lowerings
//! (`Family::lower_variants`, e.g. matmul reading a transposed operand in
//! place or copying it first), the scheduler times each once per family
//! and shapes on this adapter and keeps the fastest. The first time a
//! process meets a family and shapes it uses the family's first variant
//! (its best guess) and times them all the second time, so a process that
//! computes one gradient compiles one kernel per product (cold start) and
//! a training loop is tuned from its second step. Choices are kept in
//! memory and, natively, in a small JSON file next to the pipeline cache
//! (one per adapter and driver), so a process pays for each timing once.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Default)]
pub(crate) struct Tuning {
    choices: BTreeMap<String, usize>,
    path: Option<PathBuf>,
    /// Keys met once without a choice (see the module's docs).
    seen: std::collections::HashSet<String>,
}

impl Tuning {
    /// The choices saved at `path` (none if it is missing or unreadable).
    pub fn load(path: Option<PathBuf>) -> Tuning {
        let choices = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Tuning {
            choices,
            path,
            seen: Default::default(),
        }
    }

    /// True the first time it is asked about `key` (which has no choice yet).
    pub fn first_sight(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        self.seen.insert(key.to_string());
        true
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
    // The choices are indices into a family's variants: whenever a
    // family's list changes, the version changes, or a file written by
    // another version would name other variants. v3: matmul's cold-start
    // kernel first, then the subgroup kernels.
    format!("tuning_v3_{clean}.json")
}
