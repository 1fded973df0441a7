//! The dependency rule, checked: the module graph read from the sources (every `use crate::…`,
//! `crate::…`, `super::…` and child-module path, including those inside macro calls and
//! attributes) has no
//! cycle, and no arrow runs up the layer order that ARCHITECTURE.md states. Test code
//! (`#[cfg(test)]` modules) is left out: a test may reach anywhere.
//!
//! Nodes are top-level modules (`crm` holds `crm::cache`, `crm::http`, ...), except the few
//! submodules listed in [`OWN_NODES`]: data that lower layers share with their owner. Inside
//! each folder module the sibling files must not import each other in a circle either.
//!
//! `ATTRSYNC_PRINT_GRAPH=1 cargo test --test architecture -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Top to bottom; a module may import modules of its own layer (if that makes no cycle) and of
/// the layers below it, never above.
const LAYERS: &[(&str, &[&str])] = &[
    ("binary", &["main"]),
    ("command line", &["cli"]),
    ("demo", &["demo"]),
    ("composition root", &["app"]),
    ("HTTP edge", &["http"]),
    ("queue", &["queue"]),
    ("use case", &["pipeline"]),
    (
        "components",
        &["genesys", "crm", "ingest", "server", "telemetry"],
    ),
    ("settings (data)", &["config"]),
    ("domain", &["domain", "phone", "merge"]),
    (
        "leaves",
        &[
            "genesys::region",
            "metrics",
            "retry",
            "budget",
            "redact",
            "simulator",
        ],
    ),
];

/// Submodules that are nodes of their own, below their parent: the Genesys region table is
/// data that `config` validates `genesys.region` against at load, while the client that owns it
/// is built from that configuration.
const OWN_NODES: &[&str] = &["genesys::region"];

struct Module {
    /// `crm::cache`; `main` for the binary.
    path: String,
    file: PathBuf,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file under `src/`, with its module path (`bin/` targets are other crates).
fn modules() -> Vec<Module> {
    let mut out = Vec::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src()).expect("under src/");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let module = match parts.as_slice() {
                [only] if only == "lib" => String::new(),
                [only] if only == "main" => "main".to_owned(),
                _ => parts.join("::"),
            };
            out.push(Module {
                path: module,
                file: path,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    // A file declared by `#[cfg(test)] mod tests;` is test code, like an inline test module.
    let test_only: Vec<String> = out.iter().flat_map(test_only_children).collect();
    out.retain(|m| {
        !test_only
            .iter()
            .any(|t| m.path == *t || m.path.starts_with(&format!("{t}::")))
    });
    out
}

/// The module paths of the file modules `module` declares under `#[cfg(test)]`.
fn test_only_children(module: &Module) -> Vec<String> {
    let text = std::fs::read_to_string(&module.file).expect("read a source file");
    let Ok(file) = syn::parse_file(&text) else {
        return Vec::new();
    };
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() && is_test_only(&m.attrs) => {
                Some(if module.path.is_empty() || module.path == "main" {
                    m.ident.to_string()
                } else {
                    format!("{}::{}", module.path, m.ident)
                })
            }
            _ => None,
        })
        .collect()
}

/// Collects the module paths a file refers to, resolved to absolute paths (without `crate`).
struct Refs<'a> {
    /// The module the code being visited is in (a file's path, plus inline `mod`s).
    here: Vec<String>,
    known: &'a BTreeSet<String>,
    is_binary: bool,
    found: BTreeSet<Vec<String>>,
}

