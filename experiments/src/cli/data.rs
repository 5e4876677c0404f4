//! `gatelab data` and `gatelab data-bench`.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use gatelab::{ExperimentError, Result};
use gatelab_data::{CorpusSpec, DataConfig, LmBatcher, Packing, Tokenizer, TokenizerSpec};
use gatelab_rundir::write_atomic;
use std::path::PathBuf;
use std::time::Instant;

/// Which corpus and how to cut it (shared by the commands that read data).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Corpus: bigram-backcopy, zipf-markov, mqar[:vocab=V,pairs=P,queries=Q], tinyshakespeare (built
    /// in), a text file, a directory of .txt files, a .jsonl file, or hf:NAME[:SUBSET] (cargo feature `hub`).
    #[arg(long, default_value = "bigram-backcopy")]
    pub data: String,
    /// Tokenizer for text corpora: bytes, bpe:VOCAB (trained on the training split), file:PATH.
    #[arg(long, default_value = "bytes")]
    pub tokenizer: String,
    /// Tokens per example read by the model.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// auto, aligned or packed.
    #[arg(long, default_value = "auto")]
    pub packing: String,
}

impl DataArgs {
    /// The data config these arguments describe.
    pub fn config(&self) -> Result<DataConfig> {
        let packing = match self.packing.as_str() {
            "auto" => Packing::Auto,
            "aligned" => Packing::Aligned,
            "packed" => Packing::Packed,
            other => {
                return Err(ExperimentError::option(format!("--packing {other}"), "expected auto, aligned or packed"));
            }
        };
        Ok(DataConfig {
            corpus: CorpusSpec::parse(&self.data)?,
            tokenizer: TokenizerSpec::parse(&self.tokenizer)?,
            seq_len: self.seq_len,
            seed: self.split_seed,
            packing,
            ..DataConfig::default()
        })
    }
}

/// `gatelab data`: prepares the corpus and prints what a run would train on.
pub fn inspect(args: &DataArgs, save_tokenizer: Option<&PathBuf>, json: bool) -> Result<()> {
    let config = args.config()?;
    let started = Instant::now();
    let data = config.prepare()?;
    // (label, words) for the lines, and the same as JSON.
    let mut lines: Vec<(&str, String)> = Vec::new();
    let mut obj = serde_json::Map::new();
    lines.push(("corpus", config.corpus.describe()));
    obj.insert("corpus".into(), config.corpus.describe().into());
    let tokenizer = data.tokenizer.as_ref().map_or_else(|| "synthetic ids".to_string(), |t| t.describe().to_string());
    lines.push(("tokenizer", format!("{tokenizer} (vocabulary {})", data.vocab.size)));
    obj.insert("tokenizer".into(), tokenizer.into());
    obj.insert("vocab_size".into(), data.vocab.size.into());
    let v = &data.vocab;
    let stream = v.eos == v.bos && v.pad == v.bos;
    lines.push((
        "ids",
        if stream {
            format!("BOS {} (a stream without documents: no EOS, and no padding)", v.bos)
        } else {
            format!("BOS {}  EOS {}  PAD {}", v.bos, v.eos, v.pad)
        },
    ));
    obj.insert("ids".into(), serde_json::json!({ "bos": v.bos, "eos": v.eos, "pad": v.pad, "documents": !stream }));
    if let CorpusSpec::Mqar(m) = &config.corpus {
        let k = m.keys();
        lines.push((
            "task",
            format!(
                "multi-query associative recall: {} key-value pairs (keys 0..{k}, values {k}..{}), then {} queries among NOISE {} per sequence; the loss counts the {} answers only (chance accuracy 1/{k} = {:.3})",
                m.pairs,
                2 * k,
                m.query_count(),
                m.noise(),
                m.query_count(),
                1.0 / k as f64
            ),
        ));
        obj.insert(
            "recall".into(),
            serde_json::json!({ "pairs": m.pairs, "queries": m.query_count(), "keys": k, "values": k,
                "noise": m.noise(), "answers_per_sequence": m.query_count(), "chance_accuracy": 1.0 / k as f64 }),
        );
    }
    if data.units > 0 {
        lines.push(("units", format!("{} dealt to the splits", data.units)));
        obj.insert("units".into(), data.units.into());
    }
    let generated = config.corpus.is_synthetic();
    let mut splits = serde_json::Map::new();
    for (name, ds) in [("train", &data.train), ("valid", &data.valid), ("analysis", &data.analysis)] {
        let words = if generated && name == "train" {
            format!(
                "generated on demand from the seed and the index (2^{} examples of {} tokens available)",
                ds.len().ilog2(),
                config.seq_len
            )
        } else {
            format!("{} examples of {} tokens", ds.len(), config.seq_len)
        };
        lines.push((name, words));
        splits.insert(
            name.into(),
            serde_json::json!({ "examples": ds.len(), "generated": generated && name == "train" }),
        );
    }
    obj.insert("seq_len".into(), config.seq_len.into());
    obj.insert("splits".into(), splits.into());
    lines.push(("prepared in", format!("{:.2} s", started.elapsed().as_secs_f64())));
    match (&data.tokenizer, data.analysis.get(0)) {
        (Some(t), Ok(ex)) => {
            let preview: String = t.decode(&ex.tokens)?.chars().take(120).collect();
            lines.push(("analysis[0]", format!("{preview:?}")));
            obj.insert("analysis_preview".into(), preview.into());
        }
        (None, Ok(ex)) => {
            let ids: Vec<String> = ex.tokens.iter().take(24).map(u32::to_string).collect();
            lines.push(("analysis[0]", format!("ids {} …", ids.join(" "))));
            obj.insert("analysis_preview".into(), ex.tokens.iter().take(24).copied().collect::<Vec<_>>().into());
        }
        _ => {}
    }
    if let Some(path) = save_tokenizer {
        let tok = data
            .tokenizer
            .as_ref()
            .ok_or_else(|| ExperimentError::option("--save-tokenizer", "synthetic corpora have no tokenizer"))?;
        write_atomic(path, tok.to_json()?.as_bytes())?;
        lines.push(("wrote", path.display().to_string()));
        obj.insert("tokenizer_file".into(), path.display().to_string().into());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&obj).expect("json"));
    } else {
        for (label, words) in lines {
            println!("{label:<11} {words}");
        }
    }
    Ok(())
}

