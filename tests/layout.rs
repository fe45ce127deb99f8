//! Guards the layout of `src/` (std only, no Redis needed):
//!
//! 1. no file under `src/` is longer than [`MAX_LINES`] lines;
//! 2. no import cycle between the modules of `src/`.
//!
//! **Modules.** Every file is one module: `a/b.rs` and `a/b/mod.rs` are
//! `a::b`, `lib.rs` is the crate root. Left out: `main.rs` (the binary, a
//! crate of its own) and test files (`tests.rs`, `*_tests.rs`).
//!
//! **Edges.** A → B when the non-test code of A names B, or an item inside
//! B, through a `crate::`, `super::` or `self::` path: in a `use` (each leaf
//! of a grouped `use crate::{a::{b, c}, d};`) or inline in code
//! (`crate::metrics::redirect("moved")`). A path resolves to its longest
//! prefix that is a module file (`crate::cluster::Slot` → `cluster`).
//! `super` is the parent of the file's module (of `a::b` for both `a/b.rs`
//! and `a/b/mod.rs`), `self` the module itself; inline `mod x { … }` blocks
//! are followed. Comments, string and char literals and items under
//! `#[cfg(test)]` are skipped.
//!
//! **Ancestors and descendants do not count:** an edge between a module and
//! its own ancestor or descendant is ignored. A parent declaring or
//! re-exporting its children, and a child using its parent's items, are the
//! normal shape of a module tree, not a cycle.
//!
//! A cycle is a strongly connected component (Tarjan) of more than one
//! module; the failure lists its modules and the file and line of every
//! edge inside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a file under `src/` may be.
const MAX_LINES: usize = 600;

/// A token of Rust source; comments and string/char literals never become one.
#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Tokens with their source line.
type Toks = [(Tok, usize)];

/// `text` as (token, 1-based line) pairs.
fn tokenize(text: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = text.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or(' ');
    let find = |from: usize, ch: char| (from..c.len()).find(|&k| c[k] == ch).unwrap_or(c.len());
    let is_word = |k: usize| at(k).is_alphanumeric() || at(k) == '_';
    let (mut i, mut out, mut line, mut counted) = (0, Vec::new(), 1, 0);
    while i < c.len() {
        // Comments and literals: skipped.
        let skip_to = match (c[i], at(i + 1)) {
            ('/', '/') => Some(find(i, '\n')),
            ('/', '*') => Some(comment_end(&c, i)),
            ('"', _) => Some(string_end(&c, i + 1, None)),
            ('\'', '\\') => Some(find(i + 3, '\'') + 1), // '\n', '\u{..}'
            ('\'', _) => Some(i + if at(i + 2) == '\'' { 3 } else { 1 }), // 'x', or a lifetime
            _ => None,
        };
        if let Some(next) = skip_to {
            i = next;
            continue;
        }
        let start = i;
        let tok = if is_word(i) {
            i = (i..c.len()).find(|&k| !is_word(k)).unwrap_or(c.len());
            let hashes = (i..).take_while(|&k| at(k) == '#').count();
            if matches!(c[start..i], ['r'] | ['b', 'r']) && at(i + hashes) == '"' {
                i = string_end(&c, i + hashes + 1, Some(hashes)); // r"..", r#".."#, br".."
                continue;
            }
            Tok::Ident(c[start..i].iter().collect())
        } else if c[i] == ':' && at(i + 1) == ':' {
            i += 2;
            Tok::PathSep
        } else {
            i += 1;
            if c[start].is_whitespace() {
                continue;
            }
            Tok::Punct(c[start])
        };
        line += c[counted..start].iter().filter(|&&ch| ch == '\n').count();
        counted = start;
        out.push((tok, line));
    }
    out
}

/// The index past the (nested) block comment starting at `i`.
fn comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        match (c[i], c[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') if depth == 1 => return i + 2,
            ('*', '/') => (depth, i) = (depth - 1, i + 2),
            _ => i += 1,
        }
    }
    c.len()
}

