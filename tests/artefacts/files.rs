//! Helpers: reading the repository's files, the Dockerfile, .dockerignore and HCL.

use super::*;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

pub(crate) fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub(crate) fn default_toml() -> toml::Table {
    read("config/default.toml")
        .parse()
        .expect("config/default.toml")
}

/// Resolves `.` and `..` without touching the file system.
pub(crate) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// What a compile-time path is relative to.
#[derive(Clone, Copy)]
pub(crate) enum Base {
    /// `include_str!`, `include_bytes!`: the file that names it.
    File,
    /// `sqlx::migrate!`: the crate root.
    Manifest,
}

/// The files and folders the sources read at compile time: `include_str!("...")`,
/// `include_bytes!("...")`, `migrate!("...")` (`migrate!()` reads `migrations/`).
pub(crate) fn embedded_paths(source: &str) -> Vec<(String, Base)> {
    let mut paths = Vec::new();
    for (marker, base) in [
        ("include_str!(\"", Base::File),
        ("include_bytes!(\"", Base::File),
        ("migrate!(\"", Base::Manifest),
    ] {
        for rest in source.split(marker).skip(1) {
            if let Some((path, _)) = rest.split_once('"') {
                paths.push((path.to_owned(), base));
            }
        }
    }
    if source.contains("migrate!()") {
        paths.push(("migrations".to_owned(), Base::Manifest));
    }
    paths
}

/// The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped.
pub(crate) fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (instruction, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

/// The .dockerignore entries, without trailing slashes.
pub(crate) fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect()
}

pub(crate) fn without_comments(hcl: &str) -> String {
    hcl.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `{ ... }` body that follows `header` in whitespace-free HCL.
pub(crate) fn block<'a>(compact: &'a str, header: &str) -> &'a str {
    let start = compact
        .find(&format!("{header}{{"))
        .unwrap_or_else(|| panic!("no {header} block"))
        + header.len();
    let mut depth = 0;
    for (i, c) in compact[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &compact[start..start + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after {header}")
}

/// `default = "..."` of `variable "name"` in a variables.tf.
pub(crate) fn variable_default(variables: &str, name: &str) -> Option<String> {
    let compact: String = without_comments(variables)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let body = block(&compact, &format!("variable\"{name}\""));
    let rest = body.split_once("default=\"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}
