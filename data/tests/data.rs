//! The data pipeline: tokenizer round trips, splits, BOS placement, bad inputs, and burn's
//! dataloader consuming the datasets.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use gatelab_data::synthetic::{BigramBackcopy, ZipfMarkov};
use gatelab_data::{CorpusSpec, DataConfig, LmBatcher, LmData, LmDataset, Packing, Tokenizer, TokenizerSpec};
use std::path::{Path, PathBuf};

/// tinyshakespeare, as shipped in `data/corpora/` and compiled into the crate.
fn shakespeare() -> String {
    gatelab_data::corpus::TINYSHAKESPEARE.to_string()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatelab-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn all(ds: &LmDataset) -> Vec<Vec<u32>> {
    (0..ds.len()).map(|i| ds.get(i).unwrap().tokens).collect()
}

#[test]
fn byte_round_trip_on_tinyshakespeare() {
    let text = shakespeare();
    let tok = Tokenizer::bytes();
    let ids = tok.encode(&text).unwrap();
    assert_eq!(ids.len(), text.len());
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert_eq!(tok.vocab_size(), 259);
}

#[test]
fn bpe_round_trip_save_and_reload_on_tinyshakespeare() {
    let text = shakespeare();
    let tok = Tokenizer::train_bpe(std::iter::once(text.as_str()), 1024).unwrap();
    assert_eq!(tok.vocab_size(), 1024);
    let ids = tok.encode(&text).unwrap();
    assert!(ids.len() < text.len() / 2, "BPE compresses: {} ids for {} bytes", ids.len(), text.len());
    assert_eq!(tok.decode(&ids).unwrap(), text);
    let dir = scratch("bpe");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, tok.to_json().unwrap()).unwrap();
    let again = Tokenizer::load(&path).unwrap();
    assert_eq!(again.encode(&text).unwrap(), ids);
    assert_eq!((again.bos, again.eos, again.pad), (tok.bos, tok.eos, tok.pad));
    // The byte tokenizer saves a marker that reloads too.
    std::fs::write(&path, Tokenizer::bytes().to_json().unwrap()).unwrap();
    assert_eq!(Tokenizer::load(&path).unwrap().vocab_size(), 259);
}

/// A text whose every 8-byte window is unique: numbered lines.
fn numbered_text(lines: usize) -> String {
    (0..lines).map(|i| format!("{i:07}\n")).collect()
}

fn text_config(path: &Path, seq_len: usize, seed: u64) -> DataConfig {
    DataConfig { corpus: CorpusSpec::Text { path: path.into() }, seq_len, seed, ..DataConfig::default() }
}

#[test]
fn packed_splits_are_deterministic_and_disjoint() {
    let dir = scratch("packed");
    let path = dir.join("numbers.txt");
    let text = numbered_text(2000);
    std::fs::write(&path, &text).unwrap();
    let data = text_config(&path, 32, 7).prepare().unwrap();
    let again = text_config(&path, 32, 7).prepare().unwrap();
    let other = text_config(&path, 32, 8).prepare().unwrap();
    for (a, b) in [(&data.train, &again.train), (&data.valid, &again.valid), (&data.analysis, &again.analysis)] {
        assert_eq!(all(a), all(b), "same seed, same split");
    }
    assert_ne!(all(&data.analysis), all(&other.analysis), "another seed, another split");
    // Every window's position in the text: training windows never overlap analysis or valid ones.
    let stream = text.as_bytes();
    let span = |w: &Vec<u32>| {
        let body: Vec<u8> = w[1..].iter().map(|&t| t as u8).collect();
        let at = stream.windows(body.len()).position(|x| x == body.as_slice()).expect("window comes from the text");
        at..at + body.len()
    };
    let spans = |ds: &LmDataset| all(ds).iter().map(span).collect::<Vec<_>>();
    let (train, valid, analysis) = (spans(&data.train), spans(&data.valid), spans(&data.analysis));
    assert!(!analysis.is_empty() && !valid.is_empty());
    assert_eq!(train.len() + valid.len() + analysis.len(), text.len() / 32);
    for t in &train {
        for h in analysis.iter().chain(&valid) {
            assert!(t.end <= h.start || h.end <= t.start, "train {t:?} overlaps held-out {h:?}");
        }
    }
}

