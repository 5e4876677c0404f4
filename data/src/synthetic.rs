//! Synthetic corpora generated in process.
//!
//! **Bigram-Backcopy** (Guo et al. 2024, "Active-Dormant Attention Heads", arXiv 2410.13835): the
//! task on which 1–3-layer transformers grow an attention sink. Tokens follow a random bigram
//! chain (each row a Dirichlet(α) draw), except that after a *trigger* token the next token
//! copies the token just before the trigger. A head that implements the copy is active on
//! triggers and has nothing to do elsewhere, which it signals by attending to BOS: the sink.
//! Every sequence starts with BOS (id `vocab`).
//!
//! **Zipf-Markov**: a "language" whose tokens follow a first-order Markov chain; each row is a
//! Zipf law over its own random permutation of the vocabulary, so unigram and bigram statistics
//! are heavy-tailed like text. Documents have geometric lengths and end with EOS.

use crate::error::DataError;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Parameters of a Bigram-Backcopy corpus.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BigramBackcopy {
    /// Ordinary tokens `0..vocab`; BOS is `vocab`, so a model needs `vocab + 1` embeddings.
    pub vocab: usize,
    /// Tokens `0..triggers` are triggers.
    pub triggers: usize,
    /// Concentration of each row of the bigram matrix (smaller: more peaked).
    pub alpha: f64,
    /// Seed of the bigram matrix (the "language"); sequences take their own seeds.
    pub seed: u64,
}

impl Default for BigramBackcopy {
    fn default() -> Self {
        Self { vocab: 64, triggers: 4, alpha: 0.3, seed: 0 }
    }
}

/// A Bigram-Backcopy generator: the bigram matrix of one `seed`.
#[derive(Debug, Clone)]
pub struct BigramBackcopyCorpus {
    spec: BigramBackcopy,
    transitions: Vec<Vec<f64>>,
}

impl BigramBackcopy {
    /// The BOS token id.
    pub fn bos(&self) -> usize {
        self.vocab
    }

    /// Token ids a model must embed (`vocab` plus BOS).
    pub fn vocab_size(&self) -> usize {
        self.vocab + 1
    }

    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.vocab < 2 {
            return Err(DataError::field("data.corpus.vocab", "must be at least 2"));
        }
        if self.triggers == 0 || self.triggers >= self.vocab {
            return Err(DataError::field(
                "data.corpus.triggers",
                format!("must be between 1 and vocab - 1 = {}", self.vocab - 1),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(DataError::field("data.corpus.alpha", "must be a positive number"));
        }
        Ok(())
    }

    /// Draws the bigram matrix.
    pub fn build(&self) -> Result<BigramBackcopyCorpus, DataError> {
        self.validate()?;
        let mut rng = Rng::new(self.seed);
        let transitions = (0..self.vocab).map(|_| rng.dirichlet(self.alpha, self.vocab)).collect();
        Ok(BigramBackcopyCorpus { spec: self.clone(), transitions })
    }
}

impl BigramBackcopyCorpus {
    /// The parameters.
    pub fn spec(&self) -> &BigramBackcopy {
        &self.spec
    }

    /// Whether `token` is a trigger.
    pub fn is_trigger(&self, token: usize) -> bool {
        token < self.spec.triggers
    }

    /// Sequence number `index` of length `len` (BOS included), the same for the same corpus seed
    /// and index on every machine.
    pub fn sequence(&self, index: u64, len: usize) -> Vec<usize> {
        let mut rng = Rng::new(
            self.spec.seed.wrapping_mul(0x1000_0000_01B3) ^ index.wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let mut seq = Vec::with_capacity(len);
        seq.push(self.spec.bos());
        if len > 1 {
            seq.push(rng.below(self.spec.vocab));
        }
        while seq.len() < len {
            let n = seq.len();
            let last = seq[n - 1];
            // After a trigger, copy the token before it (unless that is BOS).
            let next =
                if self.is_trigger(last) && n >= 3 { seq[n - 2] } else { rng.categorical(&self.transitions[last]) };
            seq.push(next);
        }
        seq
    }
}

/// Parameters of a Zipf-Markov corpus. Ids: tokens `0..vocab`, BOS `vocab`, EOS `vocab + 1`,
/// PAD `vocab + 2`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ZipfMarkov {
    /// Ordinary tokens.
    pub vocab: usize,
    /// Zipf exponent of each row (larger: more predictable).
    pub exponent: f64,
    /// Mean document length in tokens.
    pub mean_doc_len: usize,
    /// Seed of the chain.
    pub seed: u64,
}

impl Default for ZipfMarkov {
    fn default() -> Self {
        Self { vocab: 512, exponent: 1.1, mean_doc_len: 96, seed: 0 }
    }
}

/// A Zipf-Markov generator: the chain of one `seed`.
#[derive(Debug, Clone)]
pub struct ZipfMarkovCorpus {
    spec: ZipfMarkov,
    /// Cumulative Zipf probabilities over ranks.
    rank_cdf: Vec<f64>,
    /// `perm[row * vocab + rank]`: the token of rank `rank` after token `row`.
    perm: Vec<u32>,
}

impl ZipfMarkov {
    /// Token ids a model must embed (`vocab` plus BOS, EOS, PAD).
    pub fn vocab_size(&self) -> usize {
        self.vocab + 3
    }

