use super::*;

pub(crate) const SHA_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub(crate) fn sample() -> Record {
    Record {
        id: 1,
        host: "claude-code".to_owned(),
        exe: FileBinding {
            path: "/usr/bin/node".to_owned(),
            sha256: SHA_A.to_owned(),
            arg: None,
        },
        script: None,
        resolved: None,
        argv: vec![
            Bytes::from("npx"),
            Bytes::from("-y"),
            Bytes::from("@modelcontextprotocol/server-filesystem"),
            Bytes::from("/tmp/project"),
        ],
        cwd: None,
        env: BTreeMap::new(),
        scope: Scope::Always,
        source: Source::User(1000),
        created: "2026-11-27T10:00:00Z".to_owned(),
        note: String::new(),
        uid: 1000,
    }
}

#[test]
fn sample_record_is_valid_and_shows_its_command() {
    let r = sample();
    r.validate().unwrap();
    assert_eq!(
        r.command_line(),
        "npx -y @modelcontextprotocol/server-filesystem /tmp/project"
    );
    let mut r = sample();
    r.argv.push(Bytes::from("a b"));
    r.argv.push(Bytes(vec![0xff]));
    assert!(r.command_line().ends_with(" 'a b' $'\\xff'"));
}

#[test]
fn json_shape_is_stable_and_round_trips() {
    let mut r = sample();
    r.script = Some(FileBinding {
        path: "/opt/srv/run.sh".to_owned(),
        sha256: SHA_A.to_owned(),
        arg: None,
    });
    r.cwd = Some(Bytes::from("/srv"));
    r.env.insert(
        "NODE_OPTIONS".to_owned(),
        Some(Bytes::from("--max-old-space-size=512")),
    );
    r.env.insert("LD_PRELOAD".to_owned(), None);
    r.scope = Scope::Until("2026-12-01T00:00:00Z".to_owned());
    r.source = Source::Import {
        file: "/home/u/.cursor/mcp.json".to_owned(),
        server: "github".to_owned(),
    };
    r.note = "from import".to_owned();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v["scope"],
        serde_json::json!({"until": "2026-12-01T00:00:00Z"})
    );
    assert_eq!(v["source"], "import:/home/u/.cursor/mcp.json#github");
    assert_eq!(v["env"]["LD_PRELOAD"], serde_json::Value::Null);
    assert_eq!(v["exe"]["path"], "/usr/bin/node");
    let back: Record = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);

    // Optional fields are omitted when empty, and may be left out when reading.
    let v = serde_json::to_value(sample()).unwrap();
    let obj = v.as_object().unwrap();
    for absent in ["script", "cwd", "note"] {
        assert!(!obj.contains_key(absent), "{absent}");
    }
    assert_eq!(v["scope"], "always");
    assert_eq!(v["source"], "user:1000");
    let mut obj = obj.clone();
    obj.remove("env");
    let back: Record = serde_json::from_value(serde_json::Value::Object(obj)).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn unknown_fields_are_rejected() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["args"] = serde_json::json!([]);
    let err = serde_json::from_value::<Record>(v).unwrap_err();
    assert!(err.to_string().contains("unknown field `args`"), "{err}");
    let mut v = serde_json::to_value(sample()).unwrap();
    v["exe"]["hash"] = serde_json::json!("x");
    assert!(serde_json::from_value::<Record>(v).is_err());
}

#[test]
fn non_utf8_argv_is_exact_in_json() {
    let mut r = sample();
    r.argv = vec![Bytes::from("/bin/cat"), Bytes(vec![b'/', 0xff])];
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#"{"base64":"L/8="}"#), "{json}");
    assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
}