/// The index past the string literal whose body starts at `i`; a raw string
/// (`raw` = its number of `#`) has no escapes.
fn string_end(c: &[char], mut i: usize, raw: Option<usize>) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' if raw.is_none() => i += 1,
            '"' if c[i + 1..].starts_with(&vec!['#'; raw.unwrap_or(0)]) => {
                return i + 1 + raw.unwrap_or(0)
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Whether token `i` is `s` (an identifier, `::` or one punctuation character).
fn is(toks: &Toks, i: usize, s: &str) -> bool {
    match toks.get(i) {
        Some((Tok::Ident(id), _)) => id == s,
        Some((Tok::PathSep, _)) => s == "::",
        Some((Tok::Punct(p), _)) => s.len() == 1 && s.starts_with(*p),
        None => false,
    }
}

/// The index past `#[cfg(test)]` at `i` and the attributes and item after it:
/// up to a `;` or `,` at depth 0, a balanced `{…}` block, or the enclosing closer.
fn skip_test_item(toks: &Toks, i: usize) -> usize {
    let (mut j, mut depth) = (i + 7, 0);
    while let Some((tok, _)) = toks.get(j) {
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') if depth == 0 => return j,
            Tok::Punct('}') if depth == 1 => return j + 1,
            Tok::Punct('}' | ')' | ']') => depth -= 1,
            Tok::Punct(';' | ',') if depth == 0 => return j + 1,
            _ => {}
        }
        j += 1;
    }
    j
}

/// Parses the path or `use` tree at `i` under `prefix`, pushing each leaf
/// (`crate::{a::{b, c as d}, e::*}` → `crate::a::b`, `crate::a::c`,
/// `crate::e`) with its line; returns the index past it.
fn path_tree(
    toks: &Toks,
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut line = toks.get(i).map_or(0, |t| t.1);
    while let Some((Tok::Ident(segment), at)) = toks.get(i) {
        (line, i) = (*at, i + 1);
        prefix.push(segment.clone());
        if !is(toks, i, "::") {
            i += if is(toks, i, "as") { 2 } else { 0 };
            out.push((prefix, line));
            return i;
        }
        i += 1;
    }
    if is(toks, i, "{") {
        i += 1;
        while i < toks.len() && !is(toks, i, "}") {
            i = if is(toks, i, ",") {
                i + 1
            } else {
                path_tree(toks, i, prefix.clone(), out).max(i + 1)
            };
        }
        return i + 1;
    }
    out.push((prefix, line)); // `*`, or `::<T>` after an item
    i + usize::from(is(toks, i, "*"))
}

/// `raw` (`crate::a::b`, `super::x`, `self::y`) as an absolute path, seen from `scope`.
fn absolute(scope: &[String], raw: Vec<String>) -> Vec<String> {
    let mut full = scope.to_vec();
    for (k, segment) in raw.into_iter().enumerate() {
        match segment.as_str() {
            "crate" if k == 0 => full.clear(),
            "super" => drop(full.pop()),
            "self" => {}
            _ => full.push(segment),
        }
    }
    full
}

