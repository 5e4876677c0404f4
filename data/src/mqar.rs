//! **Multi-query associative recall** (MQAR; Arora et al. 2023, "Zoology", arXiv 2312.04927):
//! the retrieval positive control. A sequence first lists key–value pairs, then, among noise,
//! queries some of the keys again; each query's next token must be its value. Only the answers
//! count: nothing else in the sequence can be predicted, so the loss and accuracy of a run are
//! those of recall alone. A two-layer attention model learns it with an induction circuit (find
//! the earlier occurrence of the current token, copy the token after it), so it retrieves where
//! models trained on Bigram-Backcopy or text at CPU scale do not (docs/recall.md).
//!
//! Ids: keys `0..vocab/2`, values `vocab/2..vocab`, NOISE `vocab`, BOS `vocab + 1`. A sequence of
//! `len` ids:
//!
//! ```text
//! BOS k₁ v₁ k₂ v₂ … k_P v_P | noise … k_a v_a noise … k_b v_b noise …
//! ```
//!
//! The `pairs` keys are distinct (drawn without replacement), each value uniform over the values;
//! `queries` of the keys (distinct, in random order) are asked at random two-token slots after the
//! pairs, the rest is NOISE. At a longer `len` the same number of pairs and queries spread over
//! more noise, so recall is asked over longer distances: the length study (`eval-length`) reads
//! this as recall against distance.

use crate::error::DataError;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Parameters of an MQAR corpus.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mqar {
    /// Key and value ids together (even): keys are the first half, values the second.
    pub vocab: usize,
    /// Key–value pairs per sequence.
    pub pairs: usize,
    /// Keys queried per sequence (at most `pairs`; 0: every pair).
    pub queries: usize,
    /// Seed of the corpus; each sequence takes its own from its index.
    pub seed: u64,
}

impl Default for Mqar {
    fn default() -> Self {
        Self { vocab: 64, pairs: 8, queries: 0, seed: 0 }
    }
}

/// The ids a retrieval probe on a recall corpus draws from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallIds {
    /// Key ids.
    pub keys: Range<u32>,
    /// Value ids.
    pub values: Range<u32>,
}

/// One sequence with the positions the loss counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallSequence {
    /// `len` ids, BOS first.
    pub tokens: Vec<usize>,
    /// `len - 1` flags: `answers[i]` when the target of input position `i` (`tokens[i + 1]`) is a
    /// query's value.
    pub answers: Vec<bool>,
}

impl Mqar {
    /// Distinct keys (and distinct values).
    pub fn keys(&self) -> usize {
        self.vocab / 2
    }

    /// Queries per sequence.
    pub fn query_count(&self) -> usize {
        if self.queries == 0 { self.pairs } else { self.queries }
    }

    /// The NOISE id.
    pub fn noise(&self) -> usize {
        self.vocab
    }

    /// The BOS id.
    pub fn bos(&self) -> usize {
        self.vocab + 1
    }

    /// Embedding rows a model needs: keys, values, NOISE and BOS.
    pub fn vocab_size(&self) -> usize {
        self.vocab + 2
    }

    /// Key and value ids.
    pub fn ids(&self) -> RecallIds {
        let k = self.keys() as u32;
        RecallIds { keys: 0..k, values: k..2 * k }
    }

    /// Tokens the pairs and queries take, BOS included.
    pub fn min_len(&self) -> usize {
        1 + 2 * self.pairs + 2 * self.query_count()
    }

    /// Checks the parameters against the sequence length a model reads (`seq_len`: BOS and
    /// `seq_len` more ids per sequence); the error names the field.
    pub fn validate(&self, seq_len: usize) -> Result<(), DataError> {
        if self.vocab < 4 || !self.vocab.is_multiple_of(2) {
            return Err(DataError::field(
                "data.corpus.vocab",
                format!(
                    "must be an even number of at least 4 (keys are one half, values the other), got {}",
                    self.vocab
                ),
            ));
        }
        if self.pairs == 0 {
            return Err(DataError::field("data.corpus.pairs", "must be at least 1"));
        }
        if self.pairs > self.keys() {
            return Err(DataError::field(
                "data.corpus.vocab",
                format!(
                    "{} pairs need {} distinct keys, but a vocabulary of {} has {} (keys are half of it); raise vocab to at least {}",
                    self.pairs,
                    self.pairs,
                    self.vocab,
                    self.keys(),
                    2 * self.pairs
                ),
            ));
        }
        if self.queries > self.pairs {
            return Err(DataError::field(
                "data.corpus.queries",
                format!("at most pairs = {} (each key is queried once), got {}", self.pairs, self.queries),
            ));
        }
        if self.min_len() > seq_len + 1 {
            return Err(DataError::field(
                "data.corpus.pairs",
                format!(
                    "{} pairs and {} queries take {} tokens after BOS, more than data.seq_len = {seq_len} holds",
                    self.pairs,
                    self.query_count(),
                    self.min_len() - 1
                ),
            ));
        }
        Ok(())
    }

