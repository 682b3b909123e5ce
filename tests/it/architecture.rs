//! The crate's layout rules, checked on its sources (README, "Where things live"): which
//! top-level module may import which, no import cycles between the files of any folder, no
//! `unsafe` outside the kernels, the allocator, the fork-join and `main`, and no source file over 700
//! lines. The import graph is read from the `use` declarations and the inline paths of
//! every file's non-test code (a file's code up to its first `#[cfg(test)]`; `tests.rs`
//! and `test_support.rs` files are test code). It is a reader of this codebase's style,
//! not a Rust parser, which `cargo-modules` would be, at the price of minutes of install.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level module may import which. The rule: cli → sched/report/expert/bench →
/// train → method → model → kernels, with store → spec → data → util → error below whoever
/// needs them; kernels import only util and only model and bench import them; the peers of a
/// layer do not import each other.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "sched", "report", "expert", "bench", "train", "analysis", "method", "model", "store",
            "spec", "data", "util", "error",
        ],
    ),
    (
        "sched",
        &[
            "train", "analysis", "method", "model", "store", "spec", "data", "util", "error",
        ],
    ),
    (
        "report",
        &[
            "train", "analysis", "method", "model", "store", "spec", "data", "util", "error",
        ],
    ),
    (
        "expert",
        &[
            "train", "method", "model", "store", "spec", "data", "util", "error",
        ],
    ),
    (
        "bench",
        &[
            "train", "method", "model", "kernels", "store", "spec", "data", "util", "error",
        ],
    ),
    (
        "train",
        &[
            "analysis", "method", "model", "store", "spec", "data", "util", "error",
        ],
    ),
    (
        "analysis",
        &["method", "model", "store", "spec", "data", "util", "error"],
    ),
    (
        "method",
        &["model", "store", "spec", "data", "util", "error"],
    ),
    (
        "model",
        &["kernels", "store", "spec", "data", "util", "error"],
    ),
    ("kernels", &["util"]),
    ("store", &["spec", "data", "util", "error"]),
    ("spec", &["data", "util", "error"]),
    ("data", &["util", "error"]),
    ("util", &["error"]),
    ("error", &[]),
];

/// Where `unsafe` may appear (each opts in with `#![allow(unsafe_code)]`; the crate denies it).
const UNSAFE_ALLOWED: &[&str] = &[
    "src/kernels/",
    "src/util/alloc.rs",
    "src/util/parallel.rs",
    "src/main.rs",
];

const MAX_LINES: usize = 700;

type Module = Vec<String>;

struct Source {
    path: PathBuf,
    module: Module,
    /// Non-test code with comments removed.
    code: String,
    lines: usize,
    test_only: bool,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`, `src/lib.rs` → the crate root.
fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] {
        parts.pop();
    }
    parts
}

/// A line without its `//` comment (a `//` inside a string literal is kept).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src").to_path_buf();
            let text = std::fs::read_to_string(&path).expect("read source");
            let name = rel.file_name().unwrap().to_string_lossy().into_owned();
            let test_only = name == "tests.rs" || name == "test_support.rs";
            let mut code = String::new();
            for line in text.lines() {
                if line.starts_with("#[cfg(test)]") {
                    break;
                }
                code.push_str(strip_comment(line));
                code.push('\n');
            }
            Source {
                module: module_of(&rel),
                path: Path::new("src").join(rel),
                code: if test_only { String::new() } else { code },
                lines: text.lines().count(),
                test_only,
            }
        })
        .collect()
}

/// The paths a `use` tree names: `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn use_paths(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut depth = 0;
        let mut start = 0;
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_paths(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        use_paths(prefix, &inner[start..], out);
        return;
    }
    if tree.is_empty() {
        return;
    }
    match tree.split_once("::") {
        Some((head, rest)) if !head.contains('{') => {
            let mut p = prefix.to_vec();
            p.push(head.trim().to_string());
            use_paths(&p, rest, out);
        }
        _ => {
            let mut p = prefix.to_vec();
            p.push(tree.split(" as ").next().unwrap_or(tree).trim().to_string());
            out.push(p);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts a `::` chain in `code`: `crate::a::b::Item` → `[crate, a, b,
/// Item]` (identifiers only; generics and method calls end the chain).
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':'));
        if !starts {
            i += 1;
            continue;
        }
        let mut path = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            path.push(chars[s..j].iter().collect::<String>());
            if j + 2 < chars.len()
                && chars[j] == ':'
                && chars[j + 1] == ':'
                && is_ident(chars[j + 2])
            {
                j += 2;
            } else {
                break;
            }
        }
        if path.len() > 1 {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// The module (among `modules`) that `path`, written in module `here`, refers to: the
/// longest known module prefix of its absolute form. `None` for external crates and locals.
fn resolve(here: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut abs: Module = match path.first().map(String::as_str) {
        Some("crate") => path[1..].to_vec(),
        Some("self") => here
            .iter()
            .cloned()
            .chain(path[1..].iter().cloned())
            .collect(),
        Some("super") => {
            let mut base = here.clone();
            let mut k = 0;
            while path.get(k).map(String::as_str) == Some("super") {
                base.pop();
                k += 1;
            }
            base.into_iter().chain(path[k..].iter().cloned()).collect()
        }
        Some(first) => {
            let mut child = here.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            here.iter().cloned().chain(path.iter().cloned()).collect()
        }
        None => return None,
    };
    while !abs.is_empty() {
        if modules.contains(&abs) {
            return Some(abs);
        }
        abs.pop();
    }
    None
}

/// Import edges between modules, with the file each edge was found in.
fn edges(sources: &[Source]) -> BTreeMap<(Module, Module), PathBuf> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut out = BTreeMap::new();
    for s in sources
        .iter()
        .filter(|s| !s.test_only && s.path != Path::new("src/main.rs"))
    {
        let mut paths = Vec::new();
        let mut rest = s.code.as_str();
        while let Some(at) = rest.find("use ") {
            let before = rest[..at].chars().last();
            rest = &rest[at + 4..];
            if before.is_some_and(is_ident) {
                continue;
            }
            let Some(end) = rest.find(';') else { break };
            use_paths(&[], &rest[..end].replace('\n', " "), &mut paths);
        }
        paths.extend(inline_paths(&s.code));
        for p in paths {
            if let Some(t) = resolve(&s.module, &p, &modules) {
                if t != s.module {
                    out.entry((s.module.clone(), t))
                        .or_insert_with(|| s.path.clone());
                }
            }
        }
    }
    out
}

