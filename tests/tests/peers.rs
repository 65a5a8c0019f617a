//! Real MCP peers against the real kernel and a real `mcpwatchd`: the TypeScript and
//! Python SDK clients (`tests/peers/*-client.*`) starting the real filesystem and
//! time servers, and Claude Code itself as a host, detected by its built-in profile.
//!
//! `cargo xtask setup` installs the peers (`xtask/src/peers.rs`): the npm packages and
//! a venv under `$MCPWATCH_PEERS_DIR` (default `/opt/mcpwatch-peers`), Claude Code with
//! `npm install -g`. Nothing here needs the network: `npx -y
//! @modelcontextprotocol/server-filesystem DIR` run with the peers directory as (an
//! ancestor of) its working directory finds the installed package. When a peer is
//! missing the tests fail and say to run `cargo xtask setup`; they never skip it.
//!
//! Servers are named in mcpServers config files, the files hosts read; approvals go
//! through [`approve_server`], the one place that turns a config entry into consent.
use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use mcpwatch_tests::{exit_code, require_root, Daemon};
use serde_json::{json, Value};

/// PATH of the hosts (and of `mcpwatch approve`, which resolves the command with its
/// caller's PATH): the system's, nothing of cargo's.
const HOST_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
const FS_PACKAGE: &str = "@modelcontextprotocol/server-filesystem";
/// Bound on one client or `claude mcp list` run (the clients give up after 20 s).
#[expect(
    clippy::duration_suboptimal_units,
    reason = "Duration::from_mins needs Rust 1.91; the workspace rust-version is 1.87"
)]
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- the installed peers

/// What `cargo xtask setup` installed, checked before a test starts a daemon.
struct Peers {
    /// `$MCPWATCH_PEERS_DIR` or `/opt/mcpwatch-peers`: `node_modules/` and `venv/`.
    dir: PathBuf,
    /// The peers venv's python (runs `py-client.py`).
    python: PathBuf,
    /// `venv/bin/mcp-server-time`.
    time_server: PathBuf,
    /// `claude` on the hosts' PATH (npm's bin link) and the native ELF it leads to.
    claude: PathBuf,
    claude_exe: PathBuf,
}

fn peers() -> Peers {
    let dir = std::env::var_os("MCPWATCH_PEERS_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/opt/mcpwatch-peers"), PathBuf::from);
    let missing = |what: &str, p: &Path| -> ! {
        panic!(
            "the MCP peers are not installed: {what} ({}) is missing; run `cargo xtask setup` \
             (as root: it installs the npm and PyPI peers into {} and Claude Code with npm -g)",
            p.display(),
            dir.display()
        )
    };
    for rel in [
        "node_modules/@modelcontextprotocol/sdk/package.json",
        "node_modules/@modelcontextprotocol/server-filesystem/package.json",
        "node_modules/.bin/mcp-server-filesystem",
    ] {
        let p = dir.join(rel);
        if !p.exists() {
            missing(rel, &p);
        }
    }
    let python = dir.join("venv/bin/python");
    let time_server = dir.join("venv/bin/mcp-server-time");
    for p in [&python, &time_server] {
        if !p.exists() {
            missing("the peers venv", p);
        }
    }
    let claude = which("claude")
        .unwrap_or_else(|| missing("Claude Code (`claude` on PATH)", Path::new(HOST_PATH)));
    let claude_exe = std::fs::canonicalize(&claude).expect("canonical claude");
    assert!(
        claude_exe.ends_with("@anthropic-ai/claude-code/bin/claude.exe"),
        "{} leads to {}, not npm's @anthropic-ai/claude-code/bin/claude.exe: run `cargo xtask setup`",
        claude.display(),
        claude_exe.display()
    );
    let mut magic = [0u8; 4];
    std::fs::File::open(&claude_exe)
        .and_then(|mut f| f.read_exact(&mut magic))
        .expect("read claude.exe");
    assert_eq!(
        &magic,
        b"\x7fELF",
        "{} is not the native binary (postinstall did not run): run `cargo xtask setup`",
        claude_exe.display()
    );
    Peers {
        dir,
        python,
        time_server,
        claude,
        claude_exe,
    }
}

/// A program on the hosts' PATH, as the kernel will be asked to run it.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(HOST_PATH)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn tool(name: &str) -> String {
    s(&which(name).unwrap_or_else(|| panic!("{name} not on {HOST_PATH}"))).to_owned()
}

fn canon(p: &str) -> String {
    s(&std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}"))).to_owned()
}

/// The `#!` line of a script as the kernel splits it: interpreter and its one argument.
fn shebang(script: &Path) -> Vec<String> {
    let text = std::fs::read(script).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).expect("utf-8 #! line");
    let rest = line
        .strip_prefix("#!")
        .unwrap_or_else(|| panic!("{} has no #! line", script.display()))
        .trim();
    match rest.split_once([' ', '\t']) {
        Some((interp, arg)) => vec![interp.to_owned(), arg.trim().to_owned()],
        None => vec![rest.to_owned()],
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn client_script(name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name))
    .to_owned()
}

// ---------------------------------------------------------------- configs and consent

/// Writes an mcpServers config (the format of `.mcp.json`, Cursor's and Claude
/// Desktop's files, which the clients read and `mcpwatch approve --from-config` will
/// import) with one server.
fn write_config(path: &Path, server: &str, command: &str, args: &[&str], cwd: Option<&Path>) {
    let mut entry = json!({ "command": command, "args": args });
    if let Some(cwd) = cwd {
        entry["cwd"] = json!(s(cwd));
    }
    let cfg = json!({ "mcpServers": { server: entry } });
    // Replaced whole, as editors save: the daemon watching it never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cfg).expect("json")).expect("config");
    std::fs::rename(&tmp, path).expect("config");
}

