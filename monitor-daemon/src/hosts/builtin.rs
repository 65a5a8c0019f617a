//! The built-in host profiles: the executables, entry scripts and config locations
//! of the MCP hosts mcpwatch knows without configuration (data; see [`builtin_profiles`]).

use super::profile::{ConfigLocation, HostProfile, Level, Schema};

/// Global npm module directories and the bin directory npm links into, for the
/// prefixes hosts are commonly installed under (`npm install -g`): the distro node
/// (prefix `/usr`), a node from nodesource/tarball (`/usr/local`), the per-user
/// prefixes recommended by npm's docs (`~/.npm-global`) or used by many setups
/// (`~/.local`), and nvm (`~/.nvm/versions/node/<version>`).
///
/// Not covered (yet): pnpm and bun global stores (their bin entries are shell shims,
/// not links), Volta, asdf/mise, Homebrew on Linux.
const NPM_PREFIXES: &[(&str, &str)] = &[
    ("/usr/lib/node_modules", "/usr/bin"),
    ("/usr/local/lib/node_modules", "/usr/local/bin"),
    ("~/.npm-global/lib/node_modules", "~/.npm-global/bin"),
    ("~/.local/lib/node_modules", "~/.local/bin"),
    (
        "~/.nvm/versions/node/*/lib/node_modules",
        "~/.nvm/versions/node/*/bin",
    ),
];

/// `rel` under every global npm module directory.
fn npm_modules(rel: &str) -> impl Iterator<Item = String> + '_ {
    NPM_PREFIXES
        .iter()
        .map(move |(modules, _)| format!("{modules}/{rel}"))
}

/// The bin link `name` in every global npm bin directory.
fn npm_bins(name: &str) -> impl Iterator<Item = String> + '_ {
    NPM_PREFIXES
        .iter()
        .map(move |(_, bin)| format!("{bin}/{name}"))
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn profile(
    name: &str,
    display: &str,
    exe: Vec<String>,
    scripts: Vec<String>,
) -> HostProfile {
    HostProfile {
        name: name.to_owned(),
        display: display.to_owned(),
        exe,
        scripts,
        ..HostProfile::default()
    }
}

/// Electron ships `chrome-sandbox` (the setuid sandbox helper) and, since it moved
/// to Crashpad, `chrome_crashpad_handler` in the directory of the app's main binary;
/// the app executes both itself.
fn electron_helpers(exes: &[String]) -> Vec<String> {
    let mut helpers = Vec::new();
    for exe in exes {
        if let Some((dir, _)) = exe.rsplit_once('/') {
            for helper in ["chrome-sandbox", "chrome_crashpad_handler"] {
                let path = format!("{dir}/{helper}");
                if !helpers.contains(&path) {
                    helpers.push(path);
                }
            }
        }
    }
    helpers
}

fn user(path: &str, schema: Schema) -> ConfigLocation {
    ConfigLocation::new(path, Level::User, schema)
}

fn project(path: &str, schema: Schema) -> ConfigLocation {
    ConfigLocation::new(path, Level::Project, schema)
}

fn system(path: &str, schema: Schema) -> ConfigLocation {
    ConfigLocation::new(path, Level::System, schema)
}

/// MCP configs of VS Code extensions that start servers themselves, for an editor of
/// the VS Code family whose user data directory is `user_dir`.
///
/// Cline and Roo Code are extensions, not programs: the servers they configure are
/// spawned by the editor's extension host, so the kernel sees them as launches of
/// the *editor* (`vscode`, `cursor`, …), and a consent record must name that host.
/// They are therefore config locations of the editor profiles, not profiles of their
/// own (a profile with no executable would never match a process, and a `[[host]]`
/// without exe/scripts means "disable this built-in").
///
/// Cline: `globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json`;
/// Roo Code: `globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json`
/// (both paths from third-party guides for Linux — unverified).
fn vscode_extension_user_configs(user_dir: &str) -> Vec<ConfigLocation> {
    vec![
        user(
            &format!(
                "{user_dir}/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"
            ),
            Schema::Cline,
        ),
        user(
            &format!(
                "{user_dir}/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json"
            ),
            Schema::RooCode,
        ),
    ]
}

