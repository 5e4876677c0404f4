//! `gatelab export`: a finished run as a Hugging Face Qwen3 checkpoint.

use gatelab::{ExperimentError, Result};
use gatelab_rundir::{RunDir, folder, write_atomic};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A finished run folder (baseline, G1 headwise or G1 elementwise).
    run: PathBuf,
    /// The checkpoint directory to write (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// Where a G1 gate's weights go: kv-grouped (the paper's released models, the default),
    /// qwen3-next (a qwen3_next checkpoint, the gate interleaved per head in q_proj; elementwise)
    /// or separate (Step-3.5's g_proj, one scalar gate per head; headwise).
    #[arg(long, value_parser = gatelab_model::hf::GateLayout::parse)]
    layout: Option<gatelab_model::hf::GateLayout>,
}

/// `gatelab export RUN --out DIR`: a run as a Hugging Face Qwen3 checkpoint (gated runs in the
/// paper's released layout). Everything is checked before the folder is created.
pub fn export(args: ExportArgs) -> Result<()> {
    let run = RunDir::new(&args.run);
    if !RunDir::is_run(&run.path) {
        let what = if run.path.exists() { "not a run folder (it has no config.json)" } else { "no such run folder" };
        return Err(gatelab::ExperimentError::file(&run.path, what));
    }
    gatelab_analysis::run::require_done(&run)?;
    let config = run.read_file()?.config;
    gatelab_model::hf::export_layout_as(&config.model, args.layout)?;
    let device = burn::tensor::Device::flex();
    let model = gatelab_analysis::run::load_model(&run, &config.model, &device)?;
    let tokenizer = run.file(folder::TOKENIZER);
    let special = if tokenizer.is_file() {
        let t = gatelab_data::Tokenizer::load(&tokenizer)?;
        Some([t.bos, t.eos, t.pad])
    } else {
        None
    };
    let checkpoint = gatelab_model::hf::export_as(&model, &config.model, special, args.layout)?;
    std::fs::create_dir_all(&args.out).map_err(|e| ExperimentError::file(&args.out, e))?;
    write_atomic(&args.out.join("model.safetensors"), &checkpoint.weights)?;
    if special.is_some() {
        let bytes = std::fs::read(&tokenizer).map_err(|e| ExperimentError::file(&tokenizer, e))?;
        write_atomic(&args.out.join("tokenizer.json"), &bytes)?;
    }
    write_atomic(&args.out.join("config.json"), checkpoint.config_json.as_bytes())?;
    eprintln!(
        "wrote {} ({})",
        args.out.display(),
        if special.is_some() {
            "config.json, model.safetensors, tokenizer.json"
        } else {
            "config.json, model.safetensors; the run's data has no tokenizer.json"
        }
    );
    Ok(())
}
