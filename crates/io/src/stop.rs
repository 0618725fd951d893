//! A stop request from a signal, for long work that must save before it exits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// SIGINT (Ctrl-C), SIGTERM (what `kill`, a scheduler's time limit, `scancel` and
/// preemption send) and SIGUSR1 (Slurm's `--signal`) as a request to stop: the first of them
/// sets a flag that long work polls at a safe point (a run saves a checkpoint there), and
/// records which signal it was, so the process can exit with `128 + signal`, as a shell
/// reports a process killed by it. A second SIGINT exits at once with 130 (a user who
/// presses Ctrl-C twice means it); further SIGTERMs and SIGUSR1s change nothing, since a
/// scheduler may send several before its grace period ends.
#[derive(Debug, Clone)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl StopSignal {
    /// Installs the handlers (once per process).
    pub fn install() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let flag = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        // Checked before the flag is set: only a second Ctrl-C finds it set already.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, flag.clone())?;
        let mut signals = vec![SIGINT, SIGTERM];
        #[cfg(unix)]
        signals.push(signal_hook::consts::SIGUSR1);
        for sig in signals {
            signal_hook::flag::register_usize(sig, which.clone(), sig as usize)?;
            signal_hook::flag::register(sig, flag.clone())?;
        }
        Ok(Self { flag, which })
    }

    /// The flag that the first signal sets.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The signal that asked for the stop (the last one, if several came), if any did.
    pub fn signal(&self) -> Option<i32> {
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            s => i32::try_from(s).ok(),
        }
    }

    /// `128 + signal`: the exit status of a process stopped by that signal (130 for SIGINT,
    /// 143 for SIGTERM, 138 for SIGUSR1), or `None` when no signal came.
    pub fn exit_code(&self) -> Option<u8> {
        self.signal().and_then(|s| u8::try_from(128 + s).ok())
    }

    /// The signal's name (`SIGTERM`), or `signal N`.
    pub fn name(&self) -> Option<String> {
        self.signal().map(signal_name)
    }
}

/// `SIGTERM` for 15, and so on for the signals [`StopSignal`] handles.
pub fn signal_name(sig: i32) -> String {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        #[cfg(unix)]
        signal_hook::consts::SIGUSR1 => "SIGUSR1".into(),
        s => format!("signal {s}"),
    }
}