/// Configs that extensions read whichever editor of the VS Code family runs them:
/// Roo Code's project file, and Continue's (its VS Code extension reads the same
/// files as its `cn` CLI). Listed under every such editor, since any of them may be
/// the process that launches the server.
fn vscode_extension_shared_configs() -> Vec<ConfigLocation> {
    vec![
        project(".roo/mcp.json", Schema::RooCode),
        user("~/.continue/config.yaml", Schema::Continue),
        project(".continue/mcpServers/*.yaml", Schema::Continue),
    ]
}

/// The configs of an editor of the VS Code family with user data directories
/// `user_dirs` (`$XDG_CONFIG_HOME/Code/User`, …): its own `mcp.json` (also per
/// settings profile) and the older `settings.json` `"mcp": {"servers": …}`, the
/// workspace `.vscode/mcp.json`, and its extensions' configs.
fn vscode_family_configs(user_dirs: &[&str]) -> Vec<ConfigLocation> {
    let mut configs = Vec::new();
    for dir in user_dirs {
        configs.push(user(&format!("{dir}/mcp.json"), Schema::Vscode));
        configs.push(user(&format!("{dir}/profiles/*/mcp.json"), Schema::Vscode));
        configs.push(user(
            &format!("{dir}/settings.json"),
            Schema::VscodeSettings,
        ));
    }
    configs.push(project(".vscode/mcp.json", Schema::Vscode));
    for dir in user_dirs {
        configs.extend(vscode_extension_user_configs(dir));
    }
    configs.extend(vscode_extension_shared_configs());
    configs
}

