//! Where text comes from: [`CorpusSpec`] (serde, and the `--data` strings of the CLI) and the
//! loading of local text into documents, with errors that name the file and line.

use crate::error::DataError;
use crate::mqar::Mqar;
use crate::synthetic::{BigramBackcopy, ZipfMarkov};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A corpus.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CorpusSpec {
    /// Bigram-Backcopy, generated in process (the positive control for attention sinks).
    BigramBackcopy(BigramBackcopy),
    /// A Zipfian Markov "language" with document boundaries, generated in process.
    ZipfMarkov(ZipfMarkov),
    /// Multi-query associative recall, generated in process (the retrieval positive control).
    Mqar(Mqar),
    /// tinyshakespeare (Karpathy's char-rnn corpus, 1.1 MB of public-domain Shakespeare), shipped
    /// inside gatelab (`data/corpora/`): natural text that needs no download. One document.
    Tinyshakespeare,
    /// Local text: a UTF-8 file (one document), a directory of `.txt` files (one document each),
    /// or a `.jsonl` file (one document per line, from its `"text"` field).
    Text { path: PathBuf },
    /// A Hugging Face hub dataset (needs a network).
    Hub {
        /// Dataset name, e.g. `roneneldan/TinyStories`.
        dataset: String,
        /// Optional configuration/subset.
        #[serde(default)]
        subset: Option<String>,
    },
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec::BigramBackcopy(BigramBackcopy::default())
    }
}

impl CorpusSpec {
    /// Parses a `--data` value: `bigram-backcopy`, `zipf-markov`, `mqar[:vocab=V,pairs=P,queries=Q,seed=S]`,
    /// `tinyshakespeare`, `hf:NAME[:SUBSET]`, or a path.
    pub fn parse(s: &str) -> Result<Self, DataError> {
        match s {
            "" => Err(DataError::new("--data: empty")),
            "bigram-backcopy" | "bigram_backcopy" => Ok(CorpusSpec::BigramBackcopy(BigramBackcopy::default())),
            "zipf-markov" | "zipf_markov" => Ok(CorpusSpec::ZipfMarkov(ZipfMarkov::default())),
            "tinyshakespeare" => Ok(CorpusSpec::Tinyshakespeare),
            "mqar" => Ok(CorpusSpec::Mqar(Mqar::default())),
            _ if s.starts_with("mqar:") => parse_mqar(s),
            _ => match s.strip_prefix("hf:") {
                Some(rest) => {
                    let (dataset, subset) = match rest.split_once(':') {
                        Some((d, sub)) => (d.to_string(), Some(sub.to_string())),
                        None => (rest.to_string(), None),
                    };
                    if dataset.is_empty() {
                        return Err(DataError::new(format!("--data {s}: expected hf:NAME[:SUBSET]")));
                    }
                    Ok(CorpusSpec::Hub { dataset, subset })
                }
                None => Ok(CorpusSpec::Text { path: s.into() }),
            },
        }
    }

    /// The documents of a text corpus (a local path, the built-in tinyshakespeare, a hub
    /// dataset); the synthetic corpora are token streams, not text, and are refused.
    pub fn documents(&self) -> Result<Vec<String>, DataError> {
        match self {
            CorpusSpec::Tinyshakespeare => Ok(vec![TINYSHAKESPEARE.to_string()]),
            CorpusSpec::Text { path } => load_text(path),
            #[cfg(feature = "hub")]
            CorpusSpec::Hub { dataset, subset } => load_hub(dataset, subset.as_deref()),
            other => Err(DataError::new(format!(
                "{}: not a text corpus (a path, tinyshakespeare or hf:NAME)",
                other.describe()
            ))),
        }
    }

    /// Checks, without reading it, that the corpus can be had: a local path exists. A name that
    /// is neither a built-in corpus nor an existing path is refused with the built-in names (and
    /// the one it most resembles).
    pub fn check(&self) -> Result<(), DataError> {
        let CorpusSpec::Text { path } = self else { return Ok(()) };
        if path.exists() {
            return Ok(());
        }
        let name = path.display().to_string();
        let built_in = ["bigram-backcopy", "zipf-markov", "mqar", "tinyshakespeare"];
        let looks_like_name = !name.contains(['/', '.']);
        let hint = match built_in.iter().find(|b| looks_like_name && (b.starts_with(&name) || b.contains(&name))) {
            Some(b) => format!(" (did you mean {b}? built-in corpora: {})", built_in.join(", ")),
            None if looks_like_name => format!(" (built-in corpora: {})", built_in.join(", ")),
            None => String::new(),
        };
        Err(DataError::in_file(path, format!("no such file or directory{hint}")))
    }

    /// Whether the corpus is generated in process (ids, no text, no tokenizer).
    pub fn is_synthetic(&self) -> bool {
        matches!(self, CorpusSpec::BigramBackcopy(_) | CorpusSpec::ZipfMarkov(_) | CorpusSpec::Mqar(_))
    }