    /// Sequence number `index` of `len` ids (BOS included), the same for the same corpus seed and
    /// index on every machine. `len` must be at least [`Mqar::min_len`].
    pub fn sequence(&self, index: u64, len: usize) -> RecallSequence {
        assert!(len >= self.min_len(), "MQAR sequence of {len} ids cannot hold its pairs; validate first");
        let mut rng = Rng::new(
            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let k = self.keys();
        let (p, q) = (self.pairs, self.query_count());
        // Distinct keys: the first `p` of a partial shuffle.
        let mut keys: Vec<usize> = (0..k).collect();
        for i in 0..p {
            keys.swap(i, i + rng.below(k - i));
        }
        keys.truncate(p);
        let values: Vec<usize> = (0..p).map(|_| k + rng.below(k)).collect();
        let mut tokens = Vec::with_capacity(len);
        tokens.push(self.bos());
        for (&key, &value) in keys.iter().zip(&values) {
            tokens.extend([key, value]);
        }
        let start = tokens.len();
        tokens.resize(len, self.noise());
        // Queries: `q` distinct pairs, at `q` distinct two-token slots after the pairs.
        let mut order: Vec<usize> = (0..p).collect();
        for i in 0..q {
            order.swap(i, i + rng.below(p - i));
        }
        let slots = (len - start) / 2;
        let mut slot_ids: Vec<usize> = (0..slots).collect();
        for i in 0..q {
            slot_ids.swap(i, i + rng.below(slots - i));
        }
        let mut answers = vec![false; len - 1];
        for (&pair, &slot) in order[..q].iter().zip(&slot_ids[..q]) {
            let at = start + 2 * slot;
            tokens[at] = keys[pair];
            tokens[at + 1] = values[pair];
            answers[at] = true;
        }
        RecallSequence { tokens, answers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_then_queries_answered_by_their_pair() {
        let spec = Mqar { vocab: 32, pairs: 6, queries: 4, seed: 3 };
        spec.validate(63).unwrap();
        let s = spec.sequence(5, 64);
        assert_eq!(s, spec.sequence(5, 64), "deterministic");
        assert_ne!(s, spec.sequence(6, 64));
        assert_eq!(s.tokens.len(), 64);
        assert_eq!(s.answers.len(), 63);
        assert_eq!(s.tokens[0], spec.bos());
        let pairs: std::collections::HashMap<usize, usize> =
            (0..6).map(|i| (s.tokens[1 + 2 * i], s.tokens[2 + 2 * i])).collect();
        assert_eq!(pairs.len(), 6, "distinct keys");
        assert!(pairs.keys().all(|&k| k < 16) && pairs.values().all(|&v| (16..32).contains(&v)));
        let answered: Vec<usize> = (0..63).filter(|&i| s.answers[i]).collect();
        assert_eq!(answered.len(), 4);
        for &i in &answered {
            assert!(i > 12, "queries come after the pairs");
            assert_eq!(pairs[&s.tokens[i]], s.tokens[i + 1], "a query's answer is its pair's value");
        }
        let asked: std::collections::HashSet<usize> = answered.iter().map(|&i| s.tokens[i]).collect();
        assert_eq!(asked.len(), 4, "each key queried once");
        let noise = s.tokens[13..].iter().filter(|&&t| t == spec.noise()).count();
        assert_eq!(noise, 64 - 13 - 8);
        // A longer sequence: the same pairs and queries, spread over more noise.
        let long = spec.sequence(5, 512);
        assert_eq!(long.answers.iter().filter(|&&a| a).count(), 4);
    }

    #[test]
    fn refuses_what_cannot_be_built() {
        let too_many = Mqar { pairs: 40, ..Mqar::default() }.validate(256).unwrap_err();
        assert_eq!(too_many.field.as_deref(), Some("data.corpus.vocab"), "{too_many}");
        let too_long = Mqar::default().validate(16).unwrap_err();
        assert_eq!(too_long.field.as_deref(), Some("data.corpus.pairs"), "{too_long}");
        assert!(too_long.message.contains("32 tokens"), "{too_long}");
        let odd = Mqar { vocab: 31, ..Mqar::default() }.validate(128).unwrap_err();
        assert_eq!(odd.field.as_deref(), Some("data.corpus.vocab"));
        let queries = Mqar { queries: 9, ..Mqar::default() }.validate(128).unwrap_err();
        assert_eq!(queries.field.as_deref(), Some("data.corpus.queries"));
        Mqar::default().validate(32).unwrap();
    }
}
