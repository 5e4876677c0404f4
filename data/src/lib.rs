//! gatelab's data: corpora and tokenizers, turned into language-modelling examples with BOS at
//! position 0, deterministic train/valid/analysis splits, and burn-dataset's `Dataset` and
//! `Batcher` so burn-train's dataloader consumes them.
//!
//! - [`corpus`]: what a corpus is ([`CorpusSpec`]) and loading local text (file, directory, JSONL).
//! - [`synthetic`]: in-process corpora, deterministic by seed, no files: Bigram-Backcopy (the
//!   attention-sink positive control) and a Zipf-Markov language with documents.
//! - [`mqar`]: multi-query associative recall, the retrieval positive control (the loss counts
//!   only its answers).
//! - [`tokenizer`]: bytes, trained byte-level BPE, or an existing `tokenizer.json`.
//! - [`examples`]: windows, splits, [`LmDataset`], [`LmBatcher`].
//! - [`retrieval`]: a needle-in-a-haystack key–value probe for long contexts, generated in process.
//! - [`error`]: the error type, [`DataError`], one line naming the file and line.

pub mod corpus;
pub mod dataset;
pub mod error;
pub mod mqar;
pub mod retrieval;
pub mod rng;
pub mod synthetic;
pub mod tokenizer;

pub use corpus::CorpusSpec;
pub use dataset::{DataConfig, LmBatch, LmBatcher, LmData, LmDataset, LmExample, Packing, Vocab};
pub use error::DataError;
pub use tokenizer::{Tokenizer, TokenizerSpec};
