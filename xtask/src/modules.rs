//! `cargo xtask modules`: the import graph between the modules of `monitor-daemon`
//! and its cycles (strongly connected components with more than one member).
//!
//! A textual parse, not a compiler; its rules:
//!
//! - **Nodes.** Each top-level module of `monitor-daemon/src` (`x.rs` or
//!   `x/mod.rs`) is a node; inside the folders in [`SPLIT`] each submodule file is
//!   a node of its own (`sensor::ebpf`, `hosts::import`); deeper files and inline
//!   `mod x { .. }` blocks belong to the node of their file. `lib.rs` (only `mod`
//!   lines) and `bin/` (other crates) are not read.
//! - **Test code is skipped:** the item after `#[cfg(test)]` (a `mod tests { .. }`,
//!   a `use`, a `fn`), files declared by a `#[cfg(test)] mod x;`, and every file
//!   named `tests.rs`. Comments and string and char literals are blanked first.
//! - **Edges.** A path `a::b::c` in a `use` tree (braces expanded) or in code
//!   counts when its first segment is `crate`, `self` or `super` (resolved from
//!   the module it is written in, inline modules included), a child module
//!   declared in the same file (`mod raw;` then `raw::X`), or a name an earlier
//!   `use` of the file brought in (`use crate::policy;` then `policy::store::X`;
//!   per file, scopes inside the file are not tracked). The path's longest prefix
//!   that names a node is the target; paths into the same node are no edges.
//!   A parent declaring a child (`mod x;`) is no edge; `pub use` is one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Folders whose submodules are nodes of their own.
pub const SPLIT: &[&str] = &["api", "policy", "sensor", "cli", "hosts", "event"];

/// One edge: the names used through it and where it is first seen.
#[derive(Debug, Default, Clone)]
pub struct Uses {
    pub names: BTreeSet<String>,
    pub first: String,
}

/// The graph: node -> node -> uses.
pub type Graph = BTreeMap<String, BTreeMap<String, Uses>>;

/// `cargo xtask modules [--check] [--edges]`.
pub fn modules_command(check: bool, edges: bool) -> Result<()> {
    let src = crate::util::repo_root().join("monitor-daemon/src");
    let graph = read_crate(&src)?;
    let report = render(&graph, edges);
    print!("{report}");
    let cycles = sccs(&graph).into_iter().filter(|c| c.len() > 1).count();
    if check && cycles > 0 {
        bail!("{cycles} import cycle(s) between the modules of monitor-daemon");
    }
    Ok(())
}

/// The report: node and edge counts, each cycle with its members and its edges.
pub fn render(graph: &Graph, all_edges: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let n_edges: usize = graph.values().map(BTreeMap::len).sum();
    let cycles: Vec<Vec<String>> = sccs(graph).into_iter().filter(|c| c.len() > 1).collect();
    let _ = writeln!(
        out,
        "modules: {} nodes, {} edges (monitor-daemon/src, test code skipped)",
        graph.len(),
        n_edges
    );
    let _ = writeln!(out, "cycles: {}", cycles.len());
    for (i, c) in cycles.iter().enumerate() {
        let _ = writeln!(
            out,
            "\ncycle {}: {} modules: {}",
            i + 1,
            c.len(),
            c.join(", ")
        );
        let members: BTreeSet<&String> = c.iter().collect();
        for from in c {
            for (to, uses) in &graph[from] {
                if members.contains(to) {
                    let _ = writeln!(out, "  {from} -> {to}: {}  ({})", names(uses), uses.first);
                }
            }
        }
    }
    if all_edges {
        let _ = writeln!(out, "\nall edges:");
        for (from, tos) in graph {
            for (to, uses) in tos {
                let _ = writeln!(out, "  {from} -> {to}: {}  ({})", names(uses), uses.first);
            }
        }
    }
    out
}