impl Refs<'_> {
    fn resolve(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut absolute: Vec<String> = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "attrsync" if self.is_binary => segments[1..].to_vec(),
            "self" => self.here.iter().chain(&segments[1..]).cloned().collect(),
            "super" => {
                let mut base = self.here.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.into_iter().chain(rest.iter().cloned()).collect()
            }
            // A path relative to the current module that names one of its child modules.
            child => {
                let candidate = self
                    .here
                    .iter()
                    .cloned()
                    .chain(std::iter::once(child.to_owned()))
                    .collect::<Vec<_>>()
                    .join("::");
                if !self.known.contains(&candidate) {
                    return;
                }
                self.here.iter().chain(segments).cloned().collect()
            }
        };
        // The longest prefix that is a module.
        while !absolute.is_empty() && !self.known.contains(&absolute.join("::")) {
            absolute.pop();
        }
        if !absolute.is_empty() {
            self.found.insert(absolute);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.resolve(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths inside macro calls (`metrics::counter!(crate::metrics::EVENTS)`, `json!`, ...) are
    /// tokens, not syntax: read `a::b::c` runs out of the token stream.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(ident) => {
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while j + 2 < trees.len() + 1 {
                        let colons = matches!((&trees.get(j), &trees.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                        match (colons, trees.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    // A leading `::` means an external crate (`::metrics::counter!`).
                    let external = i >= 1
                        && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                    if segments.len() > 1 && !external {
                        self.resolve(&segments);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        if let Some((_, items)) = &item.content {
            self.here.push(item.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.here.pop();
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_test_only(&item.attrs) {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            if segments.len() > 1 {
                self.resolve(&segments);
            }
        }
        syn::visit::visit_path(self, path);
    }

    /// Attribute arguments are tokens too: `#[openapi(paths(crate::http::events::genesys))]`
    /// and `body = crate::http::events::Accepted` are real dependencies.
    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &attr.meta {
            self.tokens(list.tokens.clone());
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}

/// Module → the modules it refers to (absolute paths), for every module file.
fn references() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules
        .iter()
        .map(|m| m.path.clone())
        .filter(|p| !p.is_empty() && p != "main")
        .collect();
    let mut out = BTreeMap::new();
    for module in &modules {
        if module.path.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&module.file).expect("read a source file");
        let file = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", module.file.display()));
        let mut refs = Refs {
            here: if module.path == "main" {
                Vec::new()
            } else {
                module.path.split("::").map(str::to_owned).collect()
            },
            known: &known,
            is_binary: module.path == "main",
            found: BTreeSet::new(),
        };
        refs.visit_file(&file);
        let targets = refs
            .found
            .into_iter()
            .map(|p| p.join("::"))
            .filter(|p| *p != module.path)
            .collect();
        out.insert(module.path.clone(), targets);
    }
    out
}

/// The node a module belongs to.
fn node(module: &str) -> String {
    OWN_NODES
        .iter()
        .find(|n| module == **n || module.starts_with(&format!("{n}::")))
        .map(|n| (*n).to_owned())
        .unwrap_or_else(|| module.split("::").next().unwrap_or(module).to_owned())
}

fn node_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in references() {
        let from = node(&from);
        let entry = graph.entry(from.clone()).or_default();
        for to in targets {
            let to = node(&to);
            if to != from {
                entry.insert(to);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one member (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[w].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.index[w].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

fn layer_of(node: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, nodes)| nodes.contains(&node))
}

fn print_graph(graph: &BTreeMap<String, BTreeSet<String>>) {
    if std::env::var_os("ATTRSYNC_PRINT_GRAPH").is_none() {
        return;
    }
    for (from, targets) in graph {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        println!("{from} -> {}", targets.join(", "));
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = node_graph();
    print_graph(&graph);
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "modules that import each other: {found:?}"
    );
}

#[test]
fn no_module_imports_a_module_above_its_layer() {
    let graph = node_graph();
    let mut upward = Vec::new();
    for (from, targets) in &graph {
        let Some(from_layer) = layer_of(from) else {
            panic!("module `{from}` is in no layer: add it to LAYERS here and to ARCHITECTURE.md");
        };
        for to in targets {
            let Some(to_layer) = layer_of(to) else {
                panic!(
                    "module `{to}` is in no layer: add it to LAYERS here and to ARCHITECTURE.md"
                );
            };
            if to_layer < from_layer {
                upward.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[from_layer].0, LAYERS[to_layer].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports running up the layers: {upward:#?}"
    );
}

#[test]
fn the_files_of_a_folder_module_do_not_import_each_other_in_a_circle() {
    // Siblings only: a child naming its parent (`super::X`) and the parent naming its children
    // is how Rust modules are built, not a circle between concerns.
    let references = references();
    let mut folders: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, targets) in &references {
        let Some((parent, _)) = from.rsplit_once("::") else {
            continue;
        };
        let siblings = folders.entry(parent.to_owned()).or_default();
        let entry = siblings.entry(from.clone()).or_default();
        for to in targets {
            // The sibling a reference lands in (a reference to `parent::a::b` is one to `a`).
            let Some(rest) = to.strip_prefix(&format!("{parent}::")) else {
                continue;
            };
            let sibling = format!("{parent}::{}", rest.split("::").next().unwrap_or(rest));
            if sibling != *from {
                entry.insert(sibling);
            }
        }
    }
    let mut found = Vec::new();
    for siblings in folders.values() {
        found.extend(cycles(siblings));
    }
    assert!(
        found.is_empty(),
        "sibling modules that import each other: {found:?}"
    );
}

#[test]
fn the_checker_sees_imports_written_in_each_way() {
    // The rule is only as good as the reader: a `use`, a path in code, a path inside a macro
    // call and a `super::` path must all count.
    let references = references();
    let pipeline = &references["pipeline"];
    assert!(
        pipeline.iter().any(|m| m.starts_with("crm")),
        "{pipeline:?}"
    );
    let all: BTreeSet<&String> = references.values().flatten().collect();
    assert!(
        all.iter().any(|m| m.as_str() == "metrics"),
        "macro arguments are read"
    );
}

/// Lines of code of a source file: not blank, not a comment, not in its `#[cfg(test)]` module
/// (by convention the last item of a file).
fn lines_of_code(text: &str) -> usize {
    let mut count = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if line.starts_with("#[cfg(test)]")
            && lines.peek().is_some_and(|next| next.starts_with("mod "))
        {
            break;
        }
        if !trimmed.is_empty() && !trimmed.starts_with("//") {
            count += 1;
        }
    }
    count
}

#[test]
fn no_source_file_is_over_500_lines_of_code() {
    // Files that are only test code (`tests.rs` beside a `#[cfg(test)] mod tests;`) do not count.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("bench/src")];
    let mut too_long = Vec::new();
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                seen += 1;
                let text = std::fs::read_to_string(&path).expect("a source file");
                let count = lines_of_code(&text);
                if count > 500 {
                    too_long.push(format!("{} ({count})", path.display()));
                }
            }
        }
    }
    assert!(seen > 50, "found only {seen} files");
    assert!(too_long.is_empty(), "split these by concern: {too_long:?}");
}

#[test]
fn the_line_count_leaves_out_comments_blank_lines_and_tests() {
    let text =
        "//! doc\nfn a() {}\n\n// why\nfn b() {}\n#[cfg(test)]\nmod tests {\n fn c() {}\n}\n";
    assert_eq!(lines_of_code(text), 2);
}
