//! Tokenizers: raw bytes, byte-level BPE trained on the corpus (Hugging Face `tokenizers`), or any
//! existing `tokenizer.json` (a released model's). One type, [`Tokenizer`], with BOS/EOS/PAD ids.

use crate::error::DataError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

/// Which tokenizer to build, as written in configs and on the command line: `bytes`,
/// `bpe:VOCAB` (trained on the training split), or `file:PATH` (a `tokenizer.json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerSpec {
    /// 256 byte values, then BOS, EOS, PAD.
    Bytes,
    /// Byte-level BPE with this many entries (specials included), trained on the corpus.
    Bpe { vocab_size: usize },
    /// An existing `tokenizer.json`.
    File { path: std::path::PathBuf },
}

impl TokenizerSpec {
    /// Parses `bytes`, `bpe:4096` or `file:PATH` (a bare path ending in `.json` also works).
    pub fn parse(s: &str) -> Result<Self, DataError> {
        if s == "bytes" {
            return Ok(TokenizerSpec::Bytes);
        }
        if let Some(n) = s.strip_prefix("bpe:") {
            let vocab_size = n.parse().map_err(|_| DataError::new(format!("tokenizer {s}: `{n}` is not a vocabulary size")))?;
            if vocab_size < 300 {
                return Err(DataError::new(format!("tokenizer {s}: a byte-level BPE needs a vocabulary of at least 300 (256 bytes + specials + merges)")));
            }
            return Ok(TokenizerSpec::Bpe { vocab_size });
        }
        let path = s.strip_prefix("file:").or_else(|| s.ends_with(".json").then_some(s));
        match path {
            Some(p) => Ok(TokenizerSpec::File { path: p.into() }),
            None => Err(DataError::new(format!("tokenizer `{s}`: expected bytes, bpe:VOCAB or file:PATH"))),
        }
    }
}

/// Special tokens gatelab adds to the BPE it trains.
pub const BOS: &str = "<|bos|>";
/// End of document.
pub const EOS: &str = "<|eos|>";
/// Padding (its targets are ignored by the loss).
pub const PAD: &str = "<|pad|>";

/// A tokenizer with the three special ids every example needs.
#[derive(Clone)]
pub struct Tokenizer {
    kind: Kind,
    /// Beginning of sequence: position 0 of every example.
    pub bos: u32,
    /// End of document.
    pub eos: u32,
    /// Padding.
    pub pad: u32,
}

#[derive(Clone)]
enum Kind {
    Bytes,
    Hf(Box<HfTokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, vocab {})", self.describe(), self.vocab_size())
    }
}

/// What gatelab writes for the byte tokenizer (it has no `tokenizer.json`).
const BYTES_MARKER: &str = r#"{"gatelab_tokenizer": "bytes"}"#;

impl Tokenizer {
    /// Bytes 0–255, BOS 256, EOS 257, PAD 258 (vocabulary 259).
    pub fn bytes() -> Self {
        Self { kind: Kind::Bytes, bos: 256, eos: 257, pad: 258 }
    }

    /// Trains a byte-level BPE of `vocab_size` entries on `texts` (BOS, EOS and PAD included).
    pub fn train_bpe<'a>(texts: impl Iterator<Item = &'a str> + Send, vocab_size: usize) -> Result<Self, DataError> {
        let specials = [BOS, EOS, PAD].map(|t| AddedToken::from(t, true)).to_vec();
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let mut tok = HfTokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tok.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
        tok.train(&mut trainer, texts).map_err(|e| DataError::new(format!("training BPE: {e}")))?;
        Self::from_hf(tok, "the trained BPE")
    }

    /// Loads a `tokenizer.json` (or the marker gatelab writes for the byte tokenizer).
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        if serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("gatelab_tokenizer").cloned())
            == Some(serde_json::Value::from("bytes"))
        {
            return Ok(Self::bytes());
        }
        let tok = HfTokenizer::from_file(path).map_err(|e| DataError::in_file(path, format!("not a tokenizer.json: {e}")))?;
        Self::from_hf(tok, &path.display().to_string())
    }

    /// Saves beside a run so it reloads with [`Tokenizer::load`] (atomically: temporary file, then
    /// rename).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let tmp = path.with_extension("json.tmp");
        match &self.kind {
            Kind::Bytes => std::fs::write(&tmp, BYTES_MARKER).map_err(|e| DataError::io(&tmp, e))?,
            Kind::Hf(t) => t.save(&tmp, false).map_err(|e| DataError::in_file(&tmp, e.to_string()))?,
        }
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    }

    /// Finds BOS, EOS and PAD among the tokenizer's special tokens: gatelab's own, or the usual
    /// names of released models (Qwen has no BOS and uses `<|endoftext|>` for it).
    fn from_hf(tok: HfTokenizer, what: &str) -> Result<Self, DataError> {
        let find = |names: &[&str]| names.iter().find_map(|n| tok.token_to_id(n));
        let eos = find(&[EOS, "</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]"]);
        let bos = find(&[BOS, "<s>", "<|begin_of_text|>", "<bos>", "[CLS]"]).or(eos);
        let pad = find(&[PAD, "<pad>", "<|pad|>", "[PAD]"]).or(eos);
        match (bos, eos, pad) {
            (Some(bos), Some(eos), Some(pad)) => Ok(Self { kind: Kind::Hf(Box::new(tok)), bos, eos, pad }),
            _ => Err(DataError::new(format!("{what}: no BOS/EOS special token found (looked for {BOS}, <s>, <|endoftext|>, </s> …)"))),
        }
    }

    /// Entries in the vocabulary (specials included): the model's `vocab_size`.
    pub fn vocab_size(&self) -> usize {
        match &self.kind {
            Kind::Bytes => 259,
            Kind::Hf(t) => t.get_vocab_size(true),
        }
    }

    /// `bytes` or `bpe` (for logs).
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Bytes => "bytes",
            Kind::Hf(_) => "bpe",
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match &self.kind {
            Kind::Bytes => Ok(text.bytes().map(u32::from).collect()),
            Kind::Hf(t) => t
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| DataError::new(format!("tokenizing: {e}"))),
        }
    }

    /// Text of `ids`; special tokens are skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        match &self.kind {
            Kind::Bytes => {
                let bytes: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Kind::Hf(t) => t.decode(ids, true).map_err(|e| DataError::new(format!("decoding: {e}"))),
        }
    }
}