fn names(uses: &Uses) -> String {
    uses.names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Reads every module file under `src` into the graph.
pub fn read_crate(src: &Path) -> Result<Graph> {
    let mut files = Vec::new();
    collect_files(src, src, &mut files)?;
    files.sort();
    let mut parsed = Vec::new();
    let mut test_files = BTreeSet::new();
    for (rel, modpath) in &files {
        let text = fs::read_to_string(src.join(rel)).with_context(|| format!("reading {rel}"))?;
        let file = parse_file(&text, modpath);
        for t in &file.test_mods {
            let mut p = modpath.clone();
            p.push(t.clone());
            test_files.insert(p);
        }
        parsed.push((rel.clone(), modpath.clone(), file));
    }
    let is_test = |p: &[String]| (1..=p.len()).any(|n| test_files.contains(&p[..n]));
    let nodes: BTreeSet<String> = files
        .iter()
        .filter(|(_, p)| !is_test(p))
        .map(|(_, p)| node_of(p))
        .collect();
    let mut graph: Graph = nodes.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for (rel, modpath, file) in parsed {
        if is_test(&modpath) {
            continue;
        }
        let from = node_of(&modpath);
        for r in file.refs {
            let Some(to) = target(&nodes, &r.path) else {
                continue;
            };
            if to == from {
                continue;
            }
            let e = graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_default();
            if e.first.is_empty() {
                e.first = format!("{rel}:{}", r.line);
            }
            if let Some(last) = r.path.last() {
                e.names.insert(last.clone());
            }
        }
    }
    Ok(graph)
}

/// Module files under `dir` as (path relative to `src`, module path).
fn collect_files(src: &Path, dir: &Path, out: &mut Vec<(String, Vec<String>)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let rel: PathBuf = path.strip_prefix(src)?.to_path_buf();
        let rel_s = rel.to_string_lossy().into_owned();
        if path.is_dir() {
            if rel_s != "bin" {
                collect_files(src, &path, out)?;
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || rel_s == "lib.rs" {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let mut modpath: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if modpath.last().is_some_and(|l| l == "mod") {
            modpath.pop();
        }
        out.push((rel_s, modpath));
    }
    Ok(())
}

/// The node a module path belongs to.
pub fn node_of(modpath: &[String]) -> String {
    match modpath {
        [top, sub, ..] if SPLIT.contains(&top.as_str()) => format!("{top}::{sub}"),
        [top, ..] => top.clone(),
        [] => String::new(),
    }
}

/// The node an absolute path (segments after `crate`) lands in, if any.
fn target(nodes: &BTreeSet<String>, path: &[String]) -> Option<String> {
    let n = node_of(path);
    if nodes.contains(&n) {
        return Some(n);
    }
    let top = path.first()?;
    nodes.contains(top).then(|| top.clone())
}

/// A path found in a file, made absolute (segments after `crate`).
#[derive(Debug, PartialEq)]
pub struct Ref {
    pub path: Vec<String>,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct File {
    pub refs: Vec<Ref>,
    /// `#[cfg(test)] mod x;`: files not to read.
    pub test_mods: Vec<String>,
}

/// Blanks comments and string/char literals (newlines kept, so lines still count).
pub fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (at(i) == 'r' || (at(i) == 'b' && at(i + 1) == 'r'))
            && !is_ident(at(i.wrapping_sub(1)))
            && {
                let s = if at(i) == 'b' { i + 2 } else { i + 1 };
                let mut k = s;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            }
        {
            // Raw string: r"..", r#".."#, br"..".
            let s = if at(i) == 'b' { i + 2 } else { i + 1 };
            let mut k = s;
            while at(k) == '#' {
                k += 1;
            }
            let hashes = k - s;
            for _ in i..=k {
                out.push(' ');
            }
            i = k + 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if at(i) == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if at(i) == '\'' && (at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'')) {
            // A char literal ('x', '\n', '\u{1F600}'); a lifetime ('a) stays.
            out.push(' ');
            i += 1;
            if at(i) == '\\' {
                out.push(' ');
                i += 1;
            }
            while i < c.len() && c[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Colons,
    Open(char),
    Close(char),
    Punct(char),
    CfgTest,
}

/// Tokens with their line numbers; `#[cfg(test)]` becomes one token, other
/// attributes are dropped.
fn tokens(text: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '#' && (c.get(i + 1) == Some(&'[') || c.get(i + 2) == Some(&'[')) {
            // An attribute: #[..] or #![..], brackets balanced.
            let start = i;
            i += if c[i + 1] == '!' { 2 } else { 1 };
            let mut depth = 0;
            while i < c.len() {
                match c[i] {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    '\n' => line += 1,
                    _ => {}
                }
                i += 1;
            }
            let attr: String = c[start..i]
                .iter()
                .filter(|ch| !ch.is_whitespace())
                .collect();
            if attr == "#[cfg(test)]" {
                out.push((Tok::CfgTest, line));
            }
        } else if is_ident(ch) {
            let s = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            // `r#type`: a raw identifier.
            out.push((Tok::Ident(word.trim_start_matches("r#").to_string()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Colons, line));
            i += 2;
        } else if "([{".contains(ch) {
            out.push((Tok::Open(ch), line));
            i += 1;
        } else if ")]}".contains(ch) {
            out.push((Tok::Close(ch), line));
            i += 1;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Drops the item after each `#[cfg(test)]`: up to the `;` or the closing `}` at
/// its own depth. Returns the kept tokens and the names of `#[cfg(test)] mod x;`.
fn drop_test_items(toks: &[(Tok, usize)]) -> (Vec<(Tok, usize)>, Vec<String>) {
    let mut out = Vec::new();
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].0 != Tok::CfgTest {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 1;
        // `mod x;` right after: a test file.
        let mut k = i;
        while matches!(&toks.get(k), Some((Tok::Ident(w), _)) if w == "pub" || w == "crate")
            || matches!(toks.get(k), Some((Tok::Open('(') | Tok::Close(')'), _)))
        {
            k += 1;
        }
        if let (Some((Tok::Ident(m), _)), Some((Tok::Ident(name), _)), Some((Tok::Punct(';'), _))) =
            (toks.get(k), toks.get(k + 1), toks.get(k + 2))
        {
            if m == "mod" {
                test_mods.push(name.clone());
            }
        }
        let mut depth = 0i32;
        while i < toks.len() {
            match &toks[i].0 {
                Tok::Open(_) => depth += 1,
                Tok::Close(ch) => {
                    depth -= 1;
                    if depth == 0 && *ch == '}' {
                        i += 1;
                        // `struct S { .. };` is not Rust; an item ends at its `}`.
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    (out, test_mods)
}

/// Expands a `use` tree starting at `toks[i]` (after `use`); returns paths and the
/// index after the tree. Each path keeps its alias (`as x`) as the last element of
/// the pair, or its last segment.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String, usize)>,
) -> usize {
    let mut path = prefix.to_vec();
    if matches!(toks.get(i), Some((Tok::Colons, _))) {
        i += 1; // `use ::std::..`
    }
    loop {
        match toks.get(i) {
            Some((Tok::Ident(w), line)) => {
                path.push(w.clone());
                i += 1;
                if matches!(toks.get(i), Some((Tok::Colons, _))) {
                    i += 1;
                    continue;
                }
                let mut alias = w.clone();
                if matches!(toks.get(i), Some((Tok::Ident(a), _)) if a == "as") {
                    if let Some((Tok::Ident(a), _)) = toks.get(i + 1) {
                        alias.clone_from(a);
                    }
                    i += 2;
                }
                if alias == "self" {
                    path.pop();
                    alias = path.last().cloned().unwrap_or_default();
                }
                out.push((path, alias, *line));
                return i;
            }
            Some((Tok::Punct('*'), line)) => {
                out.push((path, String::new(), *line));
                return i + 1;
            }
            Some((Tok::Open('{'), _)) => {
                i += 1;
                loop {
                    match toks.get(i) {
                        Some((Tok::Close('}'), _)) => return i + 1,
                        Some((Tok::Punct(','), _)) => i += 1,
                        None => return i,
                        _ => {
                            let before = i;
                            i = use_tree(toks, i, &path, out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => return i,
        }
    }
}

/// A path written in module `cur`, made absolute, if it names something of the crate.
fn resolve(
    cur: &[String],
    path: &[String],
    children: &BTreeSet<Vec<String>>,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut abs: Vec<String>;
    let mut rest = &path[1..];
    match first.as_str() {
        "crate" => abs = Vec::new(),
        "self" => abs = cur.to_vec(),
        "super" => {
            abs = cur.to_vec();
            abs.pop();
            while rest.first().is_some_and(|s| s == "super") {
                abs.pop();
                rest = &rest[1..];
            }
        }
        _ => {
            let mut child = cur.to_vec();
            child.push(first.clone());
            if children.contains(&child) {
                abs = child;
            } else if let Some(a) = aliases.get(first) {
                abs = a.clone();
            } else {
                return None;
            }
        }
    }
    abs.extend(rest.iter().cloned());
    Some(abs)
}

/// The absolute paths (segments after `crate`) a file refers to.
pub fn parse_file(text: &str, modpath: &[String]) -> File {
    let (toks, test_mods) = drop_test_items(&tokens(&strip(text)));
    // Child modules declared by `mod x;` (or `mod x {`) in this file, by the
    // module path they are declared in.
    let mut children: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut refs = Vec::new();
    // Inline modules: (module path, brace depth at which it closes).
    let mut scope: Vec<(Vec<String>, i32)> = vec![(modpath.to_vec(), -1)];
    let mut depth = 0i32;
    let mut i = 0;
    while i < toks.len() {
        let cur = scope.last().map(|s| s.0.clone()).unwrap_or_default();
        match &toks[i].0 {
            Tok::Open('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Close('}') => {
                if scope.len() > 1 && scope.last().is_some_and(|s| s.1 == depth) {
                    scope.pop();
                }
                depth -= 1;
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                    let mut child = cur.clone();
                    child.push(name.clone());
                    children.insert(child.clone());
                    if matches!(toks.get(i + 2), Some((Tok::Open('{'), _))) {
                        depth += 1;
                        scope.push((child, depth));
                        i += 3;
                        continue;
                    }
                }
                i += 1;
            }
            Tok::Ident(w) if w == "use" => {
                let mut found = Vec::new();
                i = use_tree(&toks, i + 1, &[], &mut found);
                for (path, alias, line) in found {
                    if let Some(abs) = resolve(&cur, &path, &children, &aliases) {
                        if !alias.is_empty() {
                            aliases.insert(alias, abs.clone());
                        }
                        refs.push(Ref { path: abs, line });
                    }
                }
            }
            Tok::Ident(w) if !matches!(i.checked_sub(1).map(|p| &toks[p].0), Some(Tok::Colons)) => {
                // A path in code: ident (:: ident)*.
                let line = toks[i].1;
                let mut path = vec![w.clone()];
                let mut k = i + 1;
                while let (Some((Tok::Colons, _)), Some((Tok::Ident(n), _))) =
                    (toks.get(k), toks.get(k + 1))
                {
                    path.push(n.clone());
                    k += 2;
                }
                if path.len() > 1 {
                    if let Some(abs) = resolve(&cur, &path, &children, &aliases) {
                        refs.push(Ref { path: abs, line });
                    }
                }
                i = k;
            }
            _ => i += 1,
        }
    }
    File { refs, test_mods }
}

/// Strongly connected components (Tarjan), each sorted, in sorted order.
pub fn sccs(graph: &Graph) -> Vec<Vec<String>> {
    struct St<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(st: &mut St<'a>, v: &'a str) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on.insert(v);
        if let Some(tos) = st.graph.get(v) {
            for w in tos.keys() {
                let w = w.as_str();
                if !st.index.contains_key(w) {
                    visit(st, w);
                    let lw = st.low[w];
                    let lv = st.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if st.on.contains(w) {
                    let iw = st.index[w];
                    let lv = st.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            comp.sort();
            st.out.push(comp);
        }
    }
    let mut st = St {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let mut all: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    for tos in graph.values() {
        all.extend(tos.keys().map(String::as_str));
    }
    for v in all {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out.sort();
    st.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(s: &str) -> Vec<String> {
        s.split("::").map(String::from).collect()
    }

    fn paths(text: &str, modpath: &str) -> Vec<String> {
        parse_file(text, &mp(modpath))
            .refs
            .into_iter()
            .map(|r| r.path.join("::"))
            .collect()
    }

    #[test]
    fn strip_blanks_comments_and_literals_but_keeps_lines() {
        let s = strip("a // crate::x\n/* crate::y /* n */ */ \"crate::z\\\"\" r#\"crate::w\"# 'c' '\\n' 'a b\n");
        assert!(!s.contains("crate"), "{s}");
        assert_eq!(s.lines().count(), 2);
        assert!(s.contains("'a b"), "a lifetime stays: {s}");
    }

    #[test]
    fn use_trees_expand_and_resolve() {
        let text = "use crate::{config::{Mode, self}, journal::LOG as L};\nuse super::Thing;\nuse std::fs;\n";
        assert_eq!(
            paths(text, "policy::store"),
            ["config::Mode", "config", "journal::LOG", "policy::Thing"]
        );
    }

    #[test]
    fn code_paths_children_aliases_and_inline_modules() {
        let text = "mod raw;\nuse crate::policy;\nfn f() { raw::X; policy::store::Y; crate::a::b(); x.y::<T>(); }\n\
                    pub mod client { use super::Z; fn g() { super::super::q::r(); } }\nfn h() { self::k::l(); }\n";
        assert_eq!(
            paths(text, "event"),
            [
                "policy",
                "event::raw::X",
                "policy::store::Y",
                "a::b",
                "event::Z",
                "q::r",
                "event::k::l"
            ]
        );
    }

    #[test]
    fn cfg_test_items_are_skipped() {
        let text = "#[cfg(test)]\nmod tests { use crate::a::B; }\n#[cfg(test)]\nuse crate::c::D;\n\
                    #[cfg(test)] mod fixtures;\n#[cfg(test)]\nfn t() { crate::e::f(); }\nuse crate::g::H;\n";
        let f = parse_file(text, &mp("x"));
        assert_eq!(
            f.refs,
            [Ref {
                path: mp("g::H"),
                line: 8
            }]
        );
        assert_eq!(f.test_mods, ["fixtures"]);
    }

    #[test]
    fn nodes_split_only_the_listed_folders() {
        assert_eq!(node_of(&mp("sensor::ebpf")), "sensor::ebpf");
        assert_eq!(node_of(&mp("hosts::import::jsonc")), "hosts::import");
        assert_eq!(node_of(&mp("tracker")), "tracker");
        let nodes: BTreeSet<String> = ["sensor", "sensor::ebpf", "config"]
            .map(String::from)
            .into();
        assert_eq!(
            target(&nodes, &mp("sensor::ebpf::Sensor")).as_deref(),
            Some("sensor::ebpf")
        );
        assert_eq!(
            target(&nodes, &mp("sensor::Thing")).as_deref(),
            Some("sensor")
        );
        assert_eq!(
            target(&nodes, &mp("config::Mode")).as_deref(),
            Some("config")
        );
        assert_eq!(target(&nodes, &mp("nowhere::X")), None);
    }

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), Uses::default());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn scc_finds_cycles_only() {
        let g = graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
        ]);
        let big: Vec<Vec<String>> = sccs(&g).into_iter().filter(|c| c.len() > 1).collect();
        assert_eq!(big, [mp("a::b::c").clone(), mp("d::e")]);
        let dag = graph(&[("a", "b"), ("b", "c"), ("a", "c")]);
        assert!(sccs(&dag).iter().all(|c| c.len() == 1));
        let r = render(&g, false);
        assert!(r.contains("cycles: 2"), "{r}");
        assert!(r.contains("cycle 1: 3 modules: a, b, c"), "{r}");
        assert!(r.contains("  c -> a: "), "{r}");
        assert!(
            !r.contains("c -> d"),
            "an edge leaving the cycle is not part of it: {r}"
        );
    }
}
