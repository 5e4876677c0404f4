//! Tokenizers: raw bytes, byte-level BPE trained on the corpus (Hugging Face `tokenizers`), or any
//! existing `tokenizer.json` (a released model's). One type, [`Tokenizer`], with BOS/EOS/PAD ids.

use crate::error::DataError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
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
            let vocab_size =
                n.parse().map_err(|_| DataError::new(format!("tokenizer {s}: `{n}` is not a vocabulary size")))?;
            if vocab_size < 300 {
                return Err(DataError::new(format!(
                    "tokenizer {s}: a byte-level BPE needs a vocabulary of at least 300 (256 bytes + specials + merges)"
                )));
            }
            return Ok(TokenizerSpec::Bpe { vocab_size });
        }
        let path = s.strip_prefix("file:").or_else(|| s.ends_with(".json").then_some(s));
        match path {
            Some(p) => Ok(TokenizerSpec::File { path: p.into() }),
            None => Err(DataError::new(format!("tokenizer `{s}`: expected bytes, bpe:VOCAB or file:PATH"))),
        }
    }

    /// The spec as `--tokenizer` takes it: `bytes`, `bpe:4096`, `file:PATH`.
    pub fn describe(&self) -> String {
        match self {
            TokenizerSpec::Bytes => "bytes".into(),
            TokenizerSpec::Bpe { vocab_size } => format!("bpe:{vocab_size}"),
            TokenizerSpec::File { path } => format!("file:{}", path.display()),
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
    Hf(Box<HfTokenizer>, Option<Arc<WordCache>>),
}

/// The fast path for byte-level BPE with GPT-2's pre-tokenizer (what [`Tokenizer::train_bpe`]
/// makes): the text is split into the pre-tokenizer's words by [`gpt2_words`], and each distinct
/// word is encoded once by the Hugging Face tokenizer itself and its ids cached. BPE never merges
/// across words, so the ids are exactly `encode`'s (tested); HF's per-call `Encoding` (token
/// strings, offsets) is what made it slow.
struct WordCache {
    split: regex::Regex,
    ids: Mutex<HashMap<String, Arc<[u32]>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, vocab {})", self.describe(), self.vocab_size())
    }
}

