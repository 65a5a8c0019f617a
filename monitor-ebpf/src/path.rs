//! Path walking: a `struct path` rebuilt from its dentries and mounts
//! (`bpf_d_path` is not allowed in tracepoints).
use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel_str};
use monitor_common::{PATH_CAP, PATH_COMPONENT_CAP, PATH_DEPTH_MAX};

use crate::rd_ptr;

/// `bpf_loop` context of the dentry walk.
#[repr(C)]
struct Walk {
    dentry: *const u8,
    vfsmnt: *const u8,
    mnt: *const u8,
    out: *mut u8,
    off: u32,
    /// `WALK_*` below.
    state: u32,
}

const WALK_GOING: u32 = 0;
const WALK_DONE: u32 = 1;
const WALK_TRUNCATED: u32 = 2;

/// One step up the tree: a component added, or a mount point crossed.
unsafe extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's Walk on its stack.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
    let (Ok(mnt_root), Ok(parent)) = (
        rd_ptr(w.vfsmnt, cfg!(vfsmount_mnt_root)),
        rd_ptr(w.dentry, cfg!(dentry_d_parent)),
    ) else {
        w.state = WALK_TRUNCATED;
        return 1;
    };
    if w.dentry == mnt_root || w.dentry == parent {
        if w.dentry != mnt_root {
            // A dentry with no parent that is not a mount root: a pseudo file
            // (memfd, anonymous inode) or a disconnected one. Stop here.
            w.off = own_name(w.dentry, w.out, w.off);
            w.state = WALK_DONE;
            return 1;
        }
        let (Ok(mnt_parent), Ok(mountpoint)) = (
            rd_ptr(w.mnt, cfg!(mount_mnt_parent)),
            rd_ptr(w.mnt, cfg!(mount_mnt_mountpoint)),
        ) else {
            w.state = WALK_TRUNCATED;
            return 1;
        };
        if mnt_parent == w.mnt {
            w.off = own_name(w.dentry, w.out, w.off);
            w.state = WALK_DONE;
            return 1;
        }
        w.dentry = mountpoint;
        w.mnt = mnt_parent;
        w.vfsmnt = mnt_parent.wrapping_add(cfg!(mount_mnt) as usize);
        return 0;
    }
    let off = w.off;
    if off as usize > PATH_CAP - PATH_COMPONENT_CAP {
        w.state = WALK_TRUNCATED;
        return 1;
    }
    let Ok(name) = rd_ptr(w.dentry, cfg!(dentry_d_name) + cfg!(qstr_name)) else {
        w.state = WALK_TRUNCATED;
        return 1;
    };
    // SAFETY: off <= PATH_CAP - PATH_COMPONENT_CAP, so the write stays inside the
    // PATH_CAP field; the mask only makes that visible to the verifier.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            w.out.wrapping_add((off as usize) & (PATH_CAP - 1)).cast(),
            PATH_COMPONENT_CAP as u32,
            name.cast(),
        )
    };
    if ret <= 0 {
        w.state = WALK_TRUNCATED;
        return 1;
    }
    w.off = (off + ret as u32) & (2 * PATH_CAP as u32 - 1);
    w.dentry = parent;
    0
}

/// Rebuild a `struct path` into `out` (PATH_CAP bytes plus slack inside the scratch
/// value), leaf first, each component NUL-terminated. Crosses mount points through
/// `struct mount`. Returns (bytes written, truncated). A `bpf_loop` with its state
/// in the context, so the verifier checks one step, not `PATH_DEPTH_MAX` of them.
#[inline(always)]
pub(crate) fn walk_path(path: *const u8, out: *mut u8) -> (u32, bool) {
    let (Ok(dentry), Ok(vfsmnt)) = (
        rd_ptr(path, cfg!(path_dentry)),
        rd_ptr(path, cfg!(path_mnt)),
    ) else {
        return (0, true);
    };
    let mut w = Walk {
        dentry,
        vfsmnt,
        mnt: vfsmnt.wrapping_sub(cfg!(mount_mnt) as usize),
        out,
        off: 0,
        state: WALK_GOING,
    };
    // SAFETY: bpf_loop calls walk_step with a pointer to `w`.
    unsafe {
        bpf_loop(
            PATH_DEPTH_MAX,
            walk_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut w).cast(),
            0,
        )
    };
    (w.off & (2 * PATH_CAP as u32 - 1), w.state != WALK_DONE)
}

/// At the end of a walk that found no component (`off == 0`), the dentry's own
/// name: for the real root it is "/" (nothing to add); for files on internal,
/// never-mounted filesystems (a memfd, an anonymous inode) it is the file's own
/// name, e.g. `memfd:x` — without it a fileless exec would show as `/`.
#[inline(always)]
fn own_name(dentry: *const u8, out: *mut u8, off: u32) -> u32 {
    if off != 0 {
        return off;
    }
    let Ok(name) = rd_ptr(dentry, cfg!(dentry_d_name) + cfg!(qstr_name)) else {
        return off;
    };
    // SAFETY: off == 0 and a component fits the PATH_CAP field.
    let ret =
        unsafe { bpf_probe_read_kernel_str(out.cast(), PATH_COMPONENT_CAP as u32, name.cast()) };
    // SAFETY: out has at least one byte.
    let first = unsafe { *out };
    if ret > 2 || (ret == 2 && first != b'/') {
        (ret as u32) & (PATH_CAP as u32 - 1)
    } else {
        off
    }
}
