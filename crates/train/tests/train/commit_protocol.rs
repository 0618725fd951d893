//! The checkpoint commit protocol: readers change nothing and see one whole save, even when a
//! writer died in the middle of one; the next writer finishes or discards it.

#![allow(clippy::unwrap_used)] // a test fails by panicking
#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use makemore_train::{
    prepare, Checkpoint, Trainer, TrainingConfig, JOURNAL_FILE, MODEL_FILE, STATE_FILE,
};

type B = Autodiff<NdArray<f32>>;

fn config() -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 40;
    c.batch_size = 8;
    c.model.n_hidden = 16;
    c.checkpoint_every = 10;
    c
}

fn words() -> Vec<String> {
    "emma olivia ava isabella sophia charlotte mia amelia harper evelyn"
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Every file in `dir` with its bytes and modification time.
fn listing(dir: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (fs::read(e.path()).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

/// Two checkpoints of one run: at step 10 (`old`) and at step 20 (`new`).
fn two_saves(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = config();
    let data = prepare(words(), &c).unwrap();
    let old = root.join("old");
    let new = root.join("new");
    Trainer::new(&data, &c, &old)
        .until(10)
        .fit::<B>(&Default::default())
        .unwrap();
    Trainer::new(&data, &c, &new)
        .until(20)
        .fit::<B>(&Default::default())
        .unwrap();
    (old, new)
}

/// `old`'s directory with `new`'s save written aside and committed by a journal, as a
/// writer killed after the commit point leaves it; `renamed` of the files already moved.
fn crashed_mid_commit(root: &Path, renamed: &[&str]) -> std::path::PathBuf {
    let (old, new) = two_saves(root);
    let crashed = root.join("crashed");
    fs::create_dir(&crashed).unwrap();
    for e in fs::read_dir(&old).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), crashed.join(e.file_name())).unwrap();
    }
    let mut files = Vec::new();
    for name in [MODEL_FILE, "optimizer.mpk", STATE_FILE] {
        if !new.join(name).exists() {
            continue;
        }
        let temp = format!(".{name}.Ab12Cd.tmp");
        let target = if renamed.contains(&name) {
            name.to_string()
        } else {
            temp.clone()
        };
        fs::copy(new.join(name), crashed.join(&target)).unwrap();
        files.push(serde_json::json!([name, temp]));
    }
    fs::write(
        crashed.join(JOURNAL_FILE),
        serde_json::json!({ "files": files }).to_string(),
    )
    .unwrap();
    // A save interrupted before its commit point: no journal names it.
    fs::write(
        crashed.join(".model.safetensors.Zz99Yy.tmp"),
        b"half a file",
    )
    .unwrap();
    crashed
}

#[test]
fn a_reader_changes_nothing_and_reads_the_committed_save() {
    for renamed in [&[][..], &[MODEL_FILE][..]] {
        let root = tempfile::tempdir().unwrap();
        let crashed = crashed_mid_commit(root.path(), renamed);
        let before = listing(&crashed);
        let ckpt = Checkpoint::open(&crashed).unwrap();
        assert_eq!(
            ckpt.state.step, 20,
            "the journal's save is the committed one"
        );
        let reference = Checkpoint::open(root.path().join("new")).unwrap();
        let weights = |c: &Checkpoint| {
            c.load_model::<NdArray<f32>>(&Default::default())
                .unwrap()
                .embedding_table()
                .unwrap()
        };
        assert_eq!(weights(&ckpt), weights(&reference));
        assert_eq!(
            listing(&crashed),
            before,
            "a reader wrote to the checkpoint"
        );
    }
}

#[test]
fn the_next_writer_finishes_the_save_and_removes_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let crashed = crashed_mid_commit(root.path(), &[MODEL_FILE]);
    // A `makemore plot` writing its picture beside the run at the same time: not the
    // writer's temp file, so recovery must leave it alone.
    let plot_temp = ".loss.png.Qq11Ww.tmp.png";
    fs::write(crashed.join(plot_temp), b"half a picture").unwrap();
    let (ckpt, lock) = Checkpoint::open_to_resume(&crashed).unwrap();
    drop(lock);
    assert_eq!(ckpt.state.step, 20);
    let names: Vec<String> = listing(&crashed).into_keys().collect();
    assert!(
        names
            .iter()
            .all(|n| n == plot_temp || (!n.contains(".tmp") && n != JOURNAL_FILE)),
        "left behind: {names:?}"
    );
    assert!(
        names.iter().any(|n| n == plot_temp),
        "another writer's temp file was deleted: {names:?}"
    );
    let new = root.path().join("new");
    for name in [MODEL_FILE, "optimizer.mpk", STATE_FILE] {
        if new.join(name).exists() {
            assert_eq!(
                fs::read(crashed.join(name)).unwrap(),
                fs::read(new.join(name)).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn a_damaged_journal_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let crashed = crashed_mid_commit(root.path(), &[]);
    fs::write(crashed.join(JOURNAL_FILE), b"{\"files\": [[").unwrap();
    let e = Checkpoint::open(&crashed).unwrap_err().to_string();
    assert!(
        e.contains(JOURNAL_FILE) && e.contains("does not parse"),
        "{e}"
    );
    let e = Checkpoint::open_to_resume(&crashed)
        .unwrap_err()
        .to_string();
    assert!(e.contains(JOURNAL_FILE), "{e}");
}
