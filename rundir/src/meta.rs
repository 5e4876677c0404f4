//! `config.json`: [`RunFile`], the resolved config and [`RunMeta`], where the run comes from.

use crate::config::RunConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Another variant of a grid that resolves to a run's configuration (the paper's Switch-Head v
/// 1top1 and the value headwise gate): its name and paper row. Shown as `name (paper row)`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct OtherName {
    /// The variant.
    pub variant: String,
    /// Its paper table and row.
    pub paper: String,
}

impl std::fmt::Display for OtherName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.variant, self.paper)
    }
}

/// The run a grid pairs this one with ([`RunMeta::baseline`]): the baseline variant's run of the
/// same overrides and seed, by its name and folder hash.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct BaselineRun {
    /// The baseline variant.
    pub variant: String,
    /// Its run's hash (the folder's suffix): the same config as this run's seed would give it.
    pub hash: String,
}

/// What `config.json` records beside the config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RunMeta {
    /// The grid's name.
    #[serde(default)]
    pub grid: String,
    /// The variant.
    pub variant: String,
    /// Its paper table and row.
    #[serde(default)]
    pub paper: String,
    /// The preset it started from.
    #[serde(default)]
    pub preset: String,
    /// The command line's overrides of this run.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The seed.
    #[serde(default)]
    pub seed: u64,
    /// Other variants of the grid whose resolved configuration is this one: the run stands for
    /// them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<OtherName>,
    /// The baseline the grid compares this run with, where it names one (the paper's own
    /// pairing, for variants that change more than the gate); otherwise the report pairs a run
    /// with the ungated run of its configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRun>,
    /// The backend.
    #[serde(default)]
    pub backend: String,
    /// The device index.
    #[serde(default)]
    pub device_index: usize,
    /// Data-parallel device indices, when more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<usize>,
    /// `git rev-parse HEAD` of the code, when known.
    #[serde(default)]
    pub git_commit: String,
    /// The version of gatelab that trained it (absent in folders of gatelab before 0.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gatelab_version: String,
    /// The hash in the folder name.
    #[serde(default)]
    pub hash: String,
    /// Continued training: the run folder it started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<PathBuf>,
    /// An imported checkpoint (`gatelab analyze --hf`): the checkpoint folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The parameters that train when `train.trainable` freezes the others (absent when all do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable_params: Option<usize>,
    /// An imported checkpoint's `model_type` (`qwen3`, `qwen3_next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

/// `config.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunFile {
    /// Where the run comes from.
    pub meta: RunMeta,
    /// The resolved config.
    pub config: RunConfig,
}

impl RunFile {
    /// The config without its seed (and, for a continued run, without the parent folder it
    /// started from): runs that share it are seeds of one configuration.
    pub fn config_without_seed(&self) -> RunConfig {
        let mut c = self.config.clone();
        c.train.seed = 0;
        // A continued run's parent is its seed's run: what its parent was is pooled by the
        // parent's own configuration (`gatelab_analysis::summary`), not by its folder.
        c.train.init_from = None;
        c
    }
}