/// `gatelab data-bench`: tokenisation and batching throughput on a text corpus.
pub fn bench(data: &str, vocab: usize, json: bool) -> Result<()> {
    let corpus = CorpusSpec::parse(data)?;
    let text = corpus.documents()?.join("\n");
    let mb = text.len() as f64 / 1e6;
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        // Repeat for at least a second; report the best pass.
        let (mut best, mut total, mut passes) = (f64::INFINITY, 0.0, 0);
        while total < 1.0 || passes < 3 {
            let t = Instant::now();
            f()?;
            let s = t.elapsed().as_secs_f64();
            best = best.min(s);
            total += s;
            passes += 1;
        }
        Ok(best)
    };
    let t = Instant::now();
    let bpe = Tokenizer::train_bpe(std::iter::once(text.as_str()), vocab)?;
    let train_s = t.elapsed().as_secs_f64();
    // Cold: a freshly loaded tokenizer, every word new to its cache (one pass).
    let saved = std::env::temp_dir().join(format!("gatelab-bench-tokenizer-{}.json", std::process::id()));
    write_atomic(&saved, bpe.to_json()?.as_bytes())?;
    let fresh = Tokenizer::load(&saved)?;
    let _ = std::fs::remove_file(&saved);
    let t = Instant::now();
    fresh.encode(&text)?;
    let cold_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    bpe.encode_reference(&text)?;
    let hf_s = t.elapsed().as_secs_f64();
    let mut n_ids = 0;
    let bpe_s = time(&mut || {
        n_ids = bpe.encode(&text)?.len();
        Ok(())
    })?;
    let bytes = Tokenizer::bytes();
    let bytes_s = time(&mut || Ok(bytes.encode(&text).map(|_| ())?))?;
    // Batching: packed windows of 128 through the LmBatcher onto flex, batches of 32.
    let config = DataConfig { corpus: corpus.clone(), seq_len: 128, ..DataConfig::default() };
    let data = config.prepare()?;
    let batcher = LmBatcher { pad: data.vocab.pad };
    let device = Device::flex();
    let n = data.train.len() / 32 * 32;
    let batch_s = time(&mut || {
        for start in (0..n).step_by(32) {
            let items = (start..start + 32)
                .map(|i| data.train.get(i).map_err(|e| gatelab_data::DataError::new(e.to_string())))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let _ = batcher.batch(items, &device);
        }
        Ok(())
    })?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = serde_json::json!({
        "text": corpus.describe(), "megabytes": mb, "machine_threads": threads,
        "bpe_vocab": vocab, "bpe_train_seconds": train_s, "bpe_ids": n_ids,
        "bpe_encode_mb_per_s": mb / bpe_s, "bpe_encode_cold_mb_per_s": mb / cold_s,
        "hf_encode_mb_per_s": mb / hf_s, "bytes_encode_mb_per_s": mb / bytes_s,
        "batching_tokens_per_s": (n * 128) as f64 / batch_s, "batching_examples": n,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        println!("text               {} ({mb:.2} MB)", corpus.describe());
        println!("BPE train          {train_s:.2} s for a vocabulary of {vocab}");
        println!("BPE encode         {:.1} MB/s on one thread, repeat passes ({n_ids} ids)", mb / bpe_s);
        println!("BPE encode, cold   {:.1} MB/s (first pass of a fresh tokenizer: every word new)", mb / cold_s);
        println!("HF encode          {:.1} MB/s (tokenizers' own encode, the reference)", mb / hf_s);
        println!("byte encode        {:.1} MB/s", mb / bytes_s);
        println!(
            "batching           {:.2} M tokens/s ({n} examples of 128 into batches of 32 on flex)",
            (n * 128) as f64 / batch_s / 1e6
        );
    }
    Ok(())
}