fn records(d: &Daemon) -> Value {
    let out = d.cli(&["records", "--json"]);
    assert!(out.status.success(), "records: {out:?}");
    serde_json::from_slice(&out.stdout).expect("records json")
}

fn record_ids(d: &Daemon, host: &str) -> Vec<u64> {
    records(d)["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["host"] == host)
        .filter_map(|r| r["id"].as_u64())
        .collect()
}

/// Approves server `server` of config file `config` for `host`, as the user would
/// before the host starts it: `mcpwatch approve --from-config HOST/SERVER --project
/// DIR --yes` (the CLI asks the daemon for its host profiles, the test hosts'
/// `[[host]]` and their config locations included), with the hosts' PATH (the CLI resolves the command as the
/// host will, and the daemon re-reads the file and resolves it with its caller's
/// PATH). Returns the id of the one new record, whose source must name the entry.
fn approve_server(d: &Daemon, host: &str, config: &Path, server: &str) -> u64 {
    let before = record_ids(d, host);
    let selector = format!("{host}/{server}");
    let project = config.parent().expect("config dir");
    let out = d
        .cli_cmd(&[
            "approve",
            "--from-config",
            &selector,
            "--project",
            s(project),
            "--yes",
        ])
        .env("PATH", HOST_PATH)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("mcpwatch approve");
    assert!(
        out.status.success(),
        "approve --from-config {selector} ({}) failed ({:?}): {}\n{}",
        config.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all = records(d);
    let new: Vec<&Value> = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["host"] == host)
        .filter(|r| r["id"].as_u64().is_some_and(|id| !before.contains(&id)))
        .collect();
    assert_eq!(new.len(), 1, "one new record for {host}: {all}");
    assert_eq!(
        new[0]["source"],
        format!("import:{}#{server}", config.display()),
        "{}",
        new[0]
    );
    new[0]["id"].as_u64().expect("id")
}

/// A `[[host]]` for an SDK client run under `mcpwatch run --host NAME`: its entry
/// script, and its config file `mcp.json` in a project directory. The clients read
/// the `mcpServers` layout with `cwd`, which is Gemini CLI's settings format (the
/// schema that names how to read and resolve the file).
fn sdk_host(name: &str, script: &str) -> String {
    format!(
        "[[host]]\nname = \"{name}\"\nscripts = [\"{}\"]\n\
         configs = [{{ path = \"mcp.json\", level = \"project\", schema = \"gemini-cli\" }}]\n",
        client_script(script)
    )
}

fn set_mode(d: &Daemon, host: &str, mode: &str) {
    let out = d.cli(&["mode", host, mode]);
    assert!(out.status.success(), "mode {host} {mode}: {out:?}");
}

// ---------------------------------------------------------------- running peers

/// A finished run: its pid (the host's, for `mcpwatch run` and Claude), exit code,
/// output.
struct Run {
    pid: u64,
    code: i32,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// The client's one JSON result line (its last stdout line).
    fn result(&self) -> Value {
        let text = self.stdout();
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "client printed no JSON result ({e}), exit {}:\nstdout: {text}\nstderr: {}",
                self.code,
                String::from_utf8_lossy(&self.out.stderr)
            )
        })
    }
}

/// Runs `cmd` to completion, killing it (and failing) after `RUN_TIMEOUT`.
fn run_bounded(mut cmd: Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = u64::from(child.id());
    let mut pipes = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .map(|p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    })
    .into_iter();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = pipes.next().expect("stdout").join().expect("stdout reader");
    let stderr = pipes.next().expect("stderr").join().expect("stderr reader");
    Run {
        pid,
        code: exit_code(status),
        out: Output {
            status,
            stdout,
            stderr,
        },
    }
}

/// A clean environment for a host: PATH, HOME (a temp dir), the peers directory and,
/// for `mcpwatch run`, the daemon's bus; nothing of cargo's (`LD_LIBRARY_PATH`).
fn clean_env(cmd: &mut Command, home: &Path, peers: &Peers) {
    cmd.env_clear()
        .env("PATH", HOST_PATH)
        .env("HOME", home)
        .env("MCPWATCH_PEERS_DIR", &peers.dir);
}

/// `mcpwatch run --host HOST -- PROGRAM ARGS...` in a clean environment.
fn run_host(d: &Daemon, host: &str, home: &Path, peers: &Peers, argv: &[&str]) -> Run {
    let mut cli_args = vec!["run", "--host", host, "--"];
    cli_args.extend_from_slice(argv);
    let mut cmd = d.cli_cmd(&cli_args);
    clean_env(&mut cmd, home, peers);
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address);
    run_bounded(cmd)
}

/// `node ts-client.mjs CONFIG SERVER` as host `host`.
fn ts_client(
    d: &Daemon,
    host: &str,
    home: &Path,
    peers: &Peers,
    config: &Path,
    server: &str,
) -> Run {
    let script = client_script("ts-client.mjs");
    run_host(d, host, home, peers, &["node", &script, s(config), server])
}

/// `VENV/bin/python py-client.py CONFIG SERVER` as host `host`.
fn py_client(
    d: &Daemon,
    host: &str,
    home: &Path,
    peers: &Peers,
    config: &Path,
    server: &str,
) -> Run {
    let script = client_script("py-client.py");
    run_host(
        d,
        host,
        home,
        peers,
        &[s(&peers.python), &script, s(config), server],
    )
}

fn assert_ok(run: &Run, server_name: &str, tools: &[&str]) {
    let r = run.result();
    assert_eq!(
        (run.code, &r["ok"]),
        (0, &json!(true)),
        "the client succeeded: {r}\nstderr: {}",
        String::from_utf8_lossy(&run.out.stderr)
    );
    assert_eq!(r["server"]["name"], server_name, "{r}");
    let have: Vec<&str> = r["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in tools {
        assert!(have.contains(t), "tools/list has {t}: {have:?}");
    }
}