    /// A short name for logs and run folders.
    pub fn describe(&self) -> String {
        match self {
            CorpusSpec::BigramBackcopy(_) => "bigram-backcopy".into(),
            CorpusSpec::ZipfMarkov(_) => "zipf-markov".into(),
            CorpusSpec::Mqar(m) if *m == Mqar::default() => "mqar".into(),
            CorpusSpec::Mqar(m) => {
                format!("mqar:vocab={},pairs={},queries={},seed={}", m.vocab, m.pairs, m.query_count(), m.seed)
            }
            CorpusSpec::Tinyshakespeare => "tinyshakespeare".into(),
            CorpusSpec::Text { path } => path.display().to_string(),
            CorpusSpec::Hub { dataset, subset } => {
                format!("hf:{dataset}{}", subset.as_ref().map(|s| format!(":{s}")).unwrap_or_default())
            }
        }
    }
}

/// `mqar:vocab=V,pairs=P,queries=Q,seed=S` (any subset, the rest at their defaults).
fn parse_mqar(s: &str) -> Result<CorpusSpec, DataError> {
    let mut spec = Mqar::default();
    for setting in s["mqar:".len()..].split(',').filter(|p| !p.is_empty()) {
        let bad =
            || DataError::new(format!("--data {s}: expected mqar:vocab=V,pairs=P,queries=Q,seed=S, got {setting:?}"));
        let (key, value) = setting.split_once('=').ok_or_else(bad)?;
        let value: u64 = value.trim().parse().map_err(|_| bad())?;
        match key.trim() {
            "vocab" => spec.vocab = value as usize,
            "pairs" => spec.pairs = value as usize,
            "queries" => spec.queries = value as usize,
            "seed" => spec.seed = value,
            _ => return Err(bad()),
        }
    }
    Ok(CorpusSpec::Mqar(spec))
}

/// The text of tinyshakespeare, embedded in the binary.
pub const TINYSHAKESPEARE: &str = include_str!("../corpora/tinyshakespeare.txt");

/// Reads local text into documents. Empty documents are dropped; a corpus with none left is an
/// error.
pub fn load_text(path: &Path) -> Result<Vec<String>, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let docs = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| DataError::io(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt") && p.is_file())
            .collect();
        if files.is_empty() {
            return Err(DataError::in_file(path, "no .txt files in this directory"));
        }
        files.sort();
        files.iter().map(|f| read_utf8(f)).collect::<Result<Vec<_>, _>>()?
    } else if path.extension().is_some_and(|x| x == "jsonl") {
        read_jsonl(path)?
    } else {
        vec![read_utf8(path)?]
    };
    let docs: Vec<String> = docs.into_iter().filter(|d| !d.trim().is_empty()).collect();
    if docs.is_empty() {
        return Err(DataError::in_file(path, "the corpus is empty"));
    }
    Ok(docs)
}

fn read_utf8(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::at_line(path, line, format!("not valid UTF-8 (byte {at})"))
    })
}

fn read_jsonl(path: &Path) -> Result<Vec<String>, DataError> {
    let text = read_utf8(path)?;
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| DataError::at_line(path, i + 1, format!("invalid JSON: {e}")))?;
        match value.get("text") {
            Some(serde_json::Value::String(s)) => docs.push(s.clone()),
            Some(_) => return Err(DataError::at_line(path, i + 1, "\"text\" is not a string")),
            None => return Err(DataError::at_line(path, i + 1, "no \"text\" field")),
        }
    }
    Ok(docs)
}

/// Loads the `train` split of a hub dataset's `"text"` column through burn-dataset's
/// `HuggingfaceDatasetLoader` (which runs Python's `datasets` in a virtualenv it makes, and
/// stores the rows in SQLite under `~/.cache/burn-dataset`). Offline, or without Python, it fails
/// with one line.
#[cfg(feature = "hub")]
pub fn load_hub(dataset: &str, subset: Option<&str>) -> Result<Vec<String>, DataError> {
    use burn::data::dataset::{Dataset, HuggingfaceDatasetLoader};
    #[derive(Deserialize, Clone)]
    struct Row {
        text: String,
    }
    let name = format!("hf:{dataset}{}", subset.map(|s| format!(":{s}")).unwrap_or_default());
    let mut loader = HuggingfaceDatasetLoader::new(dataset);
    if let Some(s) = subset {
        loader = loader.with_subset(s);
    }
    let first_line = |e: &dyn std::fmt::Display| e.to_string().lines().next().unwrap_or_default().to_string();
    let rows = loader.dataset::<Row>("train").map_err(|e| {
        DataError::new(format!(
            "{name}: could not load it through the Hugging Face loader (is the network reachable?): {}",
            first_line(&e)
        ))
    })?;
    let docs = (0..rows.len())
        .map(|i| {
            rows.get(i).map(|r| r.text).map_err(|e| DataError::new(format!("{name}: row {i}: {}", first_line(&e))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let docs: Vec<String> = docs.into_iter().filter(|d| !d.trim().is_empty()).collect();
    if docs.is_empty() {
        return Err(DataError::new(format!("{name}: the corpus is empty")));
    }
    Ok(docs)
}
