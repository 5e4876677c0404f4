//! A run folder's checkpoints and weights against damage: a checkpoint whose file changed after
//! its manifest recorded it is passed over for the previous one, naming the file; with none left
//! the run restarts from step 0; a damaged or missing `model.safetensors` is not usable.

use gatelab_rundir::{Checkpoint, FileDigest, RunDir, Weights};
use std::path::{Path, PathBuf};

fn scratch(tag: &str) -> RunDir {
    let dir = std::env::temp_dir().join(format!("gatelab-integrity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    RunDir::new(dir)
}

/// Saves a checkpoint at `step` with made-up model and optimiser bytes.
fn save(run: &RunDir, step: usize) {
    let ckpt = Checkpoint { step, spikes: step / 10, mean_loss: Some(1.0 / step as f64), files: Default::default() };
    run.save_checkpoint(&ckpt, |model: &Path, optim: &Path| -> Result<(), gatelab_rundir::RunDirError> {
        std::fs::write(model, vec![step as u8; 3000]).unwrap();
        std::fs::write(optim, vec![(step + 1) as u8; 5000]).unwrap();
        Ok(())
    })
    .unwrap();
}

fn flip(path: &PathBuf, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_previous_then_to_step_0() {
    let run = scratch("fallback");
    for step in [100, 200, 300] {
        save(&run, step);
    }
    // The two newest are kept, each with its manifest.
    assert!(!run.path.join("checkpoint-100").exists());
    let resume = run.resume_point().unwrap();
    assert_eq!(resume.step(), 300);
    assert_eq!(resume.note(), None);
    let newest = resume.checkpoint.unwrap();
    assert_eq!(newest.files.len(), 2);
    assert_eq!(newest.spikes, 30);

    // One byte flipped at the same size.
    flip(&run.checkpoint_model(&newest), 1234);
    let resume = run.resume_point().unwrap();
    assert_eq!(resume.step(), 200);
    let note = resume.note().unwrap();
    assert!(note.contains("checkpoint-300/model.bpk fails its checksum"), "{note}");
    assert!(note.contains("resuming from the previous checkpoint, checkpoint-200"), "{note}");
    let previous = resume.checkpoint.unwrap();
    assert_eq!((previous.spikes, previous.mean_loss), (20, Some(1.0 / 200.0)));

    // The optimiser file cut short is named as the optimiser's.
    let optim = run.checkpoint_optim(&previous);
    let bytes = std::fs::read(&optim).unwrap();
    std::fs::write(&optim, &bytes[..100]).unwrap();
    let resume = run.resume_point().unwrap();
    assert_eq!(resume.checkpoint, None);
    let note = resume.note().unwrap();
    assert!(note.contains("checkpoint-200/optim.bpk has 100 bytes where its manifest records 5000"), "{note}");
    assert!(note.ends_with("no good checkpoint is left: restarting from step 0"), "{note}");

    // A new checkpoint over the damaged one at the same step replaces it.
    save(&run, 300);
    assert_eq!(run.resume_point().unwrap().step(), 300);
}

#[test]
fn a_truncated_checkpoint_json_does_not_stop_the_run() {
    let run = scratch("pointer");
    save(&run, 100);
    save(&run, 200);
    std::fs::write(run.file("checkpoint.json"), "{\"step\": 2").unwrap();
    assert_eq!(run.checkpoint().unwrap().map(|c| c.step), Some(200));
    assert_eq!(run.resume_point().unwrap().step(), 200);
    // A checkpoint folder cut off before its manifest (a crash mid-save) is passed over.
    std::fs::remove_file(run.path.join("checkpoint-200/checkpoint.json")).unwrap();
    let resume = run.resume_point().unwrap();
    assert_eq!(resume.step(), 100);
    assert!(resume.note().unwrap().contains("checkpoint-200/ was not finished"), "{:?}", resume.note());
}

#[test]
fn a_checkpoint_of_an_earlier_gatelab_without_a_manifest_still_resumes() {
    let run = scratch("legacy");
    std::fs::create_dir_all(run.path.join("checkpoint-40")).unwrap();
    std::fs::write(run.path.join("checkpoint-40/model.bpk"), b"m").unwrap();
    std::fs::write(run.path.join("checkpoint-40/optim.bpk"), b"o").unwrap();
    std::fs::write(run.file("checkpoint.json"), r#"{"step": 40, "spikes": 1, "mean_loss": 2.5}"#).unwrap();
    let resume = run.resume_point().unwrap();
    assert_eq!((resume.step(), resume.note()), (40, None));
    std::fs::remove_file(run.path.join("checkpoint-40/optim.bpk")).unwrap();
    let note = run.resume_point().unwrap().note().unwrap();
    assert!(note.contains("checkpoint-40/optim.bpk is missing"), "{note}");
}

#[test]
fn weights_are_verified_against_their_manifest() {
    let run = scratch("weights");
    assert_eq!(run.weights(), Weights::Missing);
    let weights = run.file("model.safetensors");
    std::fs::write(&weights, vec![7u8; 4096]).unwrap();
    assert_eq!(run.weights(), Weights::Unverified, "a folder of an earlier gatelab has no manifest");
    gatelab_rundir::write_json(&run.file("weights.json"), &FileDigest::of_file(&weights).unwrap()).unwrap();
    assert_eq!(run.weights(), Weights::Verified);
    flip(&weights, 100);
    assert!(matches!(run.weights(), Weights::Damaged(ref why) if why.contains("fails its checksum")));
    assert!(run.weights().problem().unwrap().starts_with("weights damaged"));
    std::fs::remove_file(&weights).unwrap();
    assert_eq!(run.weights(), Weights::Missing);
    assert!(run.weights().problem().unwrap().starts_with("weights missing"));
}

#[test]
fn temporary_files_are_unique_per_write() {
    let run = scratch("tmp");
    let target = run.file("x.json");
    let (a, b) = (gatelab_rundir::fs::temporary_beside(&target), gatelab_rundir::fs::temporary_beside(&target));
    assert_ne!(a, b);
    assert!(a.file_name().unwrap().to_str().unwrap().contains(&std::process::id().to_string()));
    // Writers on many threads at once each leave a whole file and no temporary behind.
    std::thread::scope(|s| {
        for k in 0..8 {
            let target = &target;
            s.spawn(move || {
                for _ in 0..20 {
                    gatelab_rundir::write_atomic(target, format!("{k}").repeat(1000).as_bytes()).unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.len() == 1000 && text.chars().all(|c| c == text.chars().next().unwrap()));
    let names: Vec<String> =
        std::fs::read_dir(&run.path).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    assert_eq!(names, ["x.json"]);
}
