//! Whether this kernel accepts BPF LSM programs, found by loading a probe.
use aya::{
    programs::{Lsm, ProgramError},
    Btf, Ebpf,
};

use super::LsmSupport;

pub(super) fn probe_lsm(ebpf: &mut Ebpf, btf: &Btf) -> LsmSupport {
    let bpf_in_lsm_list = std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
    let result = (|| -> Result<(), ProbeError> {
        let prog: &mut Lsm = ebpf
            .program_mut("lsm_probe")
            .ok_or(ProbeError::Missing)?
            .try_into()
            .map_err(ProbeError::NotLsm)?;
        prog.load("bprm_check_security", btf)
            .map_err(ProbeError::Load)
    })();
    match result {
        Ok(()) => LsmSupport {
            bpf_in_lsm_list,
            loadable: true,
            reason: None,
        },
        Err(err) => {
            let reason = if bpf_in_lsm_list {
                format!("the kernel refused to load a BPF LSM program ({err}); denied launches are killed by signal instead")
            } else {
                format!("`bpf` is not in /sys/kernel/security/lsm ({err}); denied launches are killed by signal instead")
            };
            LsmSupport {
                bpf_in_lsm_list,
                loadable: false,
                reason: Some(reason),
            }
        }
    }
}

/// Why the LSM probe did not load; the text goes into the LSM support reason.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("probe program missing")]
    Missing,
    #[error("{0}")]
    NotLsm(#[source] ProgramError),
    /// The text is the whole chain of causes (the reason is one line).
    #[error("{}", chain(.0))]
    Load(ProgramError),
}

/// `err: cause: cause…`.
fn chain(e: &ProgramError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::ProbeError;

    #[test]
    fn probe_errors_read_as_the_lsm_reason_always_did() {
        assert_eq!(ProbeError::Missing.to_string(), "probe program missing");
        let e = aya::programs::ProgramError::NotLoaded;
        let text = e.to_string();
        assert_eq!(
            ProbeError::Load(e).to_string(),
            text,
            "no cause: the error alone"
        );
    }
}
