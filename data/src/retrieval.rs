//! A needle-in-a-haystack retrieval probe, generated in process (a small, RULER-like key–value
//! lookup that needs no download), for measuring how far into a long context a model can still
//! find what it was told.
//!
//! A probe sequence is `seq_len + 1` ids with BOS at 0, like every example. Filler (held-out
//! text of the corpus) fills it; a *needle* — `key_len` random key tokens followed by
//! `value_len` random value tokens — is planted at a chosen *depth* (0: right after BOS, 1: just
//! before the query), and the sequence ends with the key again followed by the value: the
//! *query*. A model that retrieves predicts the query's value tokens from the planted needle;
//! they are scored teacher-forced at [`Needle::answer`]. The *control* is the same sequence with
//! the filler left where the needle was, so the value is not in the context: its accuracy is what
//! the model gets without retrieving (chance, or what the filler's statistics give).
//!
//! Key and value are, by default, two spans of held-out text (`from_text`: in-distribution tokens,
//! which a model that copies what it has seen can retrieve; the control measures what the text's
//! own statistics give), or else tokens drawn uniformly from the vocabulary less BOS, EOS and PAD.
//! On a recall corpus ([`crate::mqar`]) the key is one of its keys that the filler does not hold
//! and the value one of its values ([`NeedleConfig::plant_recall`]): the probe then asks what the
//! corpus trained the model to do, so a model that recalls must score above the control there.
//! Either way they are drawn by a generator seeded from `(seed, seq_len, depth, sample)`: the same
//! probe on every machine.

use crate::error::DataError;
use crate::mqar::RecallIds;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The probe's settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NeedleConfig {
    /// Tokens of the key.
    pub key_len: usize,
    /// Tokens of the value (the answer).
    pub value_len: usize,
    /// Depths at which the needle is planted, each in [0, 1].
    pub depths: Vec<f64>,
    /// Probes per (length, depth).
    pub samples: usize,
    /// Seed of the keys and values.
    pub seed: u64,
    /// Keys and values are spans of the text given to [`NeedleConfig::plant`] (else uniform
    /// random tokens).
    pub from_text: bool,
}

impl Default for NeedleConfig {
    fn default() -> Self {
        Self {
            key_len: 4,
            value_len: 4,
            depths: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            samples: 16,
            seed: 0,
            from_text: true,
        }
    }
}

/// One probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Needle {
    /// `seq_len + 1` ids: BOS, filler with the needle planted, the query at the end.
    pub tokens: Vec<u32>,
    /// The same without the planted needle.
    pub control: Vec<u32>,
    /// Position of the planted key's first token in `tokens`.
    pub at: usize,
    /// The depth asked for.
    pub depth: f64,
    /// The key.
    pub key: Vec<u32>,
    /// The value: the answer.
    pub value: Vec<u32>,
    /// Input positions whose next-token targets are the query's value: position `i` predicts
    /// `tokens[i + 1]`, so `tokens[answer.start + 1..answer.end + 1] == value`.
    pub answer: Range<usize>,
}

impl NeedleConfig {
    /// Checks the settings against a sequence length; errors name the field.
    pub fn validate(&self, seq_len: usize) -> Result<(), DataError> {
        if self.key_len == 0 || self.value_len == 0 {
            return Err(DataError::field("needle.key_len, needle.value_len", "must be at least 1"));
        }
        if self.samples == 0 {
            return Err(DataError::field("needle.samples", "must be at least 1"));
        }
        if self.depths.is_empty() || self.depths.iter().any(|d| !(0.0..=1.0).contains(d)) {
            return Err(DataError::field(
                "needle.depths",
                format!("need at least one depth, each in [0, 1], got {:?}", self.depths),
            ));
        }
        let n = self.key_len + self.value_len;
        if 2 * n + 1 > seq_len {
            return Err(DataError::field(
                "needle",
                format!("a needle and its query ({} tokens) do not fit in a sequence of {seq_len}", 2 * n),
            ));
        }
        Ok(())
    }

