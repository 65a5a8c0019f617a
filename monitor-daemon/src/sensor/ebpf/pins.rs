//! What an earlier daemon left pinned: the build id that tells its programs from
//! ours, the layout check of its maps, and removing it all (`--unload`).
use std::{fs, io, path::Path};

use aya::maps::MapData;
use monitor_common::{
    names, AllowKey, AllowValue, EnvFilter, ExeKey, NameKey, PathKey, SecEnvName, Settings,
    TailKey, TaskState,
};
use sha2::{Digest as _, Sha256};

use super::{PinReport, SensorError, OBJECT};

/// Key and value sizes of every pinned map, to refuse a pin left by a build with
/// another layout (it would be taken over silently otherwise).
fn expected_layout(name: &str) -> Option<(u32, u32)> {
    use core::mem::size_of;
    let s = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Some(match name {
        names::TRACKED => (4, s(size_of::<TaskState>())),
        names::HOST_EXES | names::DENY_EXES | names::CLASS_EXES => (s(size_of::<ExeKey>()), 4),
        names::DOOMED => (4, 4),
        names::SECENV_FAMILIES => (8, 4),
        names::HOST_PATHS => (s(size_of::<PathKey>()), 4),
        names::HOST_NAMES => (s(size_of::<NameKey>()), 4),
        names::HOST_SCRIPT_TAILS => (s(size_of::<TailKey>()), 4),
        names::HOST_ROOT_EXE => (4, s(size_of::<ExeKey>())),
        names::HOST_SELF => (4, s(size_of::<PathKey>())),
        names::EVENTS => (0, 0),
        names::STATS | names::MODES | names::PROFILE_FLAGS | names::HOLDS => (
            4,
            if name == names::STATS || name == names::HOLDS {
                8
            } else {
                4
            },
        ),
        names::ALLOW => (s(size_of::<AllowKey>()), s(size_of::<AllowValue>())),
        names::SETTINGS => (4, s(size_of::<Settings>())),
        names::SECENV_NAMES => (8, s(size_of::<SecEnvName>())),
        names::SECENV_FILTER => (4, s(size_of::<EnvFilter>())),
        _ => return None,
    })
}

/// Take over the maps an earlier daemon pinned, but remove (and report) any whose
/// key or value size this build does not use: it would be misread otherwise.
pub(super) fn check_pinned_maps(maps_dir: &Path, pins: &mut PinReport) -> Result<(), SensorError> {
    for &name in names::PINNED_MAPS {
        let path = maps_dir.join(name);
        if !path.exists() {
            continue;
        }
        let fits = MapData::from_pin(&path)
            .ok()
            .and_then(|m| m.info().ok())
            .is_some_and(|info| {
                expected_layout(name).is_some_and(|(k, v)| {
                    name == names::EVENTS || (info.key_size() == k && info.value_size() == v)
                })
            });
        if fits {
            pins.reused_maps.push(name);
        } else {
            fs::remove_file(&path).map_err(pin_io(&path, "remove incompatible map"))?;
            pins.incompatible.push(name.to_owned());
        }
    }
    Ok(())
}

/// Build id of the embedded programs: the first 16 hex digits of their SHA-256.
pub fn generation() -> String {
    crate::sys::hex::encode(&Sha256::digest(OBJECT)[..8])
}

/// Remove everything pinned under `dir`: detaches the programs and frees the maps
/// (`mcpwatchd --unload`). Enforcement stops.
pub fn unload(dir: &Path) -> io::Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    fs::remove_dir_all(dir)?;
    Ok(true)
}

pub(super) fn pin_io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> SensorError + 'a {
    move |source| SensorError::Pin {
        path: path.to_path_buf(),
        action,
        source,
    }
}

pub(super) fn pin_other(
    path: &Path,
    action: &'static str,
    e: &dyn std::error::Error,
) -> SensorError {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        src = inner.source();
    }
    SensorError::Pin {
        path: path.to_path_buf(),
        action,
        source: io::Error::other(text),
    }
}

#[cfg(test)]
mod layout_tests {
    use monitor_common::names;

    use super::expected_layout;

    /// A pinned map with no expected layout is removed as incompatible at every
    /// restart, and the programs are attached again instead of taken over.
    #[test]
    fn every_pinned_map_has_a_layout_to_be_taken_over_with() {
        for name in names::PINNED_MAPS {
            assert!(
                expected_layout(name).is_some(),
                "{name} has no expected layout"
            );
        }
    }
}
