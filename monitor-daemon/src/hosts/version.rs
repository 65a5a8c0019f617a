//! Which version of a host a resolved file is, from the files around it: the npm
//! package it belongs to (`package.json` name and version), or the native
//! installer's `versions/<version>` layout. For `mcpwatch hosts`.
use std::path::Path;

use super::hostfs::HostFs;

/// How far up from a file a `package.json` is looked for (`pkg/bin/x.exe`,
/// `pkg/vendor/<triple>/codex/codex`, `pkg/node_modules/@scope/pkg-linux-x64/x`).
const PACKAGE_DEPTH: usize = 5;

/// `name@version` of the npm package `path` is in, or the version of a native
/// install (`…/versions/2.1.197`), or `None`.
pub fn version_of(path: &Path, fs: &dyn HostFs) -> Option<String> {
    if path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "versions")
    {
        let v = path.file_name()?.to_str()?;
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(v.to_owned());
        }
    }
    for dir in path.ancestors().skip(1).take(PACKAGE_DEPTH) {
        let Ok(text) = fs.read(&dir.join("package.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        if let (Some(name), Some(version)) = (v["name"].as_str(), v["version"].as_str()) {
            return Some(format!("{name}@{version}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::version_of;
    use crate::hosts::fake::FakeFs;

    #[test]
    fn an_npm_package_and_a_native_install_say_their_version() {
        let pkg = "/usr/lib/node_modules/@anthropic-ai/claude-code";
        let exe = format!("{pkg}/bin/claude.exe");
        let native = "/home/a/.local/share/claude/versions/2.1.190";
        let fs = FakeFs::new()
            .file(&exe, (8, 1), 1)
            .text(
                &format!("{pkg}/package.json"),
                r#"{"name": "@anthropic-ai/claude-code", "version": "2.1.197"}"#,
            )
            .file(native, (8, 1), 2)
            .file("/opt/x/bin/x", (8, 1), 3)
            .text("/opt/x/package.json", r#"{"name": "x"}"#)
            .file("/opt/y/y", (8, 1), 4)
            .text("/opt/y/package.json", "{ not json");
        assert_eq!(
            version_of(Path::new(&exe), &fs).as_deref(),
            Some("@anthropic-ai/claude-code@2.1.197")
        );
        assert_eq!(
            version_of(Path::new(native), &fs).as_deref(),
            Some("2.1.190")
        );
        // A package.json without a version, or not JSON: unknown.
        assert_eq!(version_of(Path::new("/opt/x/bin/x"), &fs), None);
        assert_eq!(version_of(Path::new("/opt/y/y"), &fs), None);
    }
}