/// The host profiles mcpwatch knows without configuration. The profile index in
/// this list (after config overrides, see `Config::profiles`) is the `host_profile`
/// the kernel records.
///
/// Where each path comes from is noted next to it; "unverified" marks paths taken
/// from third-party scripts or conventions, not from the vendor's own package.
pub fn builtin_profiles() -> Vec<HostProfile> {
    // Claude Code. npm package: since 2.1.1xx `bin: {claude: "bin/claude.exe"}`, a
    // stub that the postinstall (`install.cjs`) replaces with a hard link (or copy)
    // of the native ELF from the optional dependency
    // `@anthropic-ai/claude-code-linux-{x64,arm64}[-musl]/claude`; earlier versions
    // (1.0.0 … 2.1.100 checked) were `bin: {claude: "cli.js"}`, a node script.
    // Native installer (`claude.ai/install.sh`, `claude install`): the ELF is
    // `~/.local/share/claude/versions/<version>`, linked from `~/.local/bin/claude`.
    // `/migrate-installer` (older): a local npm install under `~/.claude/local`,
    // started through the shell wrapper `~/.claude/local/claude`, which execs
    // `~/.claude/local/node_modules/.bin/claude`.
    let mut claude_exe: Vec<String> = npm_modules("@anthropic-ai/claude-code/bin/claude.exe")
        .chain(npm_modules(
            "@anthropic-ai/claude-code/node_modules/@anthropic-ai/claude-code-linux-*/claude",
        ))
        .chain(npm_modules("@anthropic-ai/claude-code-linux-*/claude"))
        .collect();
    claude_exe.extend(strings(&[
        "~/.local/share/claude/versions/*",
        "~/.claude/local/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
        "~/.claude/local/node_modules/@anthropic-ai/claude-code-linux-*/claude",
    ]));
    let mut claude_scripts: Vec<String> = npm_modules("@anthropic-ai/claude-code/cli.js")
        .chain(npm_bins("claude"))
        .collect();
    claude_scripts.extend(strings(&[
        "~/.claude/local/node_modules/@anthropic-ai/claude-code/cli.js",
        "~/.claude/local/node_modules/.bin/claude",
    ]));

    // Claude Desktop on Linux. Anthropic's own .deb (APT repo downloads.claude.ai,
    // 2026): a bare Electron app, ELF `/usr/lib/claude-desktop/claude-desktop`,
    // linked from `/usr/bin/claude-desktop`. The community repackaging
    // aaddrick/claude-desktop-debian installs the same tree as
    // `/usr/lib/claude-desktop-unofficial/` (v3), and before that (v2) ran a private
    // Electron `/usr/lib/claude-desktop/node_modules/electron/dist/electron`; its
    // AppImages mount at `/tmp/.mount_claude*` with the same inner layout. The
    // `/opt/Claude` Electron is from that project's test harness (other community
    // builds) — unverified. Best effort: these builds change often.
    let claude_desktop_exe = strings(&[
        "/usr/lib/claude-desktop/claude-desktop",
        "/usr/lib/claude-desktop-unofficial/claude-desktop",
        "/usr/lib/claude-desktop/node_modules/electron/dist/electron",
        "/opt/Claude/node_modules/electron/dist/electron",
        "/tmp/.mount_claude*/usr/lib/claude-desktop/claude-desktop",
        "/tmp/.mount_claude*/usr/lib/node_modules/electron/dist/electron",
    ]);

    // Cursor. Official .deb/.rpm and the AppImage carry `usr/share/cursor/cursor`
    // (cursor/cursor#3123); AppImages mount at `/tmp/.mount_Cursor<random>`. Before
    // 0.46 the (ToDesktop) AppImage had the binary at its root, and guides extract
    // it to `/opt/Cursor`; Gentoo's overlay installs to `/opt/cursor` — unverified.
    // AppImage FUSE mounts belong to the user who started them and are usually not
    // readable by root (no `allow_root`): they then resolve to nothing.
    let cursor_exe = strings(&[
        "/usr/share/cursor/cursor",
        "/opt/Cursor/cursor",
        "/opt/cursor/cursor",
        "/tmp/.mount_[Cc]ursor*/usr/share/cursor/cursor",
        "/tmp/.mount_[Cc]ursor*/cursor",
    ]);

    // VS Code: the Electron main binary, which also runs the extension host that
    // spawns MCP servers. Microsoft's .deb/.rpm: `/usr/share/code/code` (postinst
    // links `/usr/bin/code` to the shell script `/usr/share/code/bin/code`); the snap
    // mounts the same tree under `/snap/code/<rev>/`; Arch AUR
    // `visual-studio-code-bin`: `/opt/visual-studio-code/code`. Flatpak path
    // unverified. Arch's `code` (OSS) runs the shared system Electron and cannot be
    // told apart by executable.
    let vscode_exe = strings(&[
        "/usr/share/code/code",
        "/usr/share/code-insiders/code-insiders",
        "/snap/code/*/usr/share/code/code",
        "/snap/code-insiders/*/usr/share/code-insiders/code-insiders",
        "/opt/visual-studio-code/code",
        "/opt/visual-studio-code-insiders/code-insiders",
        "/var/lib/flatpak/app/com.visualstudio.code/*/*/active/files/extra/vscode/code",
    ]);

    // VSCodium: built from the same packaging templates with name `codium`
    // (`/usr/share/codium/codium`, snap `codium`); AUR `vscodium-bin` under
    // `/opt/vscodium-bin` — unverified.
    let vscodium_exe = strings(&[
        "/usr/share/codium/codium",
        "/snap/codium/*/usr/share/codium/codium",
        "/opt/vscodium-bin/codium",
    ]);

    // Windsurf: official .deb `/usr/share/windsurf/windsurf` (seen in the AUR
    // PKGBUILD repackaging it and in process listings); `/opt/windsurf` (Gentoo) and
    // `/opt/Windsurf` (tarball) — unverified.
    let windsurf_exe = strings(&[
        "/usr/share/windsurf/windsurf",
        "/opt/windsurf/windsurf",
        "/opt/Windsurf/windsurf",
    ]);

    // Zed: the editor process is `zed-editor` (the `zed` CLI only hands files to
    // it). Official installer: `~/.local/zed.app/libexec/zed-editor`, the preview
    // and nightly channels `~/.local/zed-{preview,nightly}.app` (Zed docs); Arch's
    // package: `/usr/lib/zed/zed-editor`; `/opt/zed.app` and `/usr/lib/zed.app`
    // from image build scripts — unverified. Flatpak not covered.
    let zed_exe = strings(&[
        "~/.local/zed.app/libexec/zed-editor",
        "~/.local/zed-preview.app/libexec/zed-editor",
        "~/.local/zed-nightly.app/libexec/zed-editor",
        "/usr/lib/zed/zed-editor",
        "/usr/lib/zed.app/libexec/zed-editor",
        "/opt/zed.app/libexec/zed-editor",
    ]);

    // Gemini CLI: a node script (`#!/usr/bin/env node`). npm `bin: {gemini:
    // "bundle/gemini.js"}` in 0.61.0 (the version on our machines),
    // `"dist/index.js"` in 0.1.5 … 0.30.0. It relaunches itself as `node
    // --max-old-space-size=… <script>` (see `is_host_script`).
    let gemini_scripts: Vec<String> = npm_modules("@google/gemini-cli/bundle/gemini.js")
        .chain(npm_modules("@google/gemini-cli/dist/index.js"))
        .chain(npm_bins("gemini"))
        .collect();

    // Codex CLI: `bin/codex.js` (node) execve()s the native musl binary in the same
    // process. Layouts by version (npm tarballs): 0.1x/0.20 `bin/codex-<triple>`;
    // ~0.50 `vendor/<triple>/codex/codex` in the package; 0.100+ the optional
    // dependency `@openai/codex-linux-{x64,arm64}` (an alias of
    // `@openai/codex@<v>-linux-x64`), `vendor/<triple>/codex/codex`, in 0.171
    // `vendor/<triple>/bin/codex`; `codex.js` falls back to its own `vendor/`.
    let codex_exe: Vec<String> = [
        "@openai/codex/node_modules/@openai/codex-linux-*/vendor/*/bin/codex",
        "@openai/codex/node_modules/@openai/codex-linux-*/vendor/*/codex/codex",
        "@openai/codex-linux-*/vendor/*/bin/codex",
        "@openai/codex-linux-*/vendor/*/codex/codex",
        "@openai/codex/vendor/*/bin/codex",
        "@openai/codex/vendor/*/codex/codex",
        "@openai/codex/bin/codex-*-linux-*",
    ]
    .into_iter()
    .flat_map(npm_modules)
    .collect();
    let codex_scripts: Vec<String> = npm_modules("@openai/codex/bin/codex.js")
        .chain(npm_bins("codex"))
        .collect();

    // Where each host reads MCP configs: the facts table in
    // shared/fixtures/host-configs/README.md. `$XDG_CONFIG_HOME` is each user's,
    // `~/.config` when unset (see `import::discover`).
    // The index in this list is the id the kernel records: append only.
    vec![
        HostProfile {
            configs: claude_code_configs(),
            // `claude` (bin link, native installer link, `node_modules/.bin`), and
            // the npm package's `bin/claude.exe` when run by its own path.
            names: strings(&["claude", "claude.exe"]),
            package_scripts: strings(&["@anthropic-ai/claude-code/cli.js"]),
            ..profile("claude-code", "Claude Code", claude_exe, claude_scripts)
        },
        HostProfile {
            helpers: electron_helpers(&claude_desktop_exe),
            configs: vec![user(
                "$XDG_CONFIG_HOME/Claude/claude_desktop_config.json",
                Schema::ClaudeDesktop,
            )],
            env_probe: true,
            names: strings(&["claude-desktop"]),
            ..profile(
                "claude-desktop",
                "Claude Desktop",
                claude_desktop_exe,
                vec![],
            )
        },
        HostProfile {
            helpers: electron_helpers(&cursor_exe),
            configs: cursor_configs(),
            env_probe: true,
            names: strings(&["cursor"]),
            ..profile("cursor", "Cursor", cursor_exe, vec![])
        },
        HostProfile {
            helpers: electron_helpers(&vscode_exe),
            configs: vscode_family_configs(&[
                "$XDG_CONFIG_HOME/Code/User",
                "$XDG_CONFIG_HOME/Code - Insiders/User",
            ]),
            env_probe: true,
            // The Electron binary is `code` in the .deb, the snap, Flatpak and the
            // tarball; `/usr/bin/code` is a shell wrapper (`#!/usr/bin/env sh`),
            // dropped when it runs its shell.
            names: strings(&["code", "code-insiders"]),
            ..profile("vscode", "Visual Studio Code", vscode_exe, vec![])
        },
        HostProfile {
            helpers: electron_helpers(&vscodium_exe),
            configs: vscode_family_configs(&["$XDG_CONFIG_HOME/VSCodium/User"]),
            env_probe: true,
            names: strings(&["codium"]),
            ..profile("vscodium", "VSCodium", vscodium_exe, vec![])
        },
        HostProfile {
            helpers: electron_helpers(&windsurf_exe),
            configs: windsurf_configs(),
            env_probe: true,
            names: strings(&["windsurf"]),
            ..profile("windsurf", "Windsurf", windsurf_exe, vec![])
        },
        // Zed is not Electron: no helper executables known.
        HostProfile {
            configs: vec![
                user("$XDG_CONFIG_HOME/zed/settings.json", Schema::Zed),
                project(".zed/settings.json", Schema::Zed),
            ],
            names: strings(&["zed-editor"]),
            ..profile("zed", "Zed", zed_exe, vec![])
        },
        HostProfile {
            configs: vec![
                user("~/.gemini/settings.json", Schema::GeminiCli),
                system("/etc/gemini-cli/settings.json", Schema::GeminiCli),
                project(".gemini/settings.json", Schema::GeminiCli),
            ],
            names: strings(&["gemini"]),
            package_scripts: strings(&[
                "@google/gemini-cli/bundle/gemini.js",
                "@google/gemini-cli/dist/index.js",
            ]),
            ..profile("gemini-cli", "Gemini CLI", vec![], gemini_scripts)
        },
        HostProfile {
            configs: vec![
                user("$CODEX_HOME/config.toml", Schema::Codex),
                // Read only in projects the user marked trusted.
                project(".codex/config.toml", Schema::Codex),
            ],
            names: strings(&["codex"]),
            package_scripts: strings(&["@openai/codex/bin/codex.js"]),
            ..profile("codex", "Codex CLI", codex_exe, codex_scripts)
        },
        goose_profile(),
        lm_studio_profile(),
        continue_profile(),
    ]
}

