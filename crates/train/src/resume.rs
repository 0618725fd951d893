//! Whether a checkpoint can be resumed with the data and config at hand.

use crate::{Checkpoint, PreparedData, TrainError, TrainingConfig};

/// Checks that a resume continues the same run: same corpus, vocabulary and config.
pub fn check_resume(
    ckpt: &Checkpoint,
    data: &PreparedData,
    config: &TrainingConfig,
) -> Result<(), TrainError> {
    let refuse = |reason: String| TrainError::Resume {
        path: ckpt.dir.clone(),
        reason,
    };
    if ckpt.state.corpus_sha256 != data.corpus_sha256 {
        return Err(refuse(
            "the corpus differs from the one the run started with (pass the run's --data)".into(),
        ));
    }
    if ckpt.vocab != data.vocab {
        return Err(refuse("the vocabulary differs from the run's".into()));
    }
    if let Some(started) = ckpt.state.started_config()? {
        let mut started = started;
        started.model.vocab_size = ckpt.config.model.vocab_size;
        if started != ckpt.config {
            let fields = config_differences(&started, &ckpt.config).join(", ");
            return Err(refuse(format!(
                "config.json was edited after the run started (in: {fields}); restore it, or start a new run with --config"
            )));
        }
    }
    if &ckpt.config != config {
        let fields = config_differences(&ckpt.config, config).join(", ");
        return Err(refuse(format!(
            "the config differs from the run's config.json in: {fields}"
        )));
    }
    Ok(())
}

/// Dotted names of the fields where two configs differ.
fn config_differences(a: &TrainingConfig, b: &TrainingConfig) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &name,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let to_value = |c: &TrainingConfig| serde_json::to_value(c).unwrap_or_default();
    walk("", &to_value(a), &to_value(b), &mut out);
    out
}
