//! Analysing a run folder (the contract with the harness: `config.json`'s `config.model` and
//! `config.data`, `model.safetensors`, `status.json`) over its held-out analysis split, streamed
//! batch by batch, into `analysis.json`.

use crate::stats::{Accumulator, Stats, StatsConfig};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use gatelab_data::{DataConfig, LmBatcher};
use gatelab_model::ModelConfig;
use gatelab_model::weights::load_safetensors;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How much of the analysis split to read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// Sequences per batch (memory holds one batch's attention maps of every layer).
    pub batch_size: usize,
    /// At most this many sequences (the whole split when larger).
    pub max_sequences: usize,
    /// The statistics' settings.
    pub stats: StatsConfig,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self { batch_size: 16, max_sequences: 512, stats: StatsConfig::default() }
    }
}

/// `analysis.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Analysis {
    /// The run folder.
    pub run: PathBuf,
    /// What was read.
    pub options: AnalyzeOptions,
    /// The statistics.
    pub stats: Stats,
}

/// What the analysis reads of a run folder's `config.json` (the harness writes it).
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `meta.variant`.
    pub variant: String,
    /// `meta.paper`: the paper's table and row.
    pub paper: String,
    /// `meta.seed`.
    pub seed: u64,
    /// `config.model`.
    pub model: ModelConfig,
    /// `config.data`.
    pub data: DataConfig,
}

/// Reads `dir/config.json`.
pub fn read_run(dir: &Path) -> Result<RunInfo, String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let context = |key: &str, e: serde_json::Error| format!("{}: config.{key}: {e}", path.display());
    Ok(RunInfo {
        variant: value["meta"]["variant"].as_str().unwrap_or("?").to_string(),
        paper: value["meta"]["paper"].as_str().unwrap_or_default().to_string(),
        seed: value["meta"]["seed"].as_u64().unwrap_or(0),
        model: serde_json::from_value(value["config"]["model"].clone()).map_err(|e| context("model", e))?,
        data: serde_json::from_value(value["config"]["data"].clone()).map_err(|e| context("data", e))?,
    })
}

/// The records of a JSONL log (lines that do not parse, such as a torn last line, are skipped).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default()
}

/// Whether `dir` is a finished run (`status.json` says done).
pub fn is_done(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("status.json")).is_ok_and(|s| s.contains("\"done\""))
}

/// The finished runs under `path`: the folder itself if it is a run, else its run subfolders.
pub fn runs_under(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.join("config.json").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut runs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("config.json").is_file()).collect();
    runs.sort();
    if runs.is_empty() {
        return Err(format!("{}: no run folders (with a config.json) here", path.display()));
    }
    Ok(runs)
}

/// The trained model of the run folder `dir` (its `model.safetensors`, of `config`) on `device`.
pub fn load_model(dir: &Path, config: &ModelConfig, device: &Device) -> Result<gatelab_model::Transformer, String> {
    load_safetensors(config.init(device).map_err(|e| format!("model.{e}"))?, &dir.join("model.safetensors"))
}

/// Draws `attention_maps.{svg,png,csv}` in `dir`: the attention of `model` on one sequence
/// (`tokens`: `[1, seq]`), every layer and head.
pub fn draw_attention_maps(model: &gatelab_model::Transformer, tokens: burn::tensor::Tensor<2, burn::tensor::Int>, dir: &Path, name: &str) -> Result<(), String> {
    let t = tokens.dims()[1];
    let (_, probes) = model.forward_probed(tokens);
    let maps = probes
        .layers
        .iter()
        .map(|l| {
            let attn = l.attention.attn.clone().expect("forward_probed keeps the maps");
            let [_, h, _, _] = attn.dims();
            let values: Vec<f32> = attn.reshape([h * t * t]).into_data().iter::<f32>().collect();
            values.chunks(t * t).map(<[f32]>::to_vec).collect()
        })
        .collect();
    crate::charts::attention_maps(dir, "attention_maps", &crate::charts::AttentionMaps { title: format!("Attention maps: {name}"), maps, t })?;
    Ok(())
}

/// Analyses one finished run on `device`, writing `analysis.json` beside it.
pub fn analyze_run(dir: &Path, device: &Device, options: &AnalyzeOptions) -> Result<Analysis, String> {
    if !is_done(dir) {
        return Err(format!("{}: not a finished run (status.json is not done)", dir.display()));
    }
    let RunInfo { model: model_cfg, data: data_cfg, .. } = read_run(dir)?;
    let model = load_model(dir, &model_cfg, device)?;
    let data = data_cfg.prepare().map_err(|e| e.to_string())?;
    let batcher = LmBatcher { pad: data.vocab.pad };
    let n = options.max_sequences.min(data.analysis.len());
    if n == 0 {
        return Err(format!("{}: the analysis split is empty", dir.display()));
    }
    let mut acc = Accumulator::new(options.stats.clone());
    for start in (0..n).step_by(options.batch_size) {
        let items = (start..(start + options.batch_size).min(n)).map(|i| data.analysis.get(i).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
        let batch = batcher.batch(items, device);
        acc.observe(&model, batch.inputs);
    }
    // The attention maps of one sequence, for the heatmap.
    let first = batcher.batch(vec![data.analysis.get(0).map_err(|e| e.to_string())?], device);
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    draw_attention_maps(&model, first.inputs, dir, &name)?;
    let analysis = Analysis { run: dir.to_path_buf(), options: options.clone(), stats: acc.finish() };
    let text = serde_json::to_string_pretty(&analysis).map_err(|e| e.to_string())? + "\n";
    crate::write_atomic(&dir.join("analysis.json"), &text)?;
    Ok(analysis)
}