fn claude_code_configs() -> Vec<ConfigLocation> {
    vec![
        // Top-level `mcpServers` = user scope; `projects["/abs"].mcpServers` = local
        // scope; per-project approvals of `.mcp.json` servers.
        user("~/.claude.json", Schema::ClaudeCode),
        // Managed (admin) servers; when present, Claude Code lets users add none.
        system("/etc/claude-code/managed-mcp.json", Schema::ClaudeCode),
        project(".mcp.json", Schema::ClaudeCode),
    ]
}

fn cursor_configs() -> Vec<ConfigLocation> {
    let mut configs = vec![
        user("~/.cursor/mcp.json", Schema::Cursor),
        // Wins over the user file on a name clash.
        project(".cursor/mcp.json", Schema::Cursor),
    ];
    configs.extend(vscode_extension_user_configs(
        "$XDG_CONFIG_HOME/Cursor/User",
    ));
    configs.extend(vscode_extension_shared_configs());
    configs
}

fn windsurf_configs() -> Vec<ConfigLocation> {
    let mut configs = vec![user(
        "~/.codeium/windsurf/mcp_config.json",
        Schema::Windsurf,
    )];
    configs.extend(vscode_extension_user_configs(
        "$XDG_CONFIG_HOME/Windsurf/User",
    ));
    configs.extend(vscode_extension_shared_configs());
    configs
}