fn assert_failed(run: &Run) {
    let r = run.result();
    assert_eq!(r["ok"], false, "the client reports failure: {r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    assert_ne!(run.code, 0, "the client exits non-zero: {r}");
}

// ---------------------------------------------------------------- events

fn argv_of(e: &Value) -> Vec<String> {
    e["argv"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap_or("<non-utf-8>").to_owned())
        .collect()
}

/// The launch of host process `host_pid` whose argv is `argv`, once it has a verdict.
fn wait_launch(d: &Daemon, host_pid: u64, argv: &[String]) -> Value {
    let find = |evs: &[Value]| -> Option<Value> {
        evs.iter()
            .find(|e| {
                e["kind"] == "launch"
                    && e["host"]["pid"] == host_pid
                    && argv_of(e) == argv
                    && e.get("verdict").is_some()
            })
            .cloned()
    };
    let evs = d.wait_events(
        &format!("the launch {argv:?} of host pid {host_pid}"),
        EVENT_TIMEOUT,
        |evs| find(evs).is_some(),
    );
    find(&evs).expect("launch")
}

/// The exit event of `pid`.
fn wait_exit(d: &Daemon, pid: u64) -> Value {
    let evs = d.wait_events(&format!("the exit of pid {pid}"), EVENT_TIMEOUT, |evs| {
        evs.iter().any(|e| e["kind"] == "exit" && e["pid"] == pid)
    });
    evs.into_iter()
        .find(|e| e["kind"] == "exit" && e["pid"] == pid)
        .expect("exit")
}

fn assert_killed(d: &Daemon, launch: &Value) {
    assert_eq!(launch["verdict"]["decision"], "killed", "{launch}");
    assert_eq!(launch["verdict"]["killed"], true, "{launch}");
    assert_eq!(launch["verdict"]["mode"], "enforce", "{launch}");
    assert!(
        launch["verdict"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no consent record"),
        "{launch}"
    );
    let pid = launch["pid"].as_u64().expect("pid");
    let exit = wait_exit(d, pid);
    assert_eq!(
        exit["exit"]["signal"], 9,
        "killed by SIGKILL before it ran: {exit}"
    );
    let session: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "exec" && e["session"] == pid)
        .collect();
    assert!(
        session.is_empty(),
        "nothing ran in a killed launch's session: {session:?}"
    );
}

/// What the kernel executes for `npx -y @modelcontextprotocol/server-filesystem DIR`
/// (a `#!/usr/bin/env node` script): the launch, then the session's execs in order.
fn npx_chain(peers: &Peers, dir: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let npx = tool("npx");
    let bin = s(&peers.dir.join("node_modules/.bin/mcp-server-filesystem")).to_owned();
    let mut launch = shebang(Path::new(&npx));
    launch.extend([npx.clone(), "-y".into(), FS_PACKAGE.into(), dir.into()]);
    let mut server = shebang(Path::new(&bin));
    server.extend([bin.clone(), dir.into()]);
    let session = vec![
        // env execs node in place (same pid), which runs npx-cli;
        vec![
            "node".into(),
            npx,
            "-y".into(),
            FS_PACKAGE.into(),
            dir.into(),
        ],
        // npm exec runs the package's bin through a shell, which forks it;
        vec![
            "sh".into(),
            "-c".into(),
            format!("'mcp-server-filesystem' {dir}"),
        ],
        // the bin link is a #!/usr/bin/env node script: env, then node in place.
        server,
        vec!["node".into(), bin, dir.into()],
    ];
    (launch, session)
}

/// Asserts the whole session of `launch`: exactly `want` (argv of each exec, in
/// order), node images mapped from the real node binary.
fn assert_session(d: &Daemon, launch: &Value, want: &[Vec<String>]) {
    let pid = launch["pid"].as_u64().expect("pid");
    let session = |evs: &[Value]| -> Vec<Value> {
        evs.iter()
            .filter(|e| e["kind"] == "exec" && e["session"] == pid)
            .cloned()
            .collect()
    };
    let evs = d.wait_events(
        &format!("{} session execs of launch {pid}", want.len()),
        EVENT_TIMEOUT,
        |evs| session(evs).len() >= want.len(),
    );
    let got = session(&evs);
    let argvs: Vec<Vec<String>> = got.iter().map(argv_of).collect();
    assert_eq!(argvs, want, "the session's execs, exactly");
    let node = canon(&tool("node"));
    for e in &got {
        if argv_of(e)[0] == "node" {
            assert_eq!(e["exe"]["path"], node.as_str(), "node image: {e}");
        }
        assert_eq!(e["host"], launch["host"], "same host: {e}");
    }
}

// ---------------------------------------------------------------- tests

/// (a) The TypeScript SDK client under `mcpwatch run` in monitor mode: the real
/// filesystem server answers, and the log holds the launch with the kernel's exact
/// argv of npx and every exec of its session (node, sh, the server's node).
#[test]
fn ts_sdk_client_in_monitor_mode_is_followed_through_npx_sh_and_the_server_node() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let d = Daemon::start("");
    let tmp = tempfile::tempdir().expect("tmp");
    let served = tmp.path().join("served");
    std::fs::create_dir(&served).expect("served dir");
    let config = tmp.path().join("mcp.json");
    write_config(
        &config,
        "fs",
        "npx",
        &["-y", FS_PACKAGE, s(&served)],
        Some(&peers.dir),
    );

    let run = ts_client(&d, "ts-monitor", tmp.path(), &peers, &config, "fs");
    assert_ok(
        &run,
        "secure-filesystem-server",
        &["read_file", "list_directory"],
    );

    let evs = d.wait_events("the host start", EVENT_TIMEOUT, |evs| {
        evs.iter()
            .any(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
    });
    let host = evs
        .iter()
        .find(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
        .expect("host_start");
    assert_eq!(host["host"]["name"], "ts-monitor", "{host}");
    assert_eq!(
        argv_of(host),
        ["node", &client_script("ts-client.mjs"), s(&config), "fs"],
        "{host}"
    );

    let (launch_argv, session) = npx_chain(&peers, s(&served));
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_eq!(
        launch["ppid"], run.pid,
        "launched by the client itself: {launch}"
    );
    assert_eq!(launch["filename"], tool("npx").as_str(), "{launch}");
    assert_eq!(
        launch["exe"]["path"],
        canon(&shebang(Path::new(&tool("npx")))[0]).as_str()
    );
    assert_eq!(launch["cwd"], s(&peers.dir), "the config's cwd: {launch}");
    assert_eq!(launch["verdict"]["decision"], "unapproved", "{launch}");
    assert_eq!(launch["verdict"]["mode"], "monitor", "{launch}");
    assert_session(&d, &launch, &session);
    let launches: Vec<Vec<String>> = d
        .events()
        .iter()
        .filter(|e| e["kind"] == "launch" && e["host"]["pid"] == run.pid)
        .map(argv_of)
        .collect();
    assert_eq!(launches, vec![launch_argv], "the client launched one thing");
}

/// (b, c) The TypeScript SDK client in enforce mode: the approved server runs and
/// answers initialize and tools/list; the same server with one argument changed (a
/// different directory) is killed before its first instruction and the client fails.
#[test]
fn ts_sdk_client_in_enforce_mode_gets_the_approved_server_and_one_changed_argument_is_killed() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let host = "ts-enforce";
    let d = Daemon::start(&sdk_host(host, "ts-client.mjs"));
    set_mode(&d, host, "enforce");
    let tmp = tempfile::tempdir().expect("tmp");
    let (approved_dir, other_dir) = (tmp.path().join("approved"), tmp.path().join("other"));
    std::fs::create_dir(&approved_dir).expect("dir");
    std::fs::create_dir(&other_dir).expect("dir");
    let config = tmp.path().join("mcp.json");
    write_config(
        &config,
        "fs",
        "npx",
        &["-y", FS_PACKAGE, s(&approved_dir)],
        Some(&peers.dir),
    );
    let record = approve_server(&d, host, &config, "fs");

    let run = ts_client(&d, host, tmp.path(), &peers, &config, "fs");
    assert_ok(
        &run,
        "secure-filesystem-server",
        &["read_file", "list_directory"],
    );
    let (launch_argv, session) = npx_chain(&peers, s(&approved_dir));
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_eq!(launch["verdict"]["decision"], "allowed", "{launch}");
    assert_eq!(launch["verdict"]["record"], record, "{launch}");
    assert_session(&d, &launch, &session);

    // One argument changed in the config: reported as a change of the approved
    // entry, and the launch is killed.
    write_config(
        &config,
        "fs",
        "npx",
        &["-y", FS_PACKAGE, s(&other_dir)],
        Some(&peers.dir),
    );
    let evs = d.wait_events("the config change", EVENT_TIMEOUT, |evs| {
        evs.iter().any(|e| e["kind"] == "config_change")
    });
    let change = evs
        .iter()
        .find(|e| e["kind"] == "config_change")
        .expect("config_change");
    assert_eq!(change["config"]["file"], s(&config), "{change}");
    assert_eq!(change["config"]["server"], "fs", "{change}");
    assert_eq!(change["config"]["change"], "changed", "{change}");
    assert_eq!(
        change["config"]["diff"],
        json!([format!("argv[3]: {} → {}", s(&approved_dir), s(&other_dir))]),
        "{change}"
    );
    assert_eq!(change["record"], record, "{change}");
    let run = ts_client(&d, host, tmp.path(), &peers, &config, "fs");
    assert_failed(&run);
    let (launch_argv, _) = npx_chain(&peers, s(&other_dir));
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_killed(&d, &launch);
}

/// (d) The Python SDK client with the real `mcp-server-time` in enforce mode: the
/// approved command answers; one argument changed (another time zone) is killed and
/// the client fails. The server is a `#!` script of the venv: the kernel runs the
/// venv's python with the script's path.
#[test]
fn py_sdk_client_in_enforce_mode_gets_the_approved_server_and_one_changed_argument_is_killed() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let host = "py-enforce";
    let d = Daemon::start(&sdk_host(host, "py-client.py"));
    set_mode(&d, host, "enforce");
    let tmp = tempfile::tempdir().expect("tmp");
    let server = s(&peers.time_server);
    let config = tmp.path().join("mcp.json");
    write_config(&config, "time", server, &["--local-timezone", "UTC"], None);
    let record = approve_server(&d, host, &config, "time");

    let kernel_argv = |tz: &str| -> Vec<String> {
        let mut v = shebang(&peers.time_server);
        v.extend([server.to_owned(), "--local-timezone".into(), tz.into()]);
        v
    };
    let run = py_client(&d, host, tmp.path(), &peers, &config, "time");
    assert_ok(&run, "mcp-time", &["get_current_time", "convert_time"]);
    let launch = wait_launch(&d, run.pid, &kernel_argv("UTC"));
    assert_eq!(launch["verdict"]["decision"], "allowed", "{launch}");
    assert_eq!(launch["verdict"]["record"], record, "{launch}");
    assert_eq!(launch["filename"], server, "{launch}");
    assert_eq!(
        launch["exe"]["path"],
        canon(&shebang(&peers.time_server)[0]).as_str(),
        "the interpreter is the mapped executable: {launch}"
    );

    write_config(
        &config,
        "time",
        server,
        &["--local-timezone", "Europe/Paris"],
        None,
    );
    let run = py_client(&d, host, tmp.path(), &peers, &config, "time");
    assert_failed(&run);
    let launch = wait_launch(&d, run.pid, &kernel_argv("Europe/Paris"));
    assert_killed(&d, &launch);
}

