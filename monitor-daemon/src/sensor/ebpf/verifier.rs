//! A program the kernel refused to load: the verifier's verdict in one line, its
//! full log in a file.
use std::{fs, path::Path};

use aya::programs::ProgramError;

use super::{kernel_release, SensorError};

/// A failed `BPF_PROG_LOAD`: when the verifier said why, its log goes to a file in
/// the state directory and the error keeps its last line only.
pub(super) fn load_error(
    state_dir: &Path,
    name: &'static str,
    hook: &'static str,
    e: ProgramError,
) -> SensorError {
    let ProgramError::LoadError { verifier_log, .. } = &e else {
        return program_error(name, hook, "load")(e);
    };
    let log = verifier_log.to_string();
    let Some(last) = last_verifier_line(&log) else {
        return program_error(name, hook, "load")(e);
    };
    let kernel = kernel_release();
    let path = state_dir.join(format!("verifier-{name}.log"));
    let saved = fs::create_dir_all(state_dir)
        .and_then(|()| fs::write(&path, format!("# {name} on Linux {kernel}: {e}\n{log}\n")))
        .is_ok();
    SensorError::Rejected {
        name,
        kernel,
        last,
        log: saved.then_some(path),
    }
}

/// The verifier's verdict: the last line of its log that is not the statistics
/// footer ("processed N insns …", "verification time …", "stack depth …").
pub fn last_verifier_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .rfind(|l| {
            !(l.starts_with("processed ")
                || l.starts_with("verification time")
                || l.starts_with("stack depth")
                || l.starts_with("max_states_per_insn"))
        })
        .map(|l| l.chars().take(300).collect())
}

/// Error mapper for one step of loading or attaching a program.
pub(super) fn program_error(
    name: &'static str,
    hook: &'static str,
    action: &'static str,
) -> impl FnOnce(ProgramError) -> SensorError {
    move |source| SensorError::Program {
        name,
        hook,
        action,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The tail of what the 6.18.44 verifier said when it rejected the exec program
    /// (shared/evidence/verifier-6.18.44-exec-rejected.txt).
    const REJECTED_TAIL: &str = "3673: (67) r5 <<= 32                  ; frame1: R5=0x1b00000000 cb
BPF program is too large. Processed 1000001 insn
verification time 4416067 usec
stack depth 352+0+0+0+0+48
processed 1000001 insns (limit 1000000) max_states_per_insn 179 total_states 17829 peak_states 1337 mark_read 0
";

    #[test]
    fn a_rejection_is_one_line_with_the_verifiers_verdict_and_where_the_log_is() {
        let last = last_verifier_line(REJECTED_TAIL).unwrap();
        assert_eq!(last, "BPF program is too large. Processed 1000001 insn");
        let e = SensorError::Rejected {
            name: "sched_process_exec",
            kernel: "6.18.44-fc-v1147".into(),
            last,
            log: Some(PathBuf::from(
                "/var/lib/mcpwatch/verifier-sched_process_exec.log",
            )),
        };
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        for want in [
            "`sched_process_exec`",
            "Linux 6.18.44-fc-v1147",
            "BPF program is too large",
            "limit 1000000",
            "/var/lib/mcpwatch/verifier-sched_process_exec.log",
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
        assert_eq!(last_verifier_line("\n\n"), None);
    }
}