#[test]
fn aligned_splits_keep_documents_whole() {
    let dir = scratch("aligned");
    let path = dir.join("docs.jsonl");
    // Document i is one distinct character repeated, so any window names its document.
    let marks: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='7').collect();
    let docs: Vec<String> = (0..60).map(|i| marks[i].to_string().repeat(5 + 3 * i)).collect();
    let lines: Vec<String> = docs.iter().map(|d| serde_json::json!({ "text": d }).to_string()).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let data =
        DataConfig { valid_fraction: 0.1, analysis_fraction: 0.1, ..text_config(&path, 24, 1) }.prepare().unwrap();
    assert_eq!(data.units, 60);
    let tok = data.tokenizer.as_ref().unwrap();
    let doc_ids = |ds: &LmDataset| {
        all(ds)
            .iter()
            .map(|w| tok.decode(w).unwrap().chars().next().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (train, valid, analysis) = (doc_ids(&data.train), doc_ids(&data.valid), doc_ids(&data.analysis));
    assert_eq!((train.len(), valid.len(), analysis.len()), (48, 6, 6));
    assert!(train.is_disjoint(&analysis) && train.is_disjoint(&valid) && valid.is_disjoint(&analysis));
    // Padding only at the end of a document's last window, after its EOS.
    for w in all(&data.train) {
        if let Some(p) = w.iter().position(|&t| t == data.vocab.pad) {
            assert!(w[p..].iter().all(|&t| t == data.vocab.pad));
            assert_eq!(w[p - 1], data.vocab.eos);
        }
    }
}

fn bos_everywhere(data: &LmData, seq_len: usize) {
    for ds in [&data.train, &data.valid, &data.analysis] {
        for i in 0..ds.len().min(500) {
            let ex = ds.get(i).unwrap().tokens;
            assert_eq!(ex.len(), seq_len + 1);
            assert_eq!(ex[0], data.vocab.bos, "example {i} starts with BOS");
            assert!(ex[1..].iter().all(|&t| t != data.vocab.bos || data.vocab.bos == data.vocab.pad), "BOS only at 0");
            assert!(ex.iter().all(|&t| (t as usize) < data.vocab.size));
        }
    }
}

#[test]
fn bos_at_position_zero_of_every_example() {
    let dir = scratch("bos");
    let file = dir.join("one.txt");
    std::fs::write(&file, numbered_text(500)).unwrap();
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..12 {
        std::fs::write(folder.join(format!("{i:02}.txt")), numbered_text(3 + i * 5)).unwrap();
    }
    let jsonl = dir.join("many.jsonl");
    std::fs::write(
        &jsonl,
        (0..30).map(|i| format!("{{\"text\": \"doc {i} {}\"}}\n", "x".repeat(i * 3))).collect::<String>(),
    )
    .unwrap();
    let small = [200, 20, 20];
    for config in [
        DataConfig {
            corpus: CorpusSpec::BigramBackcopy(BigramBackcopy::default()),
            synthetic_examples: small,
            ..DataConfig::default()
        },
        DataConfig {
            corpus: CorpusSpec::ZipfMarkov(ZipfMarkov::default()),
            synthetic_examples: small,
            ..DataConfig::default()
        },
        text_config(&file, 40, 0),
        text_config(&folder, 40, 0),
        DataConfig { packing: Packing::Packed, ..text_config(&folder, 40, 0) },
        text_config(&jsonl, 16, 0),
        DataConfig { packing: Packing::Packed, ..text_config(&jsonl, 16, 0) },
    ] {
        let data = config.prepare().unwrap();
        bos_everywhere(&data, config.seq_len);
    }
}

#[test]
fn synthetic_splits_are_deterministic_and_disjoint() {
    for corpus in [CorpusSpec::BigramBackcopy(BigramBackcopy::default()), CorpusSpec::ZipfMarkov(ZipfMarkov::default())]
    {
        let config = DataConfig { corpus, synthetic_examples: [300, 50, 50], seq_len: 64, ..DataConfig::default() };
        let (a, b) = (config.prepare().unwrap(), config.prepare().unwrap());
        assert_eq!(all(&a.analysis), all(&b.analysis));
        let train: std::collections::HashSet<_> = all(&a.train).into_iter().collect();
        assert!(all(&a.analysis).iter().all(|w| !train.contains(w)));
        let reseeded = DataConfig { seed: 1, ..config }.prepare().unwrap();
        assert_ne!(all(&a.train), all(&reseeded.train));
    }
}

fn error_of(config: DataConfig) -> String {
    config.prepare().map(|_| ()).unwrap_err().to_string()
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_file() {
    let dir = scratch("bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "  \n\n").unwrap();
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, b"line one\nline two \xff\xfe\n").unwrap();
    let jsonl = dir.join("corpus.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n").unwrap();
    let short = dir.join("short.txt");
    std::fs::write(&short, "To be, or not to be").unwrap();
    let no_txt = dir.join("empty_dir");
    std::fs::create_dir_all(&no_txt).unwrap();
    let cases = [
        (text_config(&empty, 8, 0), format!("{}: the corpus is empty", empty.display())),
        (text_config(&binary, 8, 0), format!("{}:2: not valid UTF-8 (byte 18)", binary.display())),
        (text_config(&jsonl, 8, 0), format!("{}:2: no \"text\" field", jsonl.display())),
        (text_config(&short, 64, 0), format!("{}: seq_len 64 is longer than the corpus (20 tokens)", short.display())),
        (
            text_config(&dir.join("missing.txt"), 8, 0),
            format!("{}: no such file or directory", dir.join("missing.txt").display()),
        ),
        (text_config(&no_txt, 8, 0), format!("{}: no .txt files in this directory", no_txt.display())),
    ];
    for (config, expected) in cases {
        let err = error_of(config);
        assert_eq!(err, expected);
        assert!(!err.contains('\n'));
    }
    let hub = DataConfig { corpus: CorpusSpec::parse("hf:roneneldan/TinyStories").unwrap(), ..DataConfig::default() };
    let err = error_of(hub);
    assert!(err.starts_with("hf:roneneldan/TinyStories: ") && !err.contains('\n'), "{err}");
    assert!(TokenizerSpec::parse("bpe:lots").unwrap_err().to_string().contains("not a vocabulary size"));
    assert!(Tokenizer::load(&binary).unwrap_err().to_string().starts_with(&binary.display().to_string()));
}

#[test]
fn burns_dataloader_consumes_the_dataset() {
    let config = DataConfig {
        corpus: CorpusSpec::ZipfMarkov(ZipfMarkov::default()),
        synthetic_examples: [64, 8, 8],
        seq_len: 32,
        ..DataConfig::default()
    };
    let data = config.prepare().unwrap();
    let loader = DataLoaderBuilder::new(LmBatcher { pad: data.vocab.pad })
        .batch_size(16)
        .shuffle(3)
        .num_workers(1)
        .set_device(Device::flex())
        .build(data.train.clone());
    let mut batches = 0;
    for batch in loader.iter() {
        let batch = batch.unwrap();
        assert_eq!(batch.inputs.dims(), [16, 32]);
        assert_eq!(batch.targets.dims(), [16, 32]);
        let bos: Vec<i64> = batch.inputs.slice([0..16, 0..1]).into_data().iter::<i64>().collect();
        assert!(bos.iter().all(|&t| t == data.vocab.bos as i64));
        batches += 1;
    }
    assert_eq!(batches, 4);
}

#[test]
fn the_fast_bpe_path_gives_the_hugging_face_ids() {
    let text = shakespeare();
    let tok = Tokenizer::train_bpe(std::iter::once(text.as_str()), 2048).unwrap();
    assert_eq!(tok.encode(&text).unwrap(), tok.encode_reference(&text).unwrap());
    let mixed =
        "Größe  über\u{a0}naïve\t\tcafé 12345 ６７ 東京タワー \n\n  \u{3000}end — ok?!  \r\n 'tis we'll THEY'RE  ";
    assert_eq!(tok.encode(mixed).unwrap(), tok.encode_reference(mixed).unwrap());
    assert_eq!(tok.decode(&tok.encode(mixed).unwrap()).unwrap(), mixed);
}

#[test]
fn needle_probes_are_deterministic_and_their_answers_check() {
    use gatelab_data::retrieval::NeedleConfig;
    let config = NeedleConfig::default();
    let (seq_len, vocab, specials) = (96, 259, [256, 257, 258]);
    config.validate(seq_len).unwrap();
    let filler: Vec<u32> = (0..seq_len as u32).map(|i| i % 200).collect();
    for (k, &depth) in config.depths.iter().enumerate() {
        for sample in 0..config.samples {
            let n = config.plant(&filler, depth, sample, vocab, specials, &[]);
            assert_eq!(n, config.plant(&filler, depth, sample, vocab, specials, &[]), "deterministic");
            assert_eq!(
                (n.tokens.len(), n.control.len(), n.tokens[0], n.control[0]),
                (seq_len + 1, seq_len + 1, 256, 256)
            );
            // The answer positions predict the value; the query's key precedes it.
            let (kl, vl) = (config.key_len, config.value_len);
            assert_eq!(n.tokens[n.answer.start + 1..n.answer.end + 1], n.value[..]);
            assert_eq!(n.tokens[n.answer.start + 1 - kl..n.answer.start + 1], n.key[..]);
            // The planted needle is key then value, at the depth asked, before the query.
            assert_eq!(n.tokens[n.at..n.at + kl], n.key[..]);
            assert_eq!(n.tokens[n.at + kl..n.at + kl + vl], n.value[..]);
            assert!(n.at + kl + vl <= n.answer.start + 1 - kl);
            if k == 0 {
                assert_eq!(n.at, 1);
            }
            if depth == 1.0 {
                assert_eq!(n.at + kl + vl, n.answer.start + 1 - kl, "depth 1 ends where the query starts");
            }
            // The control is the filler where the needle was, and the same query.
            assert_eq!(n.control[n.at..n.at + kl + vl], filler[n.at - 1..n.at - 1 + kl + vl]);
            assert_eq!(n.control[n.answer.start + 1 - kl..], n.tokens[n.answer.start + 1 - kl..]);
            assert!(n.key.iter().chain(&n.value).all(|t| !specials.contains(t) && (*t as usize) < vocab));
        }
    }
    // Different samples and seeds draw different needles.
    let a = config.plant(&filler, 0.5, 0, vocab, specials, &[]);
    assert_ne!(a.value, config.plant(&filler, 0.5, 1, vocab, specials, &[]).value);
    assert_ne!(a.value, NeedleConfig { seed: 1, ..config.clone() }.plant(&filler, 0.5, 0, vocab, specials, &[]).value);
    // Depths spread the needle over the context.
    let at: Vec<usize> = config.depths.iter().map(|&d| config.plant(&filler, d, 0, vocab, specials, &[]).at).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    // From text: key and value are spans of the text given, deterministic too.
    let text: Vec<u32> = (1000..1200).collect();
    let n = config.plant(&filler, 0.25, 3, vocab, specials, &text);
    assert_eq!(n, config.plant(&filler, 0.25, 3, vocab, specials, &text));
    let is_span = |s: &[u32]| text.windows(s.len()).any(|w| w == s);
    assert!(is_span(&n.key) && is_span(&n.value), "{:?} {:?}", n.key, n.value);
    assert_eq!(n.tokens[n.answer.start + 1..n.answer.end + 1], n.value[..]);
    assert!(
        NeedleConfig { from_text: false, ..config.clone() }
            .plant(&filler, 0.25, 3, vocab, specials, &text)
            .key
            .iter()
            .all(|t| *t < 259)
    );
    assert!(config.validate(16).unwrap_err().to_string().contains("do not fit"));
    assert!(
        NeedleConfig { depths: vec![1.5], ..config }
            .validate(seq_len)
            .unwrap_err()
            .to_string()
            .contains("needle.depths")
    );
}

#[test]
fn tinyshakespeare_is_built_in_and_packed() {
    let corpus = CorpusSpec::parse("tinyshakespeare").unwrap();
    assert_eq!(corpus.describe(), "tinyshakespeare");
    let data = DataConfig { corpus, seq_len: 128, ..DataConfig::default() }.prepare().unwrap();
    assert!(data.packed, "one document is packed");
    // 1,115,394 bytes cut into windows of 128 (one EOS may end the stream).
    let windows = data.train.len() + data.valid.len() + data.analysis.len();
    assert!(windows * 128 <= 1_115_395 && windows * 128 > 1_115_394 - 2 * 128, "{windows} windows");
    assert!(CorpusSpec::parse("bigram-backcopy").unwrap().documents().is_err(), "synthetic corpora are not text");
}

#[test]
fn recall_probes_use_a_key_the_sequence_lacks() {
    use gatelab_data::mqar::Mqar;
    use gatelab_data::retrieval::NeedleConfig;
    let spec = Mqar { vocab: 32, pairs: 4, ..Mqar::default() };
    let config = NeedleConfig { key_len: 1, value_len: 1, ..NeedleConfig::default() };
    for len in [32, 256] {
        let seq = spec.sequence(11, len + 1);
        let filler: Vec<u32> = seq.tokens[1..].iter().map(|&t| t as u32).collect();
        for (s, &depth) in config.depths.iter().enumerate() {
            let n = config.plant_recall(&filler, depth, s, spec.bos() as u32, &spec.ids());
            assert_eq!(n, config.plant_recall(&filler, depth, s, spec.bos() as u32, &spec.ids()), "deterministic");
            assert!(n.key[0] < 16 && !filler.contains(&n.key[0]), "a key of the corpus the filler lacks: {n:?}");
            assert!((16..32).contains(&n.value[0]));
            // With the needle the key occurs twice (needle, query); in the control only at the query.
            assert_eq!(n.tokens.iter().filter(|&&t| t == n.key[0]).count(), 2);
            assert_eq!(n.control.iter().filter(|&&t| t == n.key[0]).count(), 1);
            assert_eq!((n.tokens[n.answer.start], n.tokens[n.answer.start + 1]), (n.key[0], n.value[0]));
        }
    }
}

#[test]
fn without_bos_position_zero_holds_the_corpus_own_first_token() {
    // Generated streams: the same sequences, their BOS dropped and one more token drawn.
    for corpus in [CorpusSpec::BigramBackcopy(BigramBackcopy::default()), CorpusSpec::ZipfMarkov(ZipfMarkov::default())]
    {
        let with = DataConfig { corpus, synthetic_examples: [40, 8, 8], seq_len: 32, ..DataConfig::default() };
        let without = DataConfig { bos: false, ..with.clone() };
        let (a, b) = (with.prepare().unwrap(), without.prepare().unwrap());
        assert_eq!(a.vocab, b.vocab, "the same ids: BOS stays in the vocabulary");
        for (x, y) in all(&a.train).iter().zip(all(&b.train)) {
            assert_eq!(y.len(), 33);
            assert_eq!(x[0], a.vocab.bos);
            assert!(!y.contains(&b.vocab.bos), "no BOS anywhere: {y:?}");
            assert_eq!(x[1..], y[..32], "the same stream, shifted by the BOS");
        }
    }
    // Text: windows of seq_len + 1 corpus tokens, packed and aligned.
    let dir = scratch("nobos");
    for i in 0..12 {
        std::fs::write(dir.join(format!("{i:02}.txt")), numbered_text(20 + i * 5)).unwrap();
    }
    let text = (0..12).map(|i| numbered_text(20 + i * 5)).collect::<String>().into_bytes();
    for packing in [Packing::Packed, Packing::Aligned] {
        let config = DataConfig { packing, bos: false, ..text_config(&dir, 16, 0) };
        let data = config.prepare().unwrap();
        for window in all(&data.train).iter().chain(&all(&data.valid)) {
            assert_eq!(window.len(), 17);
            assert_ne!(window[0], data.vocab.bos);
            let real: Vec<u8> = window.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
            assert!(text.windows(real.len()).any(|w| w == real), "a window of the corpus: {real:?}");
        }
    }
    // The default is absent from the JSON, so configs written before the field keep their hash.
    let json = serde_json::to_string(&DataConfig::default()).unwrap();
    assert!(!json.contains("\"bos\""), "{json}");
    assert!(
        serde_json::to_string(&DataConfig { bos: false, ..DataConfig::default() }).unwrap().contains("\"bos\":false")
    );
    // A recall corpus refuses: its pairs follow the BOS.
    let recall =
        DataConfig { corpus: CorpusSpec::parse("mqar").unwrap(), seq_len: 32, bos: false, ..DataConfig::default() };
    assert!(recall.check().unwrap_err().to_string().contains("data.bos"), "refused before anything is prepared");
    assert_eq!(error_of(recall).lines().count(), 1);
}
