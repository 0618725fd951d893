//! The tables of `docs/checkpoint-format.md` that describe what the code writes (the tensors of
//! every model kind and option, the fields of `config.json` and `state.json`), rendered from the
//! code itself: the test fails when the document differs, and
//! `MAKEMORE_BLESS=1 cargo test -p makemore-train checkpoint_format` rewrites its section.

use std::collections::BTreeMap;

use makemore_model::{ModelKind, NormKind};

use crate::checkpoint::{causal_masks, expected_tensors, BestSoFar, TrainingState};
use crate::TrainingConfig;

/// Sizes whose products and multiples are all different, so that every shape reads back as
/// the expression it came from.
const V: usize = 101;
const T: usize = 8;
const E: usize = 12;
const H: usize = 50;

fn symbol(n: usize) -> String {
    let names = [
        (V, "V"),
        (T, "T"),
        (E, "E"),
        (H, "H"),
        (2 * E, "2·E"),
        (3 * E, "3·E"),
        (4 * E, "4·E"),
        (T * E, "T·E"),
        (2 * H, "2·H"),
        (E + H, "E+H"),
        (1, "1"),
    ];
    names
        .iter()
        .find(|(v, _)| *v == n)
        .map_or_else(|| n.to_string(), |(_, s)| (*s).to_string())
}

fn config(kind: ModelKind, edit: impl FnOnce(&mut TrainingConfig)) -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.model.kind = kind;
    c.model.vocab_size = V;
    c.model.block_size = T;
    c.model.n_embd = E;
    c.model.n_hidden = H;
    c.model.n_layers = 2;
    if kind == ModelKind::Transformer {
        c.model.n_head = 4;
    }
    edit(&mut c);
    c
}

/// The tensors of `c` with layer indices folded: a name whose shape is the same at every
/// layer becomes `.{i}.`; one whose first layer differs keeps `.0.` and gets `.{i≥1}.`.
fn tensors(c: &TrainingConfig) -> BTreeMap<String, String> {
    let mut by_pattern: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let masks = causal_masks(&c.model);
    for (name, shape) in expected_tensors(c).into_iter().chain(masks.clone()) {
        let shape = format!(
            "`[{}]`{}",
            shape
                .iter()
                .map(|&n| symbol(n))
                .collect::<Vec<_>>()
                .join(", "),
            if masks.contains_key(&name) {
                " causal mask (buffer)"
            } else {
                ""
            }
        );
        let parts: Vec<&str> = name.split('.').collect();
        match parts.iter().position(|p| p.parse::<usize>().is_ok()) {
            Some(at) => {
                let layer: usize = parts[at].parse().unwrap_or(0);
                let mut pattern = parts.clone();
                pattern[at] = "{i}";
                by_pattern
                    .entry(pattern.join("."))
                    .or_default()
                    .push((layer, shape));
            }
            None => by_pattern.entry(name).or_default().push((0, shape)),
        }
    }
    let mut out = BTreeMap::new();
    for (pattern, shapes) in by_pattern {
        let first = &shapes[0].1;
        if shapes.iter().all(|(_, s)| s == first) {
            out.insert(pattern, first.clone());
            continue;
        }
        for (layer, shape) in &shapes {
            let name = match layer {
                0 => pattern.replace("{i}", "0"),
                _ => pattern.replace("{i}", "{i≥1}"),
            };
            out.insert(name, shape.clone());
        }
    }
    out
}

fn tensor_table(rows: &BTreeMap<String, String>) -> String {
    let mut md = String::from("| tensor | shape |\n|---|---|\n");
    for (name, shape) in rows {
        md.push_str(&format!("| `{name}` | {shape} |\n"));
    }
    md
}

/// What an option of the MLP changes in its tensors, against the plain MLP's.
fn diff(base: &BTreeMap<String, String>, with: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (name, shape) in with {
        match base.get(name) {
            None => parts.push(format!("adds `{name}` {shape}")),
            Some(s) if s != shape => parts.push(format!("makes `{name}` {shape}")),
            Some(_) => {}
        }
    }
    for name in base.keys().filter(|n| !with.contains_key(*n)) {
        parts.push(format!("drops `{name}`"));
    }
    parts.join("; ")
}

