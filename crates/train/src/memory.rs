//! Memory a run would need, checked against what the machine (or the job's cgroup) has
//! before anything is allocated: a config too large for the machine is a one-line error
//! with the sizes, not a process killed by the kernel.

use std::fmt;

use crate::{OptimizerKind, TrainError, TrainingConfig};

/// What a run holds in memory, in bytes, by what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryNeed {
    /// Weights, their gradients and the optimiser's state (AdamW: two moments).
    pub parameters: u64,
    /// The context windows and targets of every split.
    pub windows: u64,
    /// One training batch's activations, forward and backward, and an evaluation chunk's.
    pub activations: u64,
}

impl MemoryNeed {
    /// Everything together.
    pub fn total(&self) -> u64 {
        self.parameters
            .saturating_add(self.windows)
            .saturating_add(self.activations)
    }

    /// The context windows of `examples` examples of `block_size` characters.
    pub fn windows(examples: u64, block_size: usize) -> Self {
        Self {
            windows: examples
                .saturating_mul(block_size as u64 + 1)
                .saturating_mul(4),
            ..Self::default()
        }
    }

    /// What training `config` needs besides its windows.
    pub fn training(config: &TrainingConfig) -> Self {
        let params = config.model.num_params() as u64;
        let copies = match config.optimizer {
            OptimizerKind::Sgd => 2,
            OptimizerKind::Adamw { .. } => 4,
        };
        let floats = config.model.activation_floats();
        // Forward activations, their gradients, and the dropout masks or norms' saved
        // statistics: about three times the forward pass per example.
        let batch = (config.batch_size as u64)
            .saturating_mul(floats)
            .saturating_mul(3 * 4);
        let eval = crate::evaluate::EVAL_BYTES.min(floats.saturating_mul(4 * 32_768));
        Self {
            parameters: params.saturating_mul(copies * 4),
            windows: 0,
            activations: batch.saturating_add(eval),
        }
    }
}

/// Checks, before anything is allocated, that a fresh run of `config` on `words` fits in
/// the memory left: its context windows, and, when the model trains in this process's
/// memory (`on_host`: a CPU backend), its parameters, optimiser state and activations.
pub fn check_run_memory(
    config: &TrainingConfig,
    words: &[String],
    on_host: bool,
) -> Result<(), TrainError> {
    let mut sized = config.clone();
    sized.model.vocab_size = makemore_vocab::Vocab::from_words(words)?.len();
    let examples: u64 = words.iter().map(|w| w.chars().count() as u64 + 1).sum();
    let mut need = if config.model.kind.is_sequence() {
        let len = crate::prepare::sequence_len(words, config.model.block_size);
        sized.model.block_size = len;
        // Inputs and targets of every position of every word.
        MemoryNeed::windows(words.len() as u64 * len as u64 * 2, 0)
    } else {
        MemoryNeed::windows(examples, config.model.block_size)
    };
    if on_host {
        let t = MemoryNeed::training(&sized);
        need.parameters = t.parameters;
        need.activations = t.activations;
    }
    check_memory(need, available_memory(), "this run")
}

fn gib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    }
}

impl fmt::Display for MemoryNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.parameters > 0 {
            parts.push(format!(
                "parameters with gradients and optimiser state {}",
                gib(self.parameters)
            ));
        }
        if self.windows > 0 {
            parts.push(format!(
                "context windows of the splits {}",
                gib(self.windows)
            ));
        }
        if self.activations > 0 {
            parts.push(format!("a batch's activations {}", gib(self.activations)));
        }
        write!(f, "about {} ({})", gib(self.total()), parts.join(", "))
    }
}

/// Bytes this process can still allocate: the kernel's `MemAvailable`, and, inside a
/// cgroup with a limit (a Slurm job's `--mem`, a container), what is left under it. `None`
/// where neither can be read (not Linux).
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = cgroup_headroom();
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `memory.max - memory.current` of this process's cgroup (v2), when it has a limit.
fn cgroup_headroom() -> Option<u64> {
    let me = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = me.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max": no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Refuses `need` when it is more than `available` (when that is known), saying both.
pub fn check_memory(
    need: MemoryNeed,
    available: Option<u64>,
    what: &str,
) -> Result<(), TrainError> {
    match available {
        Some(have) if need.total() > have => Err(TrainError::Memory {
            what: what.to_string(),
            need: need.to_string(),
            available: gib(have),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_add_up_and_say_what_they_are() {
        let mut c = TrainingConfig::default();
        c.model.vocab_size = 27;
        let need = MemoryNeed::training(&c);
        // 11,897 parameters, weights and gradients (SGD).
        assert_eq!(need.parameters, 11_897 * 2 * 4);
        assert!(need.activations > 0);
        let w = MemoryNeed::windows(228_146, 3);
        assert_eq!(w.windows, 228_146 * 4 * 4);
        assert!(check_memory(w, Some(1 << 30), "x").is_ok());
        let e = check_memory(
            MemoryNeed::windows(1 << 40, 1023),
            Some(8 << 30),
            "training",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("context windows of the splits") && e.contains("8.0 GiB"),
            "{e}"
        );
        assert!(check_memory(MemoryNeed::windows(1 << 40, 1023), None, "x").is_ok());
        assert!(available_memory().is_none_or(|b| b > 0));
    }
}