/// A home where Claude Code starts every project server, and a project whose
/// `.mcp.json` runs the filesystem server through `npx`.
struct ClaudeProject {
    tmp: tempfile::TempDir,
    home: PathBuf,
    project: tempfile::TempDir,
    config: PathBuf,
    /// argv of the launch, as the kernel sees it, and the session's execs.
    launch_argv: Vec<String>,
    session: Vec<Vec<String>>,
}

fn claude_project(peers: &Peers, prefix: &str) -> ClaudeProject {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).expect("home");
    std::fs::write(
        home.join(".claude/settings.json"),
        r#"{"enableAllProjectMcpServers": true}"#,
    )
    .expect("settings");
    let served = tmp.path().join("served");
    std::fs::create_dir(&served).expect("served dir");
    // Inside the peers directory, so npx finds the installed package offline (Claude
    // starts servers in the project directory and has no per-server cwd).
    let project = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&peers.dir)
        .expect("project dir");
    let config = project.path().join(".mcp.json");
    write_config(&config, "fs", "npx", &["-y", FS_PACKAGE, s(&served)], None);
    let (launch_argv, session) = npx_chain(peers, s(&served));
    ClaudeProject {
        tmp,
        home,
        project,
        config,
        launch_argv,
        session,
    }
}

/// `claude mcp list` in `project` with `home` as HOME: Claude Code spawns each
/// approved project server to check it. Returns the run and the server's status line.
fn claude_mcp_list(peers: &Peers, project: &Path, home: &Path) -> (Run, String) {
    claude_mcp_list_with(&peers.claude, peers, project, home)
}