#[test]
fn scope_parses_the_cli_forms() {
    assert_eq!("once".parse::<Scope>(), Ok(Scope::Once));
    assert_eq!("always".parse::<Scope>(), Ok(Scope::Always));
    assert_eq!(
        "until=2026-12-01T00:00:00Z".parse::<Scope>(),
        Ok(Scope::Until("2026-12-01T00:00:00Z".to_owned()))
    );
    for s in [
        Scope::Once,
        Scope::Always,
        Scope::Until("2026-12-01T00:00:00Z".into()),
    ] {
        assert_eq!(s.to_string().parse::<Scope>(), Ok(s));
    }
    let err = "until=tomorrow".parse::<Scope>().unwrap_err().to_string();
    assert!(
        err.starts_with("scope `until=tomorrow`: not an RFC 3339 time"),
        "{err}"
    );
    let err = "forever".parse::<Scope>().unwrap_err().to_string();
    assert!(
        err.contains("expected `once`, `always` or `until="),
        "{err}"
    );
    let json: Scope = serde_json::from_str(r#""once""#).unwrap();
    assert_eq!(json, Scope::Once);
}

#[test]
fn source_round_trips_through_its_string_form() {
    for (text, source) in [
        ("user:1000", Source::User(1000)),
        (
            "managed:/etc/mcpwatch/policy.d/a.toml",
            Source::Managed("/etc/mcpwatch/policy.d/a.toml".to_owned()),
        ),
        (
            "import:/home/u/.cursor/mcp.json#github",
            Source::Import {
                file: "/home/u/.cursor/mcp.json".to_owned(),
                server: "github".to_owned(),
            },
        ),
        // `#` in the path: the split is on the last `#`.
        (
            "import:/home/u/my#dir/mcp.json#srv",
            Source::Import {
                file: "/home/u/my#dir/mcp.json".to_owned(),
                server: "srv".to_owned(),
            },
        ),
        // `#` and `%` in the server name are escaped.
        (
            "import:/a#dir/mcp.json#a%23b%25c",
            Source::Import {
                file: "/a#dir/mcp.json".to_owned(),
                server: "a#b%c".to_owned(),
            },
        ),
        (
            "import:/a.json#",
            Source::Import {
                file: "/a.json".to_owned(),
                server: String::new(),
            },
        ),
    ] {
        assert_eq!(text.parse::<Source>().as_ref(), Ok(&source), "{text}");
        assert_eq!(source.to_string(), text);
        let json = serde_json::to_string(&source).unwrap();
        assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), source);
    }
}

#[test]
fn bad_sources_are_rejected_with_the_reason() {
    for (text, why) in [
        ("root", "expected `user:UID`"),
        ("user:bob", "uid is not a number"),
        ("user:-1", "uid is not a number"),
        ("managed:", "file is empty"),
        ("import:/a.json", "expected `import:FILE#SERVER`"),
        ("import:#srv", "file is empty"),
        ("import:/a.json#x%2", "`%23` (#) or `%25` (%)"),
        ("import:/a.json#x%41", "`%23` (#) or `%25` (%)"),
        ("cloud:x", "expected `user:UID`"),
    ] {
        let err = text.parse::<Source>().unwrap_err().to_string();
        assert!(err.starts_with(&format!("source `{text}`: ")), "{err}");
        assert!(err.contains(why), "{text}: {err}");
    }
    assert!(serde_json::from_str::<Source>(r#""user:x""#).is_err());
}

#[test]
fn normalized_env_pins_every_security_name() {
    let mut r = sample();
    r.env
        .insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--inspect=0")));
    let env = r.normalized_env();
    assert_eq!(env.len(), SECURITY_ENV.len());
    for name in SECURITY_ENV {
        let want = (*name == "NODE_OPTIONS").then(|| Bytes::from("--inspect=0"));
        assert_eq!(env[*name], want, "{name}");
    }
}

#[test]
fn env_matches_requires_equal_values_and_absence_elsewhere() {
    let mut r = sample();
    r.env
        .insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--a")));
    let required = r.normalized_env();
    let actual = |pairs: &[(&str, &str)]| -> BTreeMap<String, Bytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::from(*v)))
            .collect()
    };
    assert!(env_matches(&required, &actual(&[("NODE_OPTIONS", "--a")])));
    // Required value missing, or different.
    assert!(!env_matches(&required, &actual(&[])));
    assert!(!env_matches(&required, &actual(&[("NODE_OPTIONS", "--b")])));
    // A name pinned to absent is set.
    assert!(!env_matches(
        &required,
        &actual(&[("NODE_OPTIONS", "--a"), ("LD_PRELOAD", "/tmp/x.so")])
    ));
    // Even set to the empty string.
    assert!(!env_matches(
        &required,
        &actual(&[("NODE_OPTIONS", "--a"), ("LD_PRELOAD", "")])
    ));
    // A record's raw map (not normalized) means the same: unmentioned = absent.
    assert!(env_matches(&r.env, &actual(&[("NODE_OPTIONS", "--a")])));
    assert!(!env_matches(
        &r.env,
        &actual(&[("NODE_OPTIONS", "--a"), ("PYTHONPATH", "/x")])
    ));
    assert!(env_matches(&BTreeMap::new(), &BTreeMap::new()));
    // A family member: pinned when the record has it, unset otherwise.
    r.env.insert(
        "npm_config_registry".to_owned(),
        Some(Bytes::from("https://r/")),
    );
    let required = r.normalized_env();
    assert!(env_matches(
        &required,
        &actual(&[
            ("NODE_OPTIONS", "--a"),
            ("npm_config_registry", "https://r/")
        ])
    ));
    assert!(!env_matches(
        &required,
        &actual(&[
            ("NODE_OPTIONS", "--a"),
            ("npm_config_registry", "http://evil/")
        ])
    ));
    assert!(!env_matches(
        &required,
        &actual(&[
            ("NODE_OPTIONS", "--a"),
            ("npm_config_registry", "https://r/"),
            ("GIT_CONFIG_COUNT", "1")
        ])
    ));
    assert!(r.validate().is_ok());
    r.env.insert("HOME".to_owned(), None);
    assert!(r
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not a security-relevant"));
}