    /// Plants probe number `sample` at `depth` into `filler` (`seq_len` ids, BOS not included).
    /// Keys and values are spans of `text` (with `from_text` and `text` long enough), else ids in
    /// `0..vocab_size` other than the `specials` (BOS, EOS, PAD).
    pub fn plant(
        &self,
        filler: &[u32],
        depth: f64,
        sample: usize,
        vocab_size: usize,
        specials: [u32; 3],
        text: &[u32],
    ) -> Needle {
        let seq_len = filler.len();
        let n = self.key_len + self.value_len;
        assert!(2 * n < seq_len, "needle does not fit; call validate first");
        let mut rng = self.rng(seq_len, depth, sample);
        let (key, value): (Vec<u32>, Vec<u32>) = if self.from_text && text.len() > self.key_len.max(self.value_len) {
            let mut span = |len: usize| {
                let at = rng.below(text.len() - len + 1);
                text[at..at + len].to_vec()
            };
            (span(self.key_len), span(self.value_len))
        } else {
            let mut draw = || loop {
                let t = rng.below(vocab_size) as u32;
                if !specials.contains(&t) {
                    return t;
                }
            };
            ((0..self.key_len).map(|_| draw()).collect(), (0..self.value_len).map(|_| draw()).collect())
        };
        self.place(filler, specials[0], depth, key, value)
    }

    /// Plants probe number `sample` at `depth` into `filler`, a held-out sequence of a recall
    /// corpus (`seq_len` ids, BOS not included): the key is one the filler does not hold (so the
    /// control cannot know the value), the value any of the corpus's values. Recall probes are
    /// `key_len` keys and `value_len` values, as the corpus's pairs are (1 and 1).
    pub fn plant_recall(&self, filler: &[u32], depth: f64, sample: usize, bos: u32, ids: &RecallIds) -> Needle {
        assert!(2 * (self.key_len + self.value_len) < filler.len(), "needle does not fit; call validate first");
        let mut rng = self.rng(filler.len(), depth, sample);
        let unused: Vec<u32> = ids.keys.clone().filter(|k| !filler.contains(k)).collect();
        assert!(unused.len() >= self.key_len, "every key occurs in the filler; the corpus needs more keys than pairs");
        let key = (0..self.key_len).map(|_| unused[rng.below(unused.len())]).collect();
        let values = ids.values.end - ids.values.start;
        let value = (0..self.value_len).map(|_| ids.values.start + rng.below(values as usize) as u32).collect();
        self.place(filler, bos, depth, key, value)
    }

    fn rng(&self, seq_len: usize, depth: f64, sample: usize) -> Rng {
        Rng::new(
            self.seed
                ^ (seq_len as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
                ^ depth.to_bits().rotate_left(17)
                ^ (sample as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    /// The probe and its control: BOS, the filler, the needle at `depth`, the query at the end.
    fn place(&self, filler: &[u32], bos: u32, depth: f64, key: Vec<u32>, value: Vec<u32>) -> Needle {
        let seq_len = filler.len();
        let n = self.key_len + self.value_len;
        let mut control = Vec::with_capacity(seq_len + 1);
        control.push(bos);
        control.extend_from_slice(filler);
        // The query: key and value as the last n tokens.
        let query = seq_len + 1 - n;
        control[query..query + self.key_len].copy_from_slice(&key);
        control[query + self.key_len..].copy_from_slice(&value);
        // The needle: at 1 (depth 0) .. query - n (depth 1), ending before the query starts.
        let at = 1 + (depth * (query - n - 1) as f64).round() as usize;
        let mut tokens = control.clone();
        tokens[at..at + self.key_len].copy_from_slice(&key);
        tokens[at + self.key_len..at + n].copy_from_slice(&value);
        Needle { tokens, control, at, depth, key, value, answer: seq_len - self.value_len..seq_len }
    }
}
