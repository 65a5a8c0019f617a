//! The interpreters' option tables (data): the names each interpreter family goes
//! by, and for each family how its options take values and what they mean for the
//! script.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Python,
    Node,
    Deno,
    Bun,
    Bunx,
    Ruby,
    Perl,
    Php,
    Lua,
    LuaJit,
    Shell,
    Fish,
    Rscript,
    Tcl,
}

/// Interpreter names, after version suffixes are stripped.
pub(super) const NAMES: &[(&str, Family)] = &[
    ("python", Family::Python),
    ("pypy", Family::Python),
    ("node", Family::Node),
    ("nodejs", Family::Node),
    ("deno", Family::Deno),
    ("bun", Family::Bun),
    ("bunx", Family::Bunx),
    ("ruby", Family::Ruby),
    ("perl", Family::Perl),
    ("php", Family::Php),
    ("lua", Family::Lua),
    ("luajit", Family::LuaJit),
    ("sh", Family::Shell),
    ("ash", Family::Shell),
    ("bash", Family::Shell),
    ("dash", Family::Shell),
    ("zsh", Family::Shell),
    ("ksh", Family::Shell),
    ("mksh", Family::Shell),
    ("fish", Family::Fish),
    ("Rscript", Family::Rscript),
    ("tclsh", Family::Tcl),
    ("wish", Family::Tcl),
];

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Takes {
    /// A flag.
    No,
    /// The rest of a short cluster (`-Wignore`), else the next argument (`-W ignore`).
    Next,
    /// Only the rest of the cluster, possibly empty (`perl -i.bak`).
    Attached,
    /// Octal digits, or `x` and hex digits, attached (`perl -0777 -l`), then
    /// the cluster goes on.
    Digits,
}

/// What an option means for the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Nothing: go on.
    Go,
    /// Prints something and exits (`--version`): no code runs.
    Exit,
    /// The value is code and ends option parsing (`python -c`).
    CodeStop,
    /// The value is code; options go on (`node -e`, `perl -e`).
    CodeKeep,
    /// The value names a module loaded by name (the phrase, with `{}` for
    /// the value, says how).
    Module(&'static str),
    /// The value is the script (`php -f FILE`).
    Script,
    /// The value is a directory changed to before the script is looked up.
    Chdir,
    /// The script is looked up in `PATH` (`ruby -S`, `perl -S`).
    PathSearch,
    /// Code is read from standard input, whatever follows (`php -a`).
    Stdin,
    /// A PHP ini setting (`-d auto_prepend_file=x.php` runs code).
    Ini,
    /// Runs code argv cannot bind; the phrase says what.
    Unbind(&'static str),
}

pub(super) type OptTable = &'static [(&'static str, Takes, Then)];
pub(super) type ShortTable = &'static [(u8, Takes, Then)];

/// An interpreter's command line.
pub(super) struct Grammar {
    /// Options matched whole (`--eval`, `-e` when shorts do not cluster);
    /// `--name=value` matches `--name`.
    pub(super) named: OptTable,
    /// Short options, as getopt: `-Bu`, `-Wignore`, `-W ignore`.
    pub(super) shorts: ShortTable,
    /// Whether several short flags may share one argument (`-Bu`).
    pub(super) clusters: bool,
    /// Whether a script still runs after code given in an option (`lua -e`).
    pub(super) script_after_code: bool,
    /// Without a script (or code), the program is read from stdin.
    pub(super) stdin_without_script: bool,
}

