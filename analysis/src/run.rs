//! Analysing a run folder (the contract with the harness, typed in `gatelab_rundir`: its
//! `config.json`, `model.safetensors`, `status.json`) over its held-out analysis split, streamed
//! batch by batch, into `analysis.json`.

use crate::error::{AnalysisError, Result};
use crate::intervene::Interventions;
use crate::stats::{Accumulator, Stats, StatsConfig};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor};
use gatelab_data::LmBatcher;
use gatelab_model::{ModelConfig, Transformer};
use gatelab_rundir::{RunDir, read_json, write_json};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `analysis.json`.
pub const ANALYSIS: &str = "analysis.json";

/// How much of the analysis split to read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// Sequences per batch (memory holds one batch's attention maps of every layer).
    pub batch_size: usize,
    /// At most this many sequences (the whole split when larger).
    pub max_sequences: usize,
    /// The statistics' settings.
    pub stats: StatsConfig,
    /// Also run the interventions on the first token's peak activation ([`crate::intervene`]):
    /// three more passes over the same sequences.
    #[serde(default)]
    pub interventions: bool,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self { batch_size: 16, max_sequences: 512, stats: StatsConfig::default(), interventions: true }
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
    /// The first token's peak activation zeroed and set to its mean (absent when not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interventions: Option<Interventions>,
}

/// A run's `analysis.json`, if it has one.
pub fn read_analysis(run: &RunDir) -> Result<Option<Analysis>> {
    let path = run.file(ANALYSIS);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(read_json(&path)?))
}

/// The trained model of a finished run folder (its `model.safetensors`, of `config`) on `device`.
pub fn load_model(run: &RunDir, config: &ModelConfig, device: &Device) -> Result<Transformer> {
    Ok(gatelab_model::weights::load_safetensors(config.init(device)?, &run.file(gatelab_rundir::folder::WEIGHTS))?)
}

/// Refuses a run that has not finished, saying where it stands and what would finish it.
pub fn require_done(run: &RunDir) -> Result<()> {
    let status = run.status()?;
    if status.is_done() {
        return Ok(());
    }
    let advice = match status {
        gatelab_rundir::Status::Running { .. }
        | gatelab_rundir::Status::Interrupted { .. }
        | gatelab_rundir::Status::Pending => "rerun its sweep to finish it (it resumes from its checkpoint)",
        gatelab_rundir::Status::Diverged { .. } => {
            "a diverged run has no final weights; lower train.lr or see docs/sweeps.md"
        }
        _ => "see its status.json; fix the cause and rerun its sweep",
    };
    Err(AnalysisError::run(&run.path, format!("not a finished run: {} ({advice})", status.describe())))
}

/// Draws `attention_maps.{svg,png,csv}` in `dir`: the attention of `model` on one sequence
/// (`tokens`: `[1, seq]`), every layer and head.
pub fn draw_attention_maps(
    model: &Transformer,
    tokens: Tensor<2, Int>,
    dir: &std::path::Path,
    name: &str,
) -> Result<()> {
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
    // The slot cures' slot weight, `[1, heads, queries]` per layer.
    let slot = probes
        .layers
        .iter()
        .map(|l| {
            let w = l.attention.slot.clone()?;
            let [_, h, q] = w.dims();
            let values: Vec<f32> = w.reshape([h * q]).into_data().iter::<f32>().collect();
            Some(values.chunks(q).map(<[f32]>::to_vec).collect())
        })
        .collect::<Option<Vec<_>>>();
    crate::charts::attention_maps(
        dir,
        "attention_maps",
        &crate::charts::AttentionMaps { title: format!("Attention maps: {name}"), maps, t, slot },
    )?;
    Ok(())
}

/// Analyses one finished run on `device`, writing `analysis.json` beside it, under the run's lock
/// (waiting while another process analyses it, or trains it again).
pub fn analyze_run(run: &RunDir, device: &Device, options: &AnalyzeOptions) -> Result<Analysis> {
    require_done(run)?;
    let _lock = run.lock("analysing")?;
    require_done(run)?;
    let file = run.read_file()?;
    if let Some(source) = &file.meta.source {
        return Err(AnalysisError::run(
            &run.path,
            format!("imported from {}: analyse it again with gatelab analyze --hf", source.display()),
        ));
    }
    if let Some(problem) = run.weights().problem() {
        return Err(AnalysisError::run(&run.path, format!("{problem}: rerun its sweep to train it again")));
    }
    let config = file.config;
    let model = load_model(run, &config.model, device)?;
    let data = config.data.prepare()?;
    let batcher = LmBatcher { pad: data.vocab.pad };
    let n = options.max_sequences.min(data.analysis.len());
    if n == 0 {
        return Err(AnalysisError::run(&run.path, "the analysis split is empty"));
    }
    let example = |i: usize| data.analysis.get(i).map_err(|e| gatelab_data::DataError::new(e.to_string()));
    let mut acc = Accumulator::new(options.stats.clone());
    // The interventions reuse these batches and this pass's loss and F-Attn as the unedited model's.
    let (mut batches, mut loss_sum, mut targets) = (Vec::new(), 0.0, 0.0);
    for start in (0..n).step_by(options.batch_size.max(1)) {
        let items = (start..(start + options.batch_size).min(n)).map(example).collect::<Result<Vec<_>, _>>()?;
        let batch = batcher.batch(items, device);
        let logits = acc.observe(&model, batch.inputs.clone());
        if options.interventions {
            let (sum, count) = crate::intervene::batch_loss(logits, &batch);
            (loss_sum, targets) = (loss_sum + sum, targets + count);
            batches.push(batch);
        }
    }
    let stats = acc.finish();
    let as_trained = (crate::intervene::mean_loss(loss_sum, targets), stats.first_token_attention());
    let interventions = if options.interventions {
        crate::intervene::intervene(&model, &batches, &options.stats, as_trained)
    } else {
        None
    };
    // The attention maps of one sequence, for the heatmap.
    let first = batcher.batch(vec![example(0)?], device);
    draw_attention_maps(&model, first.inputs, &run.path, &run.name())?;
    let analysis = Analysis { run: run.path.clone(), options: options.clone(), stats, interventions };
    write_json(&run.file(ANALYSIS), &analysis)?;
    Ok(analysis)
}