    /// Checks the parameters; the error names the field.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.vocab < 2 || self.vocab > 1 << 20 {
            return Err(DataError::field("data.corpus.vocab", "must be between 2 and 1048576"));
        }
        if !(self.exponent > 0.0 && self.exponent.is_finite()) {
            return Err(DataError::field("data.corpus.exponent", "must be a positive number"));
        }
        if self.mean_doc_len == 0 {
            return Err(DataError::field("data.corpus.mean_doc_len", "must be at least 1"));
        }
        Ok(())
    }

    /// Draws the chain.
    pub fn build(&self) -> Result<ZipfMarkovCorpus, DataError> {
        self.validate()?;
        let v = self.vocab;
        let weights: Vec<f64> = (0..v).map(|r| (r as f64 + 1.0).powf(-self.exponent)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let rank_cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let mut rng = Rng::new(self.seed);
        let mut perm = Vec::with_capacity(v * v);
        for _ in 0..v {
            let mut row: Vec<u32> = (0..v as u32).collect();
            for i in (1..v).rev() {
                row.swap(i, rng.below(i + 1));
            }
            perm.extend(row);
        }
        Ok(ZipfMarkovCorpus { spec: self.clone(), rank_cdf, perm })
    }
}

impl ZipfMarkovCorpus {
    /// The parameters.
    pub fn spec(&self) -> &ZipfMarkov {
        &self.spec
    }

    fn rank(&self, rng: &mut Rng) -> usize {
        let u = rng.uniform();
        self.rank_cdf.partition_point(|&c| c < u).min(self.spec.vocab - 1)
    }

    /// Example number `index`: BOS, then whole documents (each ended by EOS) until `len` tokens,
    /// the last one cut. Every example starts at a document start.
    pub fn sequence(&self, index: u64, len: usize) -> Vec<usize> {
        let v = self.spec.vocab;
        let (bos, eos) = (v, v + 1);
        let mut rng = Rng::new(
            self.spec.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
                ^ index.wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let stop = 1.0 / self.spec.mean_doc_len as f64;
        let mut seq = Vec::with_capacity(len);
        seq.push(bos);
        while seq.len() < len {
            // A document: a first token by its unigram rank, then the chain, until the stop draw.
            let mut prev = self.rank(&mut rng);
            seq.push(prev);
            while seq.len() < len && rng.uniform() >= stop {
                prev = self.perm[prev * v + self.rank(&mut rng)] as usize;
                seq.push(prev);
            }
            if seq.len() < len {
                seq.push(eos);
            }
        }
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_markov_is_deterministic_with_documents() {
        let corpus = ZipfMarkov::default().build().unwrap();
        let a = corpus.sequence(3, 512);
        assert_eq!(a, corpus.sequence(3, 512));
        assert_eq!(a[0], 512);
        let eos = a.iter().filter(|&&t| t == 513).count();
        assert!(eos >= 2, "several documents in 512 tokens (mean 96): {eos}");
        assert!(a[1..].iter().all(|&t| t < 514 && t != 512));
        // Zipfian: the most frequent token after a given one takes a large share.
        let mut counts = std::collections::HashMap::new();
        for i in 0..200 {
            for t in corpus.sequence(i, 256) {
                *counts.entry(t).or_insert(0usize) += 1;
            }
        }
        assert!(counts.len() > 100);
    }

    #[test]
    fn deterministic_with_bos_and_backcopy() {
        let corpus = BigramBackcopy::default().build().unwrap();
        let a = corpus.sequence(7, 128);
        assert_eq!(a, corpus.sequence(7, 128));
        assert_ne!(a, corpus.sequence(8, 128));
        assert_eq!(a[0], 64);
        assert!(a[1..].iter().all(|&t| t < 64));
        for i in 3..a.len() {
            if corpus.is_trigger(a[i - 1]) {
                assert_eq!(a[i], a[i - 2], "position {i} copies the token before the trigger");
            }
        }
        let triggers = a.iter().filter(|&&t| t < 4).count();
        assert!(triggers > 0);
    }

    #[test]
    fn bad_parameters_name_their_field() {
        let e = BigramBackcopy { triggers: 0, ..Default::default() }.build().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data.corpus.triggers"), "{e}");
        let e = BigramBackcopy { alpha: -1.0, ..Default::default() }.build().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data.corpus.alpha"), "{e}");
    }
}