fn json_keys(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|o| {
            o.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The generated section of `docs/checkpoint-format.md`.
fn render() -> String {
    let mut md = String::new();
    md.push_str(
        "Rendered from the code (`crates/train/src/doc_tables.rs`) with `V = vocab_size`, \
         `T = block_size` (a sequence model's positions), `E = n_embd`, `H = n_hidden`, two \
         layers (`n_layers`) where a model has layers. Shapes are PyTorch's (`[out, in]` for a \
         linear layer's weight).\n\n",
    );
    let kinds = [
        ModelKind::Mlp,
        ModelKind::Rnn,
        ModelKind::Gru,
        ModelKind::Bow,
        ModelKind::Transformer,
    ];
    md.push_str("#### Tensors of `model.safetensors`, by kind\n\n");
    let mlp = tensors(&config(ModelKind::Mlp, |_| {}));
    for kind in kinds {
        md.push_str(&format!("`{}`:\n\n", kind.name()));
        md.push_str(&tensor_table(&tensors(&config(kind, |_| {}))));
        md.push('\n');
    }
    md.push_str("The MLP's options change its tensors so:\n\n");
    type Edit = Box<dyn Fn(&mut TrainingConfig)>;
    let options: [(&str, Edit); 4] = [
        (
            "`norm = \"Layer\"`",
            Box::new(|c| c.model.norm = NormKind::Layer),
        ),
        (
            "`norm = \"Batch\"`",
            Box::new(|c| c.model.norm = NormKind::Batch),
        ),
        ("`direct = true`", Box::new(|c| c.model.direct = true)),
        (
            "`hierarchical = true` (`T = 2^n_layers`; here 3 layers)",
            Box::new(|c| {
                c.model.hierarchical = true;
                c.model.n_layers = 3;
            }),
        ),
    ];
    for (what, edit) in options {
        let with = tensors(&config(ModelKind::Mlp, |c| edit(c)));
        let base = if what.starts_with("`hierarchical") {
            tensors(&config(ModelKind::Mlp, |c| c.model.n_layers = 3))
        } else {
            mlp.clone()
        };
        md.push_str(&format!("- {what}: {}.\n", diff(&base, &with)));
    }
    md.push_str("\n#### `config.json`\n\n");
    let sample = config(ModelKind::Mlp, |_| {});
    let top: serde_json::Value =
        serde_json::from_str(&sample.to_json()).unwrap_or(serde_json::Value::Null);
    md.push_str(&format!("Top-level fields: {}.\n\n", json_keys(&top)));
    let with_ema = config(ModelKind::Mlp, |c| {
        c.ema = Some(crate::EmaConfig {
            decay: 0.999,
            best: false,
        })
    });
    let with_ema: serde_json::Value =
        serde_json::from_str(&with_ema.to_json()).unwrap_or(serde_json::Value::Null);
    md.push_str(&format!(
        "With a moving average of the weights (`--ema`), also `ema`: {}.\n\n",
        json_keys(&with_ema["ema"])
    ));
    let with_distill = config(ModelKind::Mlp, |c| {
        c.distill = Some(crate::DistillConfig {
            teacher: "teacher.json".into(),
            weight: 0.5,
        })
    });
    let with_distill: serde_json::Value =
        serde_json::from_str(&with_distill.to_json()).unwrap_or(serde_json::Value::Null);
    md.push_str(&format!(
        "With distillation (`--distill`), also `distill`: {}.\n\n",
        json_keys(&with_distill["distill"])
    ));
    md.push_str("`model` fields, by kind (the fields a kind does not use are left out):\n\n");
    md.push_str("| kind | fields |\n|---|---|\n");
    for kind in kinds {
        let c: serde_json::Value = serde_json::from_str(&config(kind, |_| {}).to_json())
            .unwrap_or(serde_json::Value::Null);
        md.push_str(&format!(
            "| `{}` | {} |\n",
            kind.name(),
            json_keys(&c["model"])
        ));
    }
    md.push_str("\n#### `state.json`\n\n");
    let state = TrainingState {
        step: 1,
        metrics_bytes: 0,
        corpus_sha256: String::new(),
        elapsed_secs: 0.0,
        train_loss: Some(0.0),
        dev_loss: Some(0.0),
        finished: false,
        corpus_path: Some("names.txt".into()),
        config: Some(serde_json::Value::Null),
        best: Some(BestSoFar {
            step: 1,
            dev_loss: 0.0,
        }),
        teacher_sha256: Some(String::new()),
    };
    let v = serde_json::to_value(&state).unwrap_or(serde_json::Value::Null);
    md.push_str(&format!(
        "Fields: {} (`corpus_path`, `config`, `best` and `teacher_sha256` only where they apply; `best`: {}).\n",
        json_keys(&v),
        json_keys(&v["best"])
    ));
    md
}

#[test]
fn checkpoint_format_tables_are_the_codes() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/checkpoint-format.md");
    let doc = std::fs::read_to_string(&path).expect("docs/checkpoint-format.md");
    let (begin, end) = (
        "<!-- format-tables begin -->\n",
        "<!-- format-tables end -->",
    );
    let (Some(at), Some(to)) = (doc.find(begin), doc.find(end)) else {
        panic!("{} has no {begin:?} … {end:?} section", path.display());
    };
    let now = &doc[at + begin.len()..to];
    let want = render();
    if now != want {
        if std::env::var_os("MAKEMORE_BLESS").is_some() {
            let new = format!("{}{want}{}", &doc[..at + begin.len()], &doc[to..]);
            std::fs::write(&path, new).expect("cannot write docs/checkpoint-format.md");
            return;
        }
        panic!(
            "{} differs from the code; run `MAKEMORE_BLESS=1 cargo test -p makemore-train checkpoint_format` to regenerate it",
            path.display()
        );
    }
}