/// Words the BPE model caches (HF's default is 10,000).
const WORD_CACHE: usize = 1 << 20;

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
        let tok =
            HfTokenizer::from_file(path).map_err(|e| DataError::in_file(path, format!("not a tokenizer.json: {e}")))?;
        Self::from_hf(tok, &path.display().to_string())
    }

    /// The tokenizer as the text of a `tokenizer.json` that [`Tokenizer::load`] reads back (the
    /// caller writes it, beside a run).
    pub fn to_json(&self) -> Result<String, DataError> {
        match &self.kind {
            Kind::Bytes => Ok(BYTES_MARKER.to_string()),
            Kind::Hf(t, _) => t.to_string(false).map_err(|e| DataError::new(format!("tokenizer.json: {e}"))),
        }
    }

    /// Finds BOS, EOS and PAD among the tokenizer's special tokens: gatelab's own, or the usual
    /// names of released models (Qwen has no BOS and uses `<|endoftext|>` for it).
    fn from_hf(mut tok: HfTokenizer, what: &str) -> Result<Self, DataError> {
        // HF's BPE caches 10k words and stops caching when full; a corpus has more distinct
        // words than that (tinyshakespeare ~25k forms), and uncached words are re-merged each
        // time. A larger cache makes encoding several times faster.
        if let ModelWrapper::BPE(bpe) = tok.get_model() {
            let mut bpe = bpe.clone();
            bpe.resize_cache(WORD_CACHE);
            tok.with_model(ModelWrapper::BPE(bpe));
        }
        let find = |names: &[&str]| names.iter().find_map(|n| tok.token_to_id(n));
        let eos = find(&[EOS, "</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]"]);
        let bos = find(&[BOS, "<s>", "<|begin_of_text|>", "<bos>", "[CLS]"]).or(eos);
        let pad = find(&[PAD, "<pad>", "<|pad|>", "[PAD]"]).or(eos);
        match (bos, eos, pad) {
            (Some(bos), Some(eos), Some(pad)) => {
                let fast = is_gpt2_byte_level(&tok).then(|| {
                    let split = regex::Regex::new(GPT2_PATTERN).expect("GPT-2 pattern compiles");
                    Arc::new(WordCache { split, ids: Mutex::new(HashMap::new()) })
                });
                Ok(Self { kind: Kind::Hf(Box::new(tok), fast), bos, eos, pad })
            }
            _ => Err(DataError::new(format!(
                "{what}: no BOS/EOS special token found (looked for {BOS}, <s>, <|endoftext|>, </s> …)"
            ))),
        }
    }

    /// Entries in the vocabulary (specials included): the model's `vocab_size`.
    pub fn vocab_size(&self) -> usize {
        match &self.kind {
            Kind::Bytes => 259,
            Kind::Hf(t, _) => t.get_vocab_size(true),
        }
    }

    /// `bytes` or `bpe` (for logs).
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Bytes => "bytes",
            Kind::Hf(..) => "bpe",
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match &self.kind {
            Kind::Bytes => Ok(text.bytes().map(u32::from).collect()),
            Kind::Hf(t, None) => hf_encode(t, text),
            Kind::Hf(t, Some(cache)) => {
                let mut ids = Vec::with_capacity(text.len() / 3);
                let mut known = cache.ids.lock().expect("word cache");
                for word in gpt2_words(&cache.split, text) {
                    match known.get(word) {
                        Some(w) => ids.extend_from_slice(w),
                        None => {
                            let w: Arc<[u32]> = hf_encode(t, word)?.into();
                            ids.extend_from_slice(&w);
                            known.insert(word.to_string(), w);
                        }
                    }
                }
                Ok(ids)
            }
        }
    }

    /// The ids the Hugging Face tokenizer itself gives (the reference for the fast path).
    pub fn encode_reference(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match &self.kind {
            Kind::Bytes => self.encode(text),
            Kind::Hf(t, _) => hf_encode(t, text),
        }
    }

    /// Text of `ids`; special tokens are skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        match &self.kind {
            Kind::Bytes => {
                let bytes: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Kind::Hf(t, _) => t.decode(ids, true).map_err(|e| DataError::new(format!("decoding: {e}"))),
        }
    }
}

fn hf_encode(t: &HfTokenizer, text: &str) -> Result<Vec<u32>, DataError> {
    t.encode_fast(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| DataError::new(format!("tokenizing: {e}")))
}

/// GPT-2's pre-tokenizer pattern (HF `ByteLevel` with `use_regex`), less its `\s+(?!\S)`
/// lookahead, which [`gpt2_words`] applies by hand.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Whether `tok` splits words exactly as [`gpt2_words`] does: no normaliser, and a pre-tokenizer
/// that is HF's `ByteLevel` with the GPT-2 regex and no prefix space.
fn is_gpt2_byte_level(tok: &HfTokenizer) -> bool {
    let ours = serde_json::to_value(ByteLevel::new(false, true, true)).ok();
    let theirs = tok.get_pre_tokenizer().and_then(|p| serde_json::to_value(p).ok());
    tok.get_normalizer().is_none()
        && ours.is_some()
        && ours == theirs
        && matches!(tok.get_model(), ModelWrapper::BPE(_))
}

/// The words of `text` as GPT-2's pre-tokenizer cuts them. A whitespace run followed by a
/// non-space gives up its last character (`\s+(?!\S)`), which then starts the next word when it
/// is a space, or stands alone.
pub fn gpt2_words<'t>(split: &regex::Regex, text: &'t str) -> impl Iterator<Item = &'t str> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let m = split.find_at(text, pos)?;
        let mut end = m.end();
        let word = m.as_str();
        if end < text.len() && word.chars().all(char::is_whitespace) && word.chars().count() > 1 {
            end -= word.chars().next_back().map_or(0, char::len_utf8);
        }
        pos = end;
        Some(&text[m.start()..end])
    })
}
