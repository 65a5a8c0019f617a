//! The rule "argv names the host script", shared with the kernel's copy.

use crate::HOST_PATH_KEY;

/// First and last argv index at which a host's `#!` script counts as "argv names the
/// host script": the host relaunching itself through its interpreter (`node
/// /path/cli.js`, `node --flag /path/cli.js`, `node --a --b /path/cli.js`), which is
/// the host again and not a launch. `argv[0]` (the interpreter) never counts.
pub const HOST_SCRIPT_ARG_FIRST: usize = 1;
/// See [`HOST_SCRIPT_ARG_FIRST`].
pub const HOST_SCRIPT_ARG_LAST: usize = 3;

/// The rule "argv names the host script": one of `argv[HOST_SCRIPT_ARG_FIRST..=
/// HOST_SCRIPT_ARG_LAST]` is, byte for byte, a script path `is_script` accepts (a
/// relative path or a prefix is another string, so it does not match), and no
/// argument up to it is `HOST_PATH_KEY - 1` bytes or longer: the kernel reads each
/// argument into a `HOST_PATH_KEY`-byte key, and one that fills it ends the walk
/// (its first bytes, or bytes inside it, must never pass for the script).
///
/// The one definition for userspace. The kernel's copy is
/// `monitor-ebpf/src/classify.rs` `argv_names_host_script`, which walks the captured
/// argv block with bounded reads and `HOST_PATHS` lookups; the daemon's tests run
/// both on the same cases (`hosts::tests::argv_names_host_script_*`).
pub fn argv_names_host_script<A: AsRef<[u8]>>(
    argv: &[A],
    mut is_script: impl FnMut(&[u8]) -> bool,
) -> bool {
    for (i, arg) in argv.iter().take(HOST_SCRIPT_ARG_LAST + 1).enumerate() {
        let arg = arg.as_ref();
        if arg.len() >= HOST_PATH_KEY - 1 {
            return false;
        }
        if i >= HOST_SCRIPT_ARG_FIRST && is_script(arg) {
            return true;
        }
    }
    false
}