/// A cycle of `graph`, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn allowed(from: &str, to: &str) -> bool {
    ALLOWED
        .iter()
        .any(|(m, may)| *m == from && may.contains(&to))
}

#[test]
fn the_layering_table_itself_is_acyclic_and_covers_every_top_level_module() {
    let graph: BTreeMap<String, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(m, may)| (m.to_string(), may.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&graph), None);
    let tops: BTreeSet<String> = sources()
        .iter()
        .filter_map(|s| s.module.first().cloned())
        .filter(|t| t != "main")
        .collect();
    for t in &tops {
        assert!(
            ALLOWED.iter().any(|(m, _)| m == t),
            "top-level module `{t}` has no row in ALLOWED (tests/it/architecture.rs) nor in the README's table"
        );
    }
}

#[test]
fn top_level_modules_import_only_what_the_layering_allows() {
    let mut wrong = Vec::new();
    for ((from, to), file) in edges(&sources()) {
        let (Some(a), Some(b)) = (from.first(), to.first()) else {
            continue;
        };
        if a != b && !allowed(a, b) {
            wrong.push(format!(
                "{} imports {} ({a} → {b})",
                file.display(),
                to.join("::")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering (README, \"Where things live\"):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_folder_has_an_import_cycle_between_its_files() {
    let edges = edges(&sources());
    // Group the edges by the folder two modules share, collapsed to the folder's direct
    // children; a module's imports of its own ancestors (items a `mod.rs` holds) are the
    // normal way a folder shares types and are not counted.
    let mut folders: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common < from.len() && common < to.len() {
            folders
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    for (folder, graph) in &folders {
        if let Some(cycle) = find_cycle(graph) {
            let name = if folder.is_empty() {
                "src/".to_string()
            } else {
                format!("src/{}/", folder.join("/"))
            };
            panic!(
                "import cycle between the files of {name}: {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn unsafe_code_stays_in_the_kernels_the_allocator_and_main() {
    for s in sources() {
        let p = s.path.to_string_lossy().replace('\\', "/");
        if UNSAFE_ALLOWED.iter().any(|a| p.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&s.path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = strip_comment(line);
            let words = code.split(|c: char| !is_ident(c));
            assert!(
                !words.clone().any(|w| w == "unsafe"),
                "{}:{}: `unsafe` outside {UNSAFE_ALLOWED:?}",
                s.path.display(),
                i + 1
            );
        }
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|s| !s.test_only && s.lines > MAX_LINES)
        .map(|s| format!("{} ({} lines)", s.path.display(), s.lines))
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern: {}",
        long.join(", ")
    );
}

/// The reader above finds the imports it is meant to find.
#[test]
fn the_import_reader_sees_use_trees_inline_paths_and_relative_modules() {
    let mut p = Vec::new();
    use_paths(&[], "crate::a::{b, c::{d, e as f}}", &mut p);
    assert_eq!(
        p,
        [
            vec!["crate", "a", "b"],
            vec!["crate", "a", "c", "d"],
            vec!["crate", "a", "c", "e"]
        ]
    );
    let inline = inline_paths("let x = crate::model::cost::record(1); y.z::<T>()");
    assert_eq!(inline, [vec!["crate", "model", "cost", "record"]]);
    let modules: BTreeSet<Module> = [
        vec!["data".to_string()],
        vec!["data".into(), "load".into()],
        vec!["data".into(), "npz".into()],
    ]
    .into_iter()
    .collect();
    let here = vec!["data".to_string(), "load".to_string()];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        resolve(&here, &s(&["super", "npz", "read"]), &modules),
        Some(s(&["data", "npz"]))
    );
    assert_eq!(
        resolve(&here, &s(&["candle_core", "Tensor"]), &modules),
        None
    );
    assert_eq!(strip_comment("let a = \"//x\"; // b"), "let a = \"//x\"; ");
}
