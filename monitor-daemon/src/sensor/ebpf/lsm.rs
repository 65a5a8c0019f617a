//! Whether this kernel accepts BPF LSM programs, found by loading a probe.
use aya::{
    programs::{Lsm, ProgramError},
    Btf, Ebpf,
};

use super::LsmSupport;

pub(super) fn probe_lsm(ebpf: &mut Ebpf, btf: &Btf) -> LsmSupport {
    let bpf_in_lsm_list = std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
    let result = (|| -> Result<(), String> {
        let prog: &mut Lsm = ebpf
            .program_mut("lsm_probe")
            .ok_or("probe program missing")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        prog.load("bprm_check_security", btf).map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        })
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
