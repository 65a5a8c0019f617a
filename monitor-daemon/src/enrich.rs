//! What userspace adds to a kernel event: the security-relevant environment, and
//! argv completion when the kernel capture was truncated. (Wall-clock time and the
//! executable's SHA-256 come from `sys::clock` and `sys::hash`.)
use crate::event::{Bytes, SECURITY_ENV};

/// The values of the security-relevant variables present in `env` (NAME=value
/// entries). The first occurrence wins, as getenv(3) does.
pub fn security_env(env: &[Vec<u8>]) -> std::collections::BTreeMap<String, Bytes> {
    let mut out = std::collections::BTreeMap::new();
    for entry in env {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if let Some(&known) = SECURITY_ENV.iter().find(|n| n.as_bytes() == name) {
            out.entry(known.to_string())
                .or_insert_with(|| Bytes(value.to_vec()));
        } else if let Ok(name) = std::str::from_utf8(name) {
            // A member of a family (`LD_…`, `GIT_…`, `npm_config_…`). A name that
            // is not UTF-8 cannot be approved; the kernel finds no record for it.
            if crate::event::env_family(name).is_some() {
                out.entry(name.to_owned())
                    .or_insert_with(|| Bytes(value.to_vec()));
            }
        }
    }
    out
}

/// Complete a truncated argv from `/proc/PID/cmdline`, only if what the kernel
/// captured is a prefix of it (otherwise the process already rewrote its cmdline,
/// as npx does, and the kernel's partial capture is the better record).
pub fn complete_argv(captured: &[Vec<u8>], cmdline: &[u8]) -> Option<Vec<Vec<u8>>> {
    let full = crate::event::raw::split_nul(cmdline);
    if full.len() < captured.len() {
        return None;
    }
    let last = captured.len().checked_sub(1)?;
    let prefix_ok = captured[..last] == full[..last] && full[last].starts_with(&captured[last]);
    prefix_ok.then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_env_keeps_only_listed_variables_first_wins() {
        let env = vec![
            b"PATH=/bin".to_vec(),
            b"LD_PRELOAD=/evil.so".to_vec(),
            b"NODE_OPTIONS=--require /x.js".to_vec(),
            b"LD_PRELOAD=/second.so".to_vec(),
            b"NOEQUALS".to_vec(),
            b"ENV=".to_vec(),
            b"GIT_CONFIG_COUNT=1".to_vec(),
            b"NPM_CONFIG_REGISTRY=http://evil".to_vec(),
            b"npm_package_name=x".to_vec(),
        ];
        let got = security_env(&env);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got["GIT_CONFIG_COUNT"].0, b"1");
        assert_eq!(got["NPM_CONFIG_REGISTRY"].0, b"http://evil");
        assert_eq!(got["LD_PRELOAD"].0, b"/evil.so");
        assert_eq!(got["NODE_OPTIONS"].0, b"--require /x.js");
        assert_eq!(got["ENV"].0, b"");
    }

    #[test]
    fn argv_completion_requires_the_capture_to_be_a_prefix() {
        let captured = vec![b"node".to_vec(), b"aaa".to_vec()];
        let full = b"node\0aaaa\0b\0";
        assert_eq!(
            complete_argv(&captured, full),
            Some(vec![b"node".to_vec(), b"aaaa".to_vec(), b"b".to_vec()])
        );
        // npx rewrites its cmdline: not a prefix, no completion.
        assert_eq!(complete_argv(&captured, b"npm exec\0\0\0"), None);
    }
}