fn goose_profile() -> HostProfile {
    // Goose (block/goose, now aaif-goose/goose). CLI: `download_cli.sh` installs the
    // Rust binary to `$GOOSE_BIN_DIR`, default `~/.local/bin/goose`. Desktop: the
    // Electron app (.deb/.rpm from electron-forge) is `/usr/lib/goose/goose` since
    // 1.10.0 (`/usr/lib/goose/Goose` before, goose#5176); it starts the agent server
    // `/usr/lib/goose/resources/bin/goosed` (seen in its logs, goose#3820), and
    // goosed spawns the extensions. `/opt/Goose` (a tarball extracted by hand) —
    // unverified.
    let goose_electron = strings(&[
        "/usr/lib/goose/goose",
        "/usr/lib/goose/Goose",
        "/opt/Goose/goose",
        "/opt/Goose/Goose",
    ]);
    let mut goose_exe = strings(&[
        "~/.local/bin/goose",
        "/usr/lib/goose/resources/bin/goosed",
        "/opt/Goose/resources/bin/goosed",
    ]);
    goose_exe.extend(goose_electron.iter().cloned());
    HostProfile {
        helpers: electron_helpers(&goose_electron),
        configs: vec![user("$XDG_CONFIG_HOME/goose/config.yaml", Schema::Goose)],
        names: strings(&["goose", "goosed"]),
        ..profile("goose", "Goose", goose_exe, vec![])
    }
}