/// [`claude_mcp_list`] with the `claude` of another install.
fn claude_mcp_list_with(
    claude: &Path,
    peers: &Peers,
    project: &Path,
    home: &Path,
) -> (Run, String) {
    let mut cmd = Command::new(claude);
    cmd.args(["mcp", "list"]).current_dir(project);
    clean_env(&mut cmd, home, peers);
    // No update checks or telemetry (the network is closed anyway).
    cmd.env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    let run = run_bounded(cmd);
    assert_eq!(
        run.code,
        0,
        "claude mcp list: {}\n{}",
        run.stdout(),
        String::from_utf8_lossy(&run.out.stderr)
    );
    let line = run
        .stdout()
        .lines()
        .find(|l| l.starts_with("fs: "))
        .unwrap_or_else(|| panic!("claude mcp list names the server fs: {}", run.stdout()))
        .to_owned();
    (run, line)
}

/// (e) Claude Code as a real host, without `mcpwatch run`: the daemon recognises it
/// by its built-in profile (the npm package's native binary, by inode) and records
/// the launch of its project's `.mcp.json` server with the exact argv. In enforce
/// mode the unapproved server is killed and Claude reports it failed to connect;
/// once approved it connects.
#[test]
fn claude_code_is_detected_by_its_profile_and_its_project_server_is_enforced() {
    if !require_root() {
        return;
    }
    let peers = peers();
    // After setup installed Claude Code: profiles are resolved when the daemon starts.
    let d = Daemon::start("");
    let host = "claude-code";
    let ClaudeProject {
        tmp: _tmp,
        home,
        project,
        config,
        launch_argv,
        session,
    } = claude_project(&peers, "claude-project-");

    // Monitor: detected, launch recorded, server connects.
    let (run, line) = claude_mcp_list(&peers, project.path(), &home);
    assert!(
        line.contains("Connected"),
        "monitor mode lets it run: {line}"
    );
    let evs = d.wait_events("Claude Code detected", EVENT_TIMEOUT, |evs| {
        evs.iter()
            .any(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
    });
    let start = evs
        .iter()
        .find(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
        .expect("host_start");
    assert_eq!(start["host"]["name"], host, "the built-in profile: {start}");
    assert_eq!(start["exe"]["path"], s(&peers.claude_exe), "{start}");
    assert_eq!(argv_of(start), [s(&peers.claude), "mcp", "list"], "{start}");
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_eq!(launch["cwd"], s(project.path()), "{launch}");
    assert_eq!(launch["verdict"]["decision"], "unapproved", "{launch}");
    assert_eq!(launch["verdict"]["mode"], "monitor", "{launch}");
    assert_session(&d, &launch, &session);

    // Enforce, unapproved: killed before it ran; Claude cannot connect.
    set_mode(&d, host, "enforce");
    let (run, line) = claude_mcp_list(&peers, project.path(), &home);
    assert!(line.contains("Failed to connect"), "{line}");
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_killed(&d, &launch);

    // Enforce, approved: connects.
    let record = approve_server(&d, host, &config, "fs");
    let (run, line) = claude_mcp_list(&peers, project.path(), &home);
    assert!(line.contains("Connected"), "approved: {line}");
    let launch = wait_launch(&d, run.pid, &launch_argv);
    assert_eq!(launch["verdict"]["decision"], "allowed", "{launch}");
    assert_eq!(launch["verdict"]["record"], record, "{launch}");
    assert_session(&d, &launch, &session);
}

/// `npm install [-g] --prefix PREFIX --offline` of the Claude Code version setup
/// pinned (from npm's cache, which setup filled), with its postinstall run where
/// npm holds install scripts back, as setup does. Returns the package directory.
fn npm_install_claude(prefix: &Path, global: bool) -> PathBuf {
    let version = claude_version();
    let mut cmd = Command::new(tool("npm"));
    cmd.arg("install");
    if global {
        cmd.arg("-g");
    }
    let out = cmd
        .args([
            "--prefix",
            s(prefix),
            "--offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .arg(format!("@anthropic-ai/claude-code@{version}"))
        .stdin(Stdio::null())
        .output()
        .expect("npm install");
    assert!(
        out.status.success(),
        "npm install --offline of Claude Code {version} into {} (run `cargo xtask setup`, which fills npm's cache): {}",
        prefix.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pkg = if global {
        prefix.join("lib/node_modules/@anthropic-ai/claude-code")
    } else {
        prefix.join("node_modules/@anthropic-ai/claude-code")
    };
    let exe = pkg.join("bin/claude.exe");
    let is_elf = std::fs::read(&exe).is_ok_and(|b| b.starts_with(b"\x7fELF"));
    if !is_elf {
        let out = Command::new(tool("node"))
            .arg("install.cjs")
            .current_dir(&pkg)
            .stdin(Stdio::null())
            .output()
            .expect("postinstall");
        assert!(out.status.success(), "Claude Code's postinstall: {out:?}");
    }
    pkg
}

/// The version of the Claude Code setup installed (its package.json).
fn claude_version() -> String {
    let peers_claude = std::fs::canonicalize(which("claude").expect("claude")).expect("canon");
    let pkg = peers_claude
        .parent()
        .and_then(Path::parent)
        .expect("package dir");
    let v: Value =
        serde_json::from_slice(&std::fs::read(pkg.join("package.json")).expect("package.json"))
            .expect("package.json");
    v["version"].as_str().expect("version").to_owned()
}

/// (f) Claude Code from three install layouts made after the daemon started, none of
/// which a profile lists by path: a real `npm install -g` into an nvm-style prefix,
/// a real project-local `npm install` run as `node_modules/.bin/claude`, and the
/// native installer's layout (`~/.local/share/claude/versions/V` linked from
/// `~/.local/bin/claude`). Each is recognised as claude-code by its name at its
/// first exec, and its project server is killed in enforce mode. Then the prefix's
/// binary is upgraded in place (a new file, as npm does) while the daemon runs: the
/// next start is recognised too.
#[test]
fn claude_code_is_recognised_in_every_install_layout_whenever_installed() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let d = Daemon::start("");
    let host = "claude-code";
    set_mode(&d, host, "enforce");
    let ClaudeProject {
        tmp,
        home,
        project,
        launch_argv,
        ..
    } = claude_project(&peers, "claude-layouts-");

    // The layouts, installed now.
    let nvm = tmp.path().join("nvm/versions/node/v22.12.0");
    let global_pkg = npm_install_claude(&nvm, true);
    let tools = tmp.path().join("tools");
    npm_install_claude(&tools, false);
    let version = claude_version();
    let native = home.join(".local/share/claude/versions").join(&version);
    std::fs::create_dir_all(native.parent().expect("dir")).expect("versions dir");
    std::fs::copy(&peers.claude_exe, &native).expect("copy the native binary");
    std::fs::create_dir_all(home.join(".local/bin")).expect("bin");
    std::os::unix::fs::symlink(&native, home.join(".local/bin/claude")).expect("link");

    let layouts = [
        ("npm -g, nvm prefix", nvm.join("bin/claude")),
        ("project-local", tools.join("node_modules/.bin/claude")),
        ("native installer", home.join(".local/bin/claude")),
    ];
    let check = |what: &str, claude: &Path| {
        let (run, line) = claude_mcp_list_with(claude, &peers, project.path(), &home);
        assert!(line.contains("Failed to connect"), "{what}: {line}");
        let launch = wait_launch(&d, run.pid, &launch_argv);
        assert_eq!(launch["host"]["name"], host, "{what}: {launch}");
        assert_killed(&d, &launch);
        let start = d
            .events()
            .into_iter()
            .find(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
            .unwrap_or_else(|| panic!("{what}: a host_start"));
        assert_eq!(start["host"]["name"], host, "{what}: {start}");
        assert_eq!(start["filename"], s(claude), "{what}: {start}");
        assert!(
            start["message"]
                .as_str()
                .is_some_and(|m| m.contains("recognised by the name `claude`")),
            "{what}: not by a path a profile lists: {start}"
        );
    };
    for (what, claude) in &layouts {
        check(what, claude);
    }

    // Upgraded while the daemon runs: npm writes a new file (a new inode).
    let exe = global_pkg.join("bin/claude.exe");
    let staged = global_pkg.join("bin/claude.exe.new");
    std::fs::copy(&peers.claude_exe, &staged).expect("stage the upgrade");
    std::fs::rename(&staged, &exe).expect("replace");
    check("npm -g, upgraded", &layouts[0].1);
}

/// A host setup installed with `npm install -g` (its `bin` on the hosts' PATH).
fn npm_host(what: &str, bin: &str) -> PathBuf {
    which(bin).unwrap_or_else(|| {
        panic!("{what} (`{bin}` on {HOST_PATH}) is not installed: run `cargo xtask setup` as root")
    })
}

/// `mcpwatch approve --from-config SELECTOR --yes` as the user whose HOME is `home`
/// (the CLI reads that user's config files; the daemon re-reads the file).
fn approve_user_server(d: &Daemon, host: &str, home: &Path, server: &str) -> u64 {
    let before = record_ids(d, host);
    let selector = format!("{host}/{server}");
    let out = d
        .cli_cmd(&["approve", "--from-config", &selector, "--yes"])
        .env("PATH", HOST_PATH)
        .env("HOME", home)
        .env_remove("LD_LIBRARY_PATH")
        .current_dir(home)
        .stdin(Stdio::null())
        .output()
        .expect("mcpwatch approve");
    assert!(
        out.status.success(),
        "approve --from-config {selector} failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    record_ids(d, host)
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap_or_else(|| panic!("a new record of {host}"))
}

/// The `config_change` event of `server` in `file`, once it arrives.
fn wait_config_change(d: &Daemon, file: &Path, server: &str) -> Value {
    let file = s(file).to_owned();
    let find = |evs: &[Value]| -> Option<Value> {
        evs.iter()
            .find(|e| {
                e["kind"] == "config_change"
                    && e["config"]["file"] == file.as_str()
                    && e["config"]["server"] == server
            })
            .cloned()
    };
    let evs = d.wait_events(
        &format!("config_change of {server} in {file}"),
        EVENT_TIMEOUT,
        |evs| find(evs).is_some(),
    );
    find(&evs).expect("config_change")
}

/// The time server's argv as the kernel sees it (its `#!` interpreter first).
fn time_server_argv(peers: &Peers, tz: &str) -> Vec<String> {
    let mut v = shebang(&peers.time_server);
    v.extend([
        s(&peers.time_server).to_owned(),
        "--local-timezone".into(),
        tz.into(),
    ]);
    v
}

/// `home`'s `~/.gemini/settings.json`: the time server with `--local-timezone TZ`.
fn write_gemini_settings(home: &Path, peers: &Peers, tz: &str) {
    std::fs::create_dir_all(home.join(".gemini")).expect("home");
    let v = serde_json::json!({
        // A temporary home is no trusted folder; servers would be disabled.
        "security": {"folderTrust": {"enabled": false}},
        "mcpServers": {"time": {
            "command": s(&peers.time_server),
            "args": ["--local-timezone", tz],
        }},
    });
    std::fs::write(
        home.join(".gemini/settings.json"),
        serde_json::to_vec_pretty(&v).expect("json"),
    )
    .expect("settings");
}

/// `gemini mcp list` with `home` as HOME: Gemini CLI connects to each configured
/// server to report it. Returns the run and the `time` server's line.
fn gemini_mcp_list(gemini: &Path, peers: &Peers, home: &Path) -> (Run, String) {
    let mut cmd = Command::new(gemini);
    cmd.args(["mcp", "list"]).current_dir(home);
    clean_env(&mut cmd, home, peers);
    let run = run_bounded(cmd);
    assert_eq!(
        run.code,
        0,
        "gemini mcp list: {}\n{}",
        run.stdout(),
        String::from_utf8_lossy(&run.out.stderr)
    );
    // Gemini CLI prints the list on stderr.
    let stderr = String::from_utf8_lossy(&run.out.stderr).into_owned();
    let line = stderr
        .lines()
        .chain(run.stdout().lines())
        .find(|l| l.contains("time:"))
        .unwrap_or_else(|| panic!("gemini mcp list names the server time: {stderr}"))
        .to_owned();
    (run, line)
}

/// (g) Gemini CLI from npm as a real host: recognised by its built-in profile
/// without `mcpwatch run`; its server from `~/.gemini/settings.json` approved with
/// `approve --from-config`, connected in enforce mode; one argument edited in that
/// file: a `config_change` event, and the launch is killed.
#[test]
fn gemini_cli_gets_its_approved_server_and_an_edited_argument_is_killed() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let gemini = npm_host("Gemini CLI", "gemini");
    let d = Daemon::start("");
    let host = "gemini-cli";
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let settings = home.join(".gemini/settings.json");
    let write_settings = |tz: &str| write_gemini_settings(&home, &peers, tz);
    write_settings("Europe/Paris");

    // Monitor: recognised, the launch recorded with its exact argv, connected.
    let (run, line) = gemini_mcp_list(&gemini, &peers, &home);
    assert!(
        line.contains("Connected"),
        "monitor mode lets it run: {line}"
    );
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_eq!(
        launch["host"]["name"], host,
        "the built-in profile: {launch}"
    );
    assert_eq!(launch["verdict"]["decision"], "unapproved", "{launch}");
    let start = d
        .events()
        .into_iter()
        .find(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
        .expect("host_start of gemini");
    assert_eq!(start["host"]["name"], host, "{start}");

    // Enforce, unapproved: killed before it ran.
    set_mode(&d, host, "enforce");
    let (run, line) = gemini_mcp_list(&gemini, &peers, &home);
    assert!(!line.contains("Connected"), "killed: {line}");
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_killed(&d, &launch);

    // Approved from its own config file: connects in enforce mode.
    let record = approve_user_server(&d, host, &home, "time");
    let (run, line) = gemini_mcp_list(&gemini, &peers, &home);
    assert!(line.contains("Connected"), "approved: {line}");
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_eq!(launch["verdict"]["decision"], "allowed", "{launch}");
    assert_eq!(launch["verdict"]["record"], record, "{launch}");

    // One argument edited in the file: reported, and the changed launch killed.
    write_settings("Europe/Berlin");
    let change = wait_config_change(&d, &settings, "time");
    assert_eq!(change["config"]["change"], "changed", "{change}");
    assert_eq!(change["config"]["host"], host, "{change}");
    let (run, line) = gemini_mcp_list(&gemini, &peers, &home);
    assert!(
        !line.contains("Connected"),
        "the edited server is killed: {line}"
    );
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Berlin"));
    assert_killed(&d, &launch);
}

/// A model provider that refuses every request (HTTP 400, as an API without the
/// model would): `codex exec` then ends at once with an error, after its session
/// started the MCP servers. On loopback; no account, no network. Returns its URL.
fn refusing_provider() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = vec![0u8; 65536];
            let _ = stream.read(&mut buf);
            let body =
                br#"{"error": {"message": "no model here", "type": "invalid_request_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    format!("http://127.0.0.1:{port}/v1")
}

/// `codex exec` with `home` as HOME (its `~/.codex/config.toml`): Codex starts its
/// MCP servers with the session, before it asks the model, which here is
/// [`refusing_provider`]: the run ends in an error, after the servers were started.
/// Bounded by `RUN_TIMEOUT`.
fn codex_exec(codex: &Path, peers: &Peers, home: &Path) -> Run {
    let mut cmd = Command::new(codex);
    cmd.args(["exec", "--skip-git-repo-check", "say hi"])
        .current_dir(home);
    clean_env(&mut cmd, home, peers);
    cmd.env("OPENAI_API_KEY", "sk-none");
    run_bounded(cmd)
}

/// (h) Codex CLI from npm as a real host: its `codex.js` runs the native binary in
/// place, recognised by the built-in profile; its server from
/// `~/.codex/config.toml` approved with `approve --from-config` runs in enforce
/// mode; one argument edited: a `config_change` event, and the launch is killed.
#[test]
fn codex_cli_runs_its_approved_server_and_an_edited_argument_is_killed() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let codex = npm_host("Codex CLI", "codex");
    let d = Daemon::start("");
    let host = "codex";
    set_mode(&d, host, "enforce");
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".codex")).expect("home");
    let config = home.join(".codex/config.toml");
    let provider = refusing_provider();
    let write_config = |tz: &str| {
        let text = format!(
            "model_provider = \"refusing\"\n\
             [model_providers.refusing]\nname = \"refusing\"\nbase_url = {provider:?}\n\
             wire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\n\
             [mcp_servers.time]\ncommand = {:?}\nargs = [\"--local-timezone\", {tz:?}]\n",
            s(&peers.time_server)
        );
        std::fs::write(&config, text).expect("config.toml");
    };
    write_config("Europe/Paris");

    // Enforce, unapproved: killed before it ran.
    let run = codex_exec(&codex, &peers, &home);
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_eq!(
        launch["host"]["name"], host,
        "the built-in profile: {launch}"
    );
    assert_killed(&d, &launch);

    // Approved from its own config file: runs.
    let record = approve_user_server(&d, host, &home, "time");
    let run = codex_exec(&codex, &peers, &home);
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_eq!(launch["verdict"]["decision"], "allowed", "{launch}");
    assert_eq!(launch["verdict"]["record"], record, "{launch}");
    // It ran: it ended when Codex did, not by mcpwatch's SIGKILL.
    let exit = wait_exit(&d, launch["pid"].as_u64().expect("pid"));
    assert_ne!(exit["exit"]["signal"], 9, "the approved server ran: {exit}");

    // One argument edited: reported, and the changed launch killed.
    write_config("Europe/Berlin");
    let change = wait_config_change(&d, &config, "time");
    assert_eq!(change["config"]["change"], "changed", "{change}");
    let run = codex_exec(&codex, &peers, &home);
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Berlin"));
    assert_killed(&d, &launch);
}

/// (i) Gemini CLI in pnpm's global layout: the real package copied into pnpm's
/// store path (`…/pnpm/global/5/.pnpm/@google+gemini-cli@V/node_modules/@google/
/// gemini-cli`) and started by the shim pnpm writes (`#!/bin/sh`, `exec node
/// "$basedir/…/bundle/gemini.js" "$@"`), made after the daemon started. The shim
/// is no host; `node` on the package's script is, by its package script (the
/// kernel's `HOST_SCRIPT_TAILS`), and its unapproved server is killed in enforce
/// mode.
#[test]
fn gemini_cli_in_pnpms_layout_is_recognised_by_its_package_script() {
    if !require_root() {
        return;
    }
    let peers = peers();
    let gemini = npm_host("Gemini CLI", "gemini");
    let pkg = std::fs::canonicalize(&gemini)
        .expect("canonical gemini")
        .ancestors()
        .nth(2)
        .expect("package dir")
        .to_path_buf();
    let d = Daemon::start("");
    let host = "gemini-cli";
    set_mode(&d, host, "enforce");
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    write_gemini_settings(&home, &peers, "Europe/Paris");
    let pnpm_home = home.join(".local/share/pnpm");
    let store = pnpm_home.join("global/5/.pnpm/@google+gemini-cli@0.61.0/node_modules/@google");
    std::fs::create_dir_all(&store).expect("store");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&pkg)
        .arg(store.join("gemini-cli"))
        .status()
        .expect("cp");
    assert!(status.success(), "copy {}", pkg.display());
    let shim = pnpm_home.join("gemini");
    std::fs::write(
        &shim,
        "#!/bin/sh\n\
         basedir=$(dirname \"$(echo \"$0\" | sed -e 's,\\\\,/,g')\")\n\
         exec node \"$basedir/global/5/.pnpm/@google+gemini-cli@0.61.0/node_modules/@google/gemini-cli/bundle/gemini.js\" \"$@\"\n",
    )
    .expect("shim");
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");

    let (run, line) = gemini_mcp_list(&shim, &peers, &home);
    assert!(
        !line.contains("Connected"),
        "killed in enforce mode: {line}"
    );
    let launch = wait_launch(&d, run.pid, &time_server_argv(&peers, "Europe/Paris"));
    assert_eq!(launch["host"]["name"], host, "{launch}");
    assert_killed(&d, &launch);
    let start = d
        .events()
        .into_iter()
        .find(|e| e["kind"] == "host_start" && e["pid"] == run.pid)
        .expect("host_start");
    assert!(
        start["message"]
            .as_str()
            .is_some_and(|m| m.contains("recognised by its package script")),
        "{start}"
    );
    assert_eq!(
        argv_of(&start)[0],
        "node",
        "the host is node on the script: {start}"
    );
}