#[test]
fn until_expires_at_its_time_and_unparseable_counts_as_expired() {
    let at = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
    let mut r = sample();
    assert!(!r.is_expired(at("2999-01-01T00:00:00Z")));
    r.scope = Scope::Once;
    assert!(!r.is_expired(at("2999-01-01T00:00:00Z")));
    r.scope = Scope::Until("2026-12-01T00:00:00Z".to_owned());
    assert!(!r.is_expired(at("2026-11-30T23:59:59Z")));
    assert!(r.is_expired(at("2026-12-01T00:00:00Z")));
    // Offsets are compared as instants.
    assert!(r.is_expired(at("2026-12-01T01:00:00+01:00")));
    assert!(!r.is_expired(at("2026-12-01T00:59:59+01:00")));
    r.scope = Scope::Until("soon".to_owned());
    assert!(r.is_expired(at("2000-01-01T00:00:00Z")));
}

#[test]
fn validate_names_every_problem() {
    type Breaker = Box<dyn Fn(&mut Record)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (Box::new(|r| r.host.clear()), "host is empty"),
        (Box::new(|r| r.argv.clear()), "argv is empty"),
        (
            Box::new(|r| r.argv[1] = Bytes::from("a\0b")),
            "argv[1] contains a NUL byte",
        ),
        (
            Box::new(|r| r.exe.path = "node".to_owned()),
            "exe path \"node\" is not absolute",
        ),
        (
            Box::new(|r| r.exe.sha256 = SHA_A.to_uppercase()),
            "exe sha256",
        ),
        (
            Box::new(|r| r.exe.sha256 = SHA_A[..63].to_owned()),
            "not 64 lowercase hex digits",
        ),
        (
            Box::new(|r| {
                r.script = Some(FileBinding {
                    path: "/opt/run.sh".to_owned(),
                    sha256: "zz".to_owned(),
                    arg: None,
                });
            }),
            "script sha256 \"zz\"",
        ),
        (
            Box::new(|r| {
                r.script = Some(FileBinding {
                    path: "run.sh".to_owned(),
                    sha256: SHA_A.to_owned(),
                    arg: None,
                });
            }),
            "script path \"run.sh\" is not absolute",
        ),
        (
            Box::new(|r| r.cwd = Some(Bytes::from("srv"))),
            "cwd srv is not an absolute path",
        ),
        (
            Box::new(|r| {
                r.env.insert("PATH".to_owned(), None);
            }),
            "env names PATH, which is not a security-relevant variable",
        ),
        (
            Box::new(|r| r.scope = Scope::Until("2026-13-01T00:00:00Z".to_owned())),
            "scope until `2026-13-01T00:00:00Z`: not an RFC 3339 time",
        ),
        (
            Box::new(|r| r.created = "yesterday".to_owned()),
            "created `yesterday`: not an RFC 3339 time",
        ),
    ];
    for (break_it, want) in cases {
        let mut r = sample();
        break_it(&mut r);
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn argv_longer_than_the_kernel_capture_bound_is_rejected() {
    let mut r = sample();
    // Exactly at the bound: "x"*(ARGV_CAP - 1) plus its NUL.
    r.argv = vec![Bytes(vec![b'x'; ARGV_CAP - 1])];
    assert_eq!(argv_bytes(&r.argv), ARGV_CAP);
    r.validate().unwrap();
    r.argv = vec![Bytes(vec![b'x'; ARGV_CAP - 2]), Bytes::from("")];
    assert_eq!(argv_bytes(&r.argv), ARGV_CAP);
    r.validate().unwrap();
    r.argv.push(Bytes::from(""));
    let err = r.validate().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "argv is {} bytes (NUL terminators included); the kernel captures at most \
             {ARGV_CAP}, so a longer command can never be matched in the kernel",
            ARGV_CAP + 1
        )
    );
}