fn lm_studio_profile() -> HostProfile {
    // LM Studio: an Electron app, shipped as an AppImage (`LM-Studio-<v>.AppImage`,
    // mounted at `/tmp/.mount_LM-Stu<random>` with the binary `lm-studio` at the
    // root — unverified) and as a .deb (electron-builder's default
    // `/opt/LM Studio/lm-studio`, or `/opt/lm-studio` — unverified). Its CLI `lms` is installed by the
    // app at `~/.lmstudio/bin/lms` (LM Studio docs); the app, not `lms`, runs MCP
    // servers, but `lms` starts the app's headless server.
    let lm_studio_electron = strings(&[
        "/tmp/.mount_LM-Stu*/lm-studio",
        "/opt/LM Studio/lm-studio",
        "/opt/lm-studio/lm-studio",
    ]);
    let mut lm_studio_exe = lm_studio_electron.clone();
    lm_studio_exe.push("~/.lmstudio/bin/lms".to_owned());
    HostProfile {
        helpers: electron_helpers(&lm_studio_electron),
        configs: vec![user("~/.lmstudio/mcp.json", Schema::LmStudio)],
        names: strings(&["lm-studio", "lms"]),
        ..profile("lm-studio", "LM Studio", lm_studio_exe, vec![])
    }
}

fn continue_profile() -> HostProfile {
    // Continue: the `cn` CLI, npm `@continuedev/cli` (`bin: {cn: "dist/cn.js"}` in
    // 1.5.47, from the registry), a node script. Its IDE extension runs inside VS
    // Code (or JetBrains): those servers are the editor's launches (see
    // `vscode_extension_shared_configs`).
    let continue_scripts: Vec<String> = npm_modules("@continuedev/cli/dist/cn.js")
        .chain(npm_bins("cn"))
        .collect();
    HostProfile {
        configs: vec![
            user("~/.continue/config.yaml", Schema::Continue),
            project(".continue/mcpServers/*.yaml", Schema::Continue),
        ],
        names: strings(&["cn"]),
        package_scripts: strings(&["@continuedev/cli/dist/cn.js"]),
        ..profile("continue", "Continue CLI", vec![], continue_scripts)
    }
}
