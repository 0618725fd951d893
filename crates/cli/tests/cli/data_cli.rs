//! `makemore data` on the real binary.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use crate::common;

use common::{assert_clean_error, canonical_names, makemore};

#[test]
fn stats_json_on_the_shipped_corpus_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = makemore()
        .current_dir(dir.path())
        .args(["data", "stats", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "words",
        "vocab_size",
        "train_words",
        "dev_words",
        "test_words",
        "train_examples",
        "dev_examples",
        "test_examples",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["words"], 32_257);
    assert_eq!(v["vocab_size"], 27);
    let words = v["train_words"].as_u64().unwrap()
        + v["dev_words"].as_u64().unwrap()
        + v["test_words"].as_u64().unwrap();
    assert_eq!(words, 32_257);
}

#[test]
fn stats_on_the_canonical_corpus_match_the_published_split() {
    let Some(names) = canonical_names() else {
        return;
    };
    let out = makemore()
        .args(["data", "stats", "--json", "--data"])
        .arg(&names)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["words"], 32_033);
    assert_eq!(
        (
            v["train_words"].as_u64(),
            v["dev_words"].as_u64(),
            v["test_words"].as_u64()
        ),
        (Some(25_626), Some(3_203), Some(3_204))
    );
    assert_eq!(
        (
            v["train_examples"].as_u64(),
            v["dev_examples"].as_u64(),
            v["test_examples"].as_u64()
        ),
        (Some(182_625), Some(22_655), Some(22_866))
    );
}

#[test]
fn the_canonical_shuffle_is_pythons() {
    let Some(names) = canonical_names() else {
        return;
    };
    let words = makemore_data::read_words(names).unwrap();
    let split = makemore_data::Split::new(words, 42, Default::default()).unwrap();
    assert_eq!(
        &split.train[..5],
        ["yuheng", "diondre", "xavien", "jori", "juanluis"]
    );
}

#[test]
fn show_prints_the_notebook_view() {
    let out = makemore()
        .args(["data", "show", "--limit", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "emma\n... ---> e\n..e ---> m\n.em ---> m\nemm ---> a\nmma ---> .\n"
    );
}

#[test]
fn bad_corpora_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let cases = [
        (dir.path().join("missing.txt"), "missing.txt"),
        (dir.path().to_path_buf(), "is a directory"),
        (file("empty.txt", b""), "no words found"),
        (file("blank.txt", b"\n  \n\r\n"), "no words found"),
        (
            file("utf8.txt", b"anna\nbo\xffb\n"),
            "utf8.txt:2: invalid UTF-8",
        ),
        (
            file("dot.txt", b"anna\nj.r\n"),
            "dot.txt:2: word \"j.r\" contains '.'",
        ),
        (
            file("binary.txt", b"anna\nbo\x00\x07b\n"),
            "binary.txt:2: the word contains the control character U+0000 at character 3",
        ),
    ];
    for (path, needle) in cases {
        let out = makemore()
            .args(["data", "stats", "--data"])
            .arg(&path)
            .output()
            .unwrap();
        assert_clean_error(&out, needle);
    }
}

#[test]
fn crlf_single_word_and_huge_line_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let crlf = dir.path().join("crlf.txt");
    std::fs::write(&crlf, b"anna\r\nbob\r\n").unwrap();
    let out = makemore()
        .args(["data", "stats", "--json", "--data"])
        .arg(&crlf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["words"], 2);
    assert_eq!(v["vocab_size"], 5);

    let huge = dir.path().join("huge.txt");
    std::fs::write(&huge, "ab".repeat(500_000)).unwrap();
    let out = makemore()
        .args(["data", "stats", "--json", "--data"])
        .arg(&huge)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["longest_word_len"], 1_000_000);
}