/// Every `crate::`/`super::`/`self::` path in the non-test code of `text`
/// (module `module`), as absolute segments (modules, then items), with its line.
fn paths(module: &[String], text: &str) -> Vec<(Vec<String>, usize)> {
    let toks = tokenize(text);
    let (mut scope, mut inline, mut depth) = (module.to_vec(), Vec::new(), 0);
    let (mut out, mut i) = (Vec::new(), 0);
    while i < toks.len() {
        let path_start = !is(&toks, i.wrapping_sub(1), "::") && is(&toks, i + 1, "::");
        match &toks[i].0 {
            Tok::Punct('#') if is_cfg_test(&toks, i) => i = skip_test_item(&toks, i) - 1,
            Tok::Ident(m) if m == "mod" && is(&toks, i + 2, "{") => {
                let name = match &toks[i + 1].0 {
                    Tok::Ident(name) => name.clone(),
                    _ => String::new(),
                };
                scope.push(name); // an inline `mod name {`
                inline.push(depth);
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last() == Some(&depth) {
                    inline.pop();
                    scope.pop();
                }
            }
            Tok::Ident(root)
                if path_start && matches!(root.as_str(), "crate" | "super" | "self") =>
            {
                let mut leaves = Vec::new();
                i = path_tree(&toks, i, Vec::new(), &mut leaves) - 1;
                out.extend(
                    leaves
                        .into_iter()
                        .map(|(raw, line)| (absolute(&scope, raw), line)),
                );
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether `toks[i..]` starts with `#[cfg(test)]`.
fn is_cfg_test(toks: &Toks, i: usize) -> bool {
    let attribute = ["#", "[", "cfg", "(", "test", ")", "]"];
    attribute
        .iter()
        .enumerate()
        .all(|(k, s)| is(toks, i + k, s))
}

/// The module of a file under `src/` (`frontend/session.rs` → `frontend::session`),
/// or `None` for files outside the module graph (`main.rs`, test files).
fn module_of(file: &str) -> Option<Vec<String>> {
    let stem = file.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(String::from).collect();
    let last = parts.last()?.clone();
    if stem == "main" || last == "tests" || last.ends_with("_tests") {
        return None;
    }
    if last == "mod" || stem == "lib" {
        parts.pop();
    }
    Some(parts)
}

/// Module → module edges, each with the file and lines that make it.
type Edges = BTreeMap<(String, String), (String, BTreeSet<usize>)>;

/// The dependency edges between the modules of `files`: (path under `src/`, text).
/// The crate root never shows: it is everyone's ancestor.
fn dependency_edges(files: &[(String, String)]) -> Edges {
    let modules: BTreeSet<Vec<String>> = files.iter().filter_map(|(f, _)| module_of(f)).collect();
    let mut edges = Edges::new();
    for (file, text) in files {
        let Some(from) = module_of(file) else {
            continue;
        };
        for (full, line) in paths(&from, text) {
            let to = (0..=full.len())
                .rev()
                .map(|n| &full[..n])
                .find(|p| modules.contains(*p));
            let to = to.unwrap_or_default().to_vec();
            if !from.starts_with(&to) && !to.starts_with(&from) {
                let key = (from.join("::"), to.join("::"));
                let site = edges
                    .entry(key)
                    .or_insert_with(|| (format!("src/{file}"), BTreeSet::new()));
                site.1.insert(line);
            }
        }
    }
    edges
}

/// Tarjan's algorithm over nodes `0..adj.len()`; `order` is `usize::MAX` for
/// a node not visited yet.
struct Tarjan<'a> {
    adj: &'a [Vec<usize>],
    order: Vec<usize>,
    low: Vec<usize>,
    next: usize,
    stack: Vec<usize>,
    sccs: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    /// Numbers `v`, visits what it reaches, and pops its component once `v`
    /// turns out to be the component's first node (`low == order`).
    fn visit(&mut self, v: usize) {
        (self.order[v], self.low[v], self.next) = (self.next, self.next, self.next + 1);
        self.stack.push(v);
        for &w in &self.adj[v] {
            if self.order[w] == usize::MAX {
                self.visit(w);
                self.low[v] = self.low[v].min(self.low[w]);
            } else if self.stack.contains(&w) {
                self.low[v] = self.low[v].min(self.order[w]);
            }
        }
        if self.low[v] == self.order[v] {
            let at = self.stack.iter().rposition(|&w| w == v).unwrap();
            self.sccs.push(self.stack.split_off(at));
        }
    }
}

/// The strongly connected components of more than one module, sorted.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let names: BTreeSet<&String> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let names: Vec<&String> = names.into_iter().collect();
    let id = |name: &String| names.binary_search(&name).unwrap();
    let mut adj = vec![Vec::new(); names.len()];
    edges.keys().for_each(|(a, b)| adj[id(a)].push(id(b)));
    let n = adj.len();
    let mut t = Tarjan {
        adj: &adj,
        order: vec![usize::MAX; n],
        low: vec![0; n],
        next: 0,
        stack: Vec::new(),
        sccs: Vec::new(),
    };
    (0..n).for_each(|v| {
        if t.order[v] == usize::MAX {
            t.visit(v)
        }
    });
    let big = t.sccs.into_iter().filter(|scc| scc.len() > 1);
    let mut found: Vec<Vec<String>> = big
        .map(|scc| scc.iter().map(|&v| names[v].clone()).collect())
        .collect();
    found.iter_mut().for_each(|scc| scc.sort());
    found.sort();
    found
}

/// `src/a.rs:3,17`
fn site((file, lines): &(String, BTreeSet<usize>)) -> String {
    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
    format!("{file}:{}", lines.join(","))
}

/// Every cycle and the site of each edge inside it; empty when there is none.
fn cycle_report(edges: &Edges) -> String {
    let mut out = String::new();
    for scc in cycles(edges) {
        out += &format!("import cycle between {}:\n", scc.join(", "));
        for ((a, b), at) in edges
            .iter()
            .filter(|((a, b), _)| scc.contains(a) && scc.contains(b))
        {
            out += &format!("  {a} -> {b}: {}\n", site(at));
        }
    }
    out
}

/// Files longer than [`MAX_LINES`], one a line; empty when there is none.
fn length_report(files: &[(String, String)]) -> String {
    let long = files
        .iter()
        .map(|(f, t)| (f, t.lines().count()))
        .filter(|&(_, n)| n > MAX_LINES);
    long.map(|(f, n)| format!("src/{f}: {n} lines (at most {MAX_LINES})\n"))
        .collect()
}

/// Every `.rs` file under `src/`: (path relative to `src/`, text), sorted.
fn src_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = format!("{rel}{}", path.file_name().unwrap().to_str().unwrap());
            if path.is_dir() {
                walk(&path, &format!("{rel}/"), out);
            } else if rel.ends_with(".rs") {
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut out,
    );
    out.sort();
    out
}

#[test]
fn no_file_under_src_is_too_long() {
    let report = length_report(&src_files());
    assert!(report.is_empty(), "\n{report}");
}

#[test]
fn no_import_cycle_between_modules() {
    let report = cycle_report(&dependency_edges(&src_files()));
    assert!(report.is_empty(), "\n{report}");
}

/// The analysis on small in-memory trees.
mod analysis {
    use super::*;

    fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    }

    /// The edges of `files`, `a -> b src/a.rs:1` one a line.
    fn edges(files: &[(&str, &str)]) -> String {
        let edges = dependency_edges(&owned(files));
        edges
            .iter()
            .map(|((a, b), at)| format!("{a} -> {b} {}\n", site(at)))
            .collect()
    }

    #[test]
    fn a_cycle_is_reported_with_its_sites() {
        let files = [
            ("a.rs", "use crate::b::X;"),
            (
                "b.rs",
                "\nfn f() { crate::c::g() }\nfn h() { crate::c::h() }",
            ),
            ("c.rs", "use crate::a::Y;"),
            ("d.rs", "use crate::a::Z; use crate::x::W;"),
            ("x.rs", "pub use crate::y::V;"),
            ("y.rs", "use crate::x::U;"),
        ];
        let report = cycle_report(&dependency_edges(&owned(&files)));
        let ring = "import cycle between a, b, c:\n  a -> b: src/a.rs:1\n  b -> c: src/b.rs:2,3\n  c -> a: src/c.rs:1\n";
        let pair = "import cycle between x, y:\n  x -> y: src/x.rs:1\n  y -> x: src/y.rs:1\n";
        assert_eq!(report, format!("{ring}{pair}"));
    }

    #[test]
    fn no_cycle_no_report() {
        let files = [
            ("a.rs", "use crate::b::X;"),
            ("b.rs", "use crate::c;"),
            ("c.rs", ""),
            ("d.rs", "use crate::a;"),
        ];
        assert_eq!(cycle_report(&dependency_edges(&owned(&files))), "");
    }

    #[test]
    fn a_grouped_use_resolves_each_leaf() {
        let code = "use crate::{\n  cluster::{redirect::{self, Redirect as R}, Slot},\n  metrics::*,\n};\nfn f() { crate::net::bind::<u8>(); }";
        let files = [
            ("cluster/mod.rs", ""),
            ("cluster/redirect.rs", ""),
            ("metrics.rs", ""),
            ("net.rs", ""),
            ("x.rs", code),
        ];
        assert_eq!(edges(&files), "x -> cluster src/x.rs:2\nx -> cluster::redirect src/x.rs:2\nx -> metrics src/x.rs:3\nx -> net src/x.rs:5\n");
    }

    #[test]
    fn super_is_the_parent_of_the_files_module() {
        let tree = [
            ("metrics.rs", ""),
            ("fe/mod.rs", ""),
            ("fe/fanout.rs", ""),
            ("fe/metrics.rs", ""),
            ("fe/session/keyspace.rs", ""),
        ];
        let mod_rs = ("fe/session/mod.rs", "use super::fanout::Plan;");
        assert_eq!(
            edges(&[&tree[..], &[mod_rs]].concat()),
            "fe::session -> fe::fanout src/fe/session/mod.rs:1\n"
        );
        let leaf = (
            "fe/session/wait.rs",
            "use super::keyspace::K;\nuse super::super::fanout;",
        );
        let want = "fe::session::wait -> fe::fanout src/fe/session/wait.rs:2\nfe::session::wait -> fe::session::keyspace src/fe/session/wait.rs:1\n";
        assert_eq!(
            edges(&[&tree[..], &[("fe/session.rs", ""), leaf]].concat()),
            want
        );
        let inline = (
            "fe/scan.rs",
            "mod inner { use super::super::metrics::count; }",
        );
        assert_eq!(
            edges(&[&tree[..], &[inline]].concat()),
            "fe::scan -> fe::metrics src/fe/scan.rs:1\n"
        );
    }

    #[test]
    fn test_code_comments_and_literals_are_ignored() {
        let code = "struct S {\n    #[cfg(test)]\n    s: crate::b::S,\n}\n// crate::b::x\n/* crate::b /* nested */ crate::b */\nconst U: &str = \"http://x // crate::b\";\nconst Q: char = '\"';\nconst R: &str = r#\"crate::b\"#;\nfn f<'a>() { crate::c::go() }\n#[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;\n#[cfg(test)]\nmod t { use super::x; use crate::b::Y; }";
        let files = [
            ("a.rs", code),
            ("a_tests.rs", "use crate::b::Z;"),
            ("b.rs", ""),
            ("c.rs", ""),
            ("x.rs", ""),
        ];
        assert_eq!(edges(&files), "a -> c src/a.rs:10\n");
    }

    #[test]
    fn ancestors_and_descendants_are_not_edges() {
        let files = [
            ("lib.rs", "pub use crate::a::b::X;"),
            ("a/mod.rs", "pub use self::b::X; use crate::a::b::Y;"),
            ("a/b.rs", "use super::Z; use crate::W;"),
        ];
        assert_eq!(edges(&files), "");
    }

    #[test]
    fn long_files_are_reported() {
        let files = [
            ("ok.rs".into(), "x\n".repeat(MAX_LINES)),
            ("long.rs".into(), "x\n".repeat(MAX_LINES + 1)),
        ];
        assert_eq!(
            length_report(&files),
            "src/long.rs: 601 lines (at most 600)\n"
        );
    }
}