pub(super) const PYTHON: Grammar = Grammar {
    named: &[
        ("--check-hash-based-pycs", Takes::Next, Then::Go),
        ("--help", Takes::No, Then::Exit),
        ("--help-env", Takes::No, Then::Exit),
        ("--help-xoptions", Takes::No, Then::Exit),
        ("--help-all", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[
        (b'c', Takes::Next, Then::CodeStop),
        (
            b'm',
            Takes::Next,
            Then::Module("runs module `{}` found on sys.path"),
        ),
        (b'W', Takes::Next, Then::Go),
        (b'X', Takes::Next, Then::Go),
        (b'Q', Takes::Next, Then::Go),
        (b'h', Takes::No, Then::Exit),
        (b'?', Takes::No, Then::Exit),
        (b'V', Takes::No, Then::Exit),
    ],
    clusters: true,
    script_after_code: false,
    stdin_without_script: true,
};

const NODE_MODULE: Then = Then::Module("preloads module `{}`");

pub(super) const NODE: Grammar = Grammar {
    named: &[
        ("-e", Takes::Next, Then::CodeKeep),
        ("--eval", Takes::Next, Then::CodeKeep),
        ("-p", Takes::Next, Then::CodeKeep),
        ("--print", Takes::Next, Then::CodeKeep),
        ("-pe", Takes::Next, Then::CodeKeep),
        ("-r", Takes::Next, NODE_MODULE),
        ("--require", Takes::Next, NODE_MODULE),
        ("--import", Takes::Next, NODE_MODULE),
        ("--loader", Takes::Next, NODE_MODULE),
        ("--experimental-loader", Takes::Next, NODE_MODULE),
        ("-i", Takes::No, Then::Stdin),
        ("--interactive", Takes::No, Then::Stdin),
        (
            "--run",
            Takes::Next,
            Then::Unbind("runs a package.json script"),
        ),
        ("-v", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
        ("-h", Takes::No, Then::Exit),
        ("--help", Takes::No, Then::Exit),
        ("--v8-options", Takes::No, Then::Exit),
        ("-C", Takes::Next, Then::Go),
        ("--conditions", Takes::Next, Then::Go),
        ("--cpu-prof-dir", Takes::Next, Then::Go),
        ("--cpu-prof-name", Takes::Next, Then::Go),
        ("--diagnostic-dir", Takes::Next, Then::Go),
        ("--disable-warning", Takes::Next, Then::Go),
        ("--dns-result-order", Takes::Next, Then::Go),
        (
            "--env-file",
            Takes::Next,
            Then::Unbind("reads variables (NODE_OPTIONS too) from a file"),
        ),
        (
            "--env-file-if-exists",
            Takes::Next,
            Then::Unbind("reads variables (NODE_OPTIONS too) from a file"),
        ),
        ("--heap-prof-dir", Takes::Next, Then::Go),
        ("--heap-prof-name", Takes::Next, Then::Go),
        ("--heapsnapshot-signal", Takes::Next, Then::Go),
        ("--icu-data-dir", Takes::Next, Then::Go),
        ("--input-type", Takes::Next, Then::Go),
        ("--inspect-port", Takes::Next, Then::Go),
        ("--debug-port", Takes::Next, Then::Go),
        ("--localstorage-file", Takes::Next, Then::Go),
        ("--max-http-header-size", Takes::Next, Then::Go),
        ("--openssl-config", Takes::Next, Then::Go),
        ("--redirect-warnings", Takes::Next, Then::Go),
        ("--report-dir", Takes::Next, Then::Go),
        ("--report-directory", Takes::Next, Then::Go),
        ("--report-filename", Takes::Next, Then::Go),
        ("--report-signal", Takes::Next, Then::Go),
        ("--secure-heap", Takes::Next, Then::Go),
        ("--secure-heap-min", Takes::Next, Then::Go),
        ("--snapshot-blob", Takes::Next, Then::Go),
        ("--test-name-pattern", Takes::Next, Then::Go),
        ("--test-reporter", Takes::Next, Then::Go),
        ("--test-reporter-destination", Takes::Next, Then::Go),
        ("--title", Takes::Next, Then::Go),
        ("--tls-cipher-list", Takes::Next, Then::Go),
        ("--tls-keylog", Takes::Next, Then::Go),
        ("--trace-event-categories", Takes::Next, Then::Go),
        ("--trace-event-file-pattern", Takes::Next, Then::Go),
        ("--unhandled-rejections", Takes::Next, Then::Go),
        ("--use-largepages", Takes::Next, Then::Go),
        ("--watch-path", Takes::Next, Then::Go),
    ],
    shorts: &[],
    clusters: false,
    script_after_code: false,
    stdin_without_script: true,
};

pub(super) const DENO: Grammar = Grammar {
    named: &[
        ("-c", Takes::Next, Then::Go),
        ("--config", Takes::Next, Then::Go),
        ("--import-map", Takes::Next, Then::Go),
        ("--lock", Takes::Next, Then::Go),
        ("--cert", Takes::Next, Then::Go),
        ("--location", Takes::Next, Then::Go),
        ("--seed", Takes::Next, Then::Go),
        ("--v8-flags", Takes::Next, Then::Go),
        ("-L", Takes::Next, Then::Go),
        ("--log-level", Takes::Next, Then::Go),
        ("--ext", Takes::Next, Then::Go),
        (
            "--preload",
            Takes::Next,
            Then::Module("preloads module `{}`"),
        ),
        ("-h", Takes::No, Then::Exit),
        ("--help", Takes::No, Then::Exit),
        ("-V", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[],
    clusters: false,
    script_after_code: false,
    stdin_without_script: true,
};

const BUN_MODULE: Then = Then::Module("preloads module `{}`");

pub(super) const BUN: Grammar = Grammar {
    named: &[
        ("-e", Takes::Next, Then::CodeKeep),
        ("--eval", Takes::Next, Then::CodeKeep),
        ("-p", Takes::Next, Then::CodeKeep),
        ("--print", Takes::Next, Then::CodeKeep),
        ("-r", Takes::Next, BUN_MODULE),
        ("--preload", Takes::Next, BUN_MODULE),
        ("--require", Takes::Next, BUN_MODULE),
        ("--import", Takes::Next, BUN_MODULE),
        ("--cwd", Takes::Next, Then::Chdir),
        (
            "--env-file",
            Takes::Next,
            Then::Unbind("reads variables from a file"),
        ),
        ("--tsconfig-override", Takes::Next, Then::Go),
        ("-c", Takes::Next, Then::Go),
        ("--config", Takes::Next, Then::Go),
        ("-d", Takes::Next, Then::Go),
        ("--define", Takes::Next, Then::Go),
        ("-l", Takes::Next, Then::Go),
        ("--loader", Takes::Next, Then::Go),
        ("--port", Takes::Next, Then::Go),
        ("--conditions", Takes::Next, Then::Go),
        ("--main-fields", Takes::Next, Then::Go),
        ("--extension-order", Takes::Next, Then::Go),
        ("--elide-lines", Takes::Next, Then::Go),
        ("-h", Takes::No, Then::Exit),
        ("--help", Takes::No, Then::Exit),
        ("-v", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[],
    clusters: false,
    script_after_code: false,
    stdin_without_script: false,
};

pub(super) const RUBY: Grammar = Grammar {
    named: &[
        ("--help", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
        ("--copyright", Takes::No, Then::Exit),
        ("--encoding", Takes::Next, Then::Go),
        ("--external-encoding", Takes::Next, Then::Go),
        ("--internal-encoding", Takes::Next, Then::Go),
    ],
    shorts: &[
        (b'e', Takes::Next, Then::CodeKeep),
        (b'r', Takes::Next, Then::Module("requires library `{}`")),
        (b'I', Takes::Next, Then::Go),
        (b'C', Takes::Next, Then::Chdir),
        (b'E', Takes::Next, Then::Go),
        (b'S', Takes::No, Then::PathSearch),
        (b'h', Takes::No, Then::Exit),
        (b'0', Takes::Digits, Then::Go),
        (b'T', Takes::Digits, Then::Go),
        (b'W', Takes::Attached, Then::Go),
        (b'x', Takes::Attached, Then::Go),
        (b'F', Takes::Attached, Then::Go),
        (b'i', Takes::Attached, Then::Go),
        (b'K', Takes::Attached, Then::Go),
    ],
    clusters: true,
    script_after_code: false,
    stdin_without_script: true,
};

pub(super) const PERL: Grammar = Grammar {
    named: &[],
    shorts: &[
        (b'e', Takes::Next, Then::CodeKeep),
        (b'E', Takes::Next, Then::CodeKeep),
        (b'M', Takes::Next, Then::Module("loads module `{}`")),
        (b'm', Takes::Next, Then::Module("loads module `{}`")),
        (
            b'd',
            Takes::Attached,
            Then::Module("runs under the debugger module `{}`"),
        ),
        (b'I', Takes::Next, Then::Go),
        (b'S', Takes::No, Then::PathSearch),
        (b'0', Takes::Digits, Then::Go),
        (b'l', Takes::Digits, Then::Go),
        (b'C', Takes::Attached, Then::Go),
        (b'D', Takes::Attached, Then::Go),
        (b'F', Takes::Attached, Then::Go),
        (b'i', Takes::Attached, Then::Go),
        (b'x', Takes::Attached, Then::Go),
        (b'h', Takes::No, Then::Exit),
        (b'v', Takes::No, Then::Exit),
        (b'V', Takes::Attached, Then::Exit),
    ],
    clusters: true,
    script_after_code: false,
    stdin_without_script: true,
};

pub(super) const PHP: Grammar = Grammar {
    named: &[
        ("--ini", Takes::No, Then::Exit),
        ("--rf", Takes::Next, Then::Exit),
        ("--rc", Takes::Next, Then::Exit),
        ("--re", Takes::Next, Then::Exit),
        ("--rz", Takes::Next, Then::Exit),
        ("--ri", Takes::Next, Then::Exit),
        ("--help", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[
        (b'r', Takes::Next, Then::CodeKeep),
        (b'B', Takes::Next, Then::CodeKeep),
        (b'R', Takes::Next, Then::CodeKeep),
        (b'E', Takes::Next, Then::CodeKeep),
        (b'f', Takes::Next, Then::Script),
        (b'F', Takes::Next, Then::Script),
        (b'd', Takes::Next, Then::Ini),
        (b'c', Takes::Next, Then::Go),
        (b't', Takes::Next, Then::Go),
        (b'z', Takes::Next, Then::Module("loads Zend extension `{}`")),
        (
            b'S',
            Takes::Next,
            Then::Unbind("runs the built-in web server"),
        ),
        (b'a', Takes::No, Then::Stdin),
        (b'h', Takes::No, Then::Exit),
        (b'i', Takes::No, Then::Exit),
        (b'm', Takes::No, Then::Exit),
        (b'v', Takes::No, Then::Exit),
    ],
    clusters: true,
    script_after_code: false,
    stdin_without_script: true,
};

const LUA_SHORTS: ShortTable = &[
    (b'e', Takes::Next, Then::CodeKeep),
    (b'l', Takes::Next, Then::Module("loads library `{}`")),
    (b'i', Takes::No, Then::Stdin),
];

pub(super) const LUA: Grammar = Grammar {
    named: &[],
    shorts: LUA_SHORTS,
    clusters: false,
    script_after_code: true,
    stdin_without_script: true,
};

pub(super) const LUAJIT: Grammar = Grammar {
    named: &[],
    shorts: &[
        (b'e', Takes::Next, Then::CodeKeep),
        (b'l', Takes::Next, Then::Module("loads library `{}`")),
        (b'i', Takes::No, Then::Stdin),
        (b'j', Takes::Next, Then::Go),
        (b'O', Takes::Attached, Then::Go),
        (b'b', Takes::No, Then::Exit),
    ],
    clusters: false,
    script_after_code: true,
    stdin_without_script: true,
};

pub(super) const FISH: Grammar = Grammar {
    named: &[
        ("--command", Takes::Next, Then::CodeKeep),
        ("--init-command", Takes::Next, Then::Go),
        ("--debug", Takes::Next, Then::Go),
        ("--debug-output", Takes::Next, Then::Go),
        ("--features", Takes::Next, Then::Go),
        ("--profile", Takes::Next, Then::Go),
        ("--profile-startup", Takes::Next, Then::Go),
        ("--help", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[
        (b'c', Takes::Next, Then::CodeKeep),
        (b'C', Takes::Next, Then::Go),
        (b'd', Takes::Next, Then::Go),
        (b'o', Takes::Next, Then::Go),
        (b'f', Takes::Next, Then::Go),
        (b'p', Takes::Next, Then::Go),
        (b'h', Takes::No, Then::Exit),
        (b'v', Takes::No, Then::Exit),
    ],
    clusters: true,
    script_after_code: false,
    stdin_without_script: true,
};

pub(super) const RSCRIPT: Grammar = Grammar {
    named: &[
        ("-e", Takes::Next, Then::CodeKeep),
        ("--help", Takes::No, Then::Exit),
        ("--version", Takes::No, Then::Exit),
    ],
    shorts: &[],
    clusters: false,
    script_after_code: false,
    // Rscript without a file prints its usage.
    stdin_without_script: false,
};
