//! Helpers: block-style YAML and docker-compose.yml.

use super::*;

/// One line of block-style YAML with the lines indented below it: `key: value`, `key:` or
/// `- item` (key "-").
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) children: Vec<Node>,
}

pub(crate) fn parse_yaml(text: &str) -> Vec<Node> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect();
    let mut position = 0;
    parse_block(&lines, &mut position, 0)
}

pub(crate) fn parse_block(
    lines: &[(usize, &str)],
    position: &mut usize,
    indent: usize,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    while let Some(&(line_indent, text)) = lines.get(*position) {
        if line_indent < indent {
            break;
        }
        *position += 1;
        let mut below = match lines.get(*position) {
            Some(&(next, _)) if next > line_indent => parse_block(lines, position, next),
            _ => Vec::new(),
        };
        let node = match text.strip_prefix('-').map(str::trim) {
            // `- key: value` starts a mapping: the item holds it and the lines below it.
            Some(item) => match key_value(item) {
                Some((key, value)) => {
                    below.insert(
                        0,
                        Node {
                            key,
                            value,
                            children: Vec::new(),
                        },
                    );
                    Node {
                        key: "-".to_owned(),
                        value: String::new(),
                        children: below,
                    }
                }
                None => Node {
                    key: "-".to_owned(),
                    value: item.to_owned(),
                    children: below,
                },
            },
            None => {
                let (key, value) = key_value(text).unwrap_or((text.to_owned(), String::new()));
                Node {
                    key,
                    value,
                    children: below,
                }
            }
        };
        nodes.push(node);
    }
    nodes
}

/// `key: value` or `key:`; not a quoted scalar, nor `host:container` (no space after the colon).
pub(crate) fn key_value(text: &str) -> Option<(String, String)> {
    if text.starts_with(['"', '\'', '[', '{']) {
        return None;
    }
    if let Some(key) = text.strip_suffix(':') {
        return Some((key.trim().to_owned(), String::new()));
    }
    let (key, value) = text.split_once(": ")?;
    Some((key.trim().to_owned(), value.trim().to_owned()))
}

/// The first node called `key`, at any depth.
pub(crate) fn find<'a>(nodes: &'a [Node], key: &str) -> Option<&'a Node> {
    nodes.iter().find_map(|n| {
        if n.key == key {
            Some(n)
        } else {
            find(&n.children, key)
        }
    })
}

pub(crate) trait Children {
    fn children(&self) -> &[Node];
}

impl Children for Vec<Node> {
    fn children(&self) -> &[Node] {
        self
    }
}

impl Children for Node {
    fn children(&self) -> &[Node] {
        &self.children
    }
}

pub(crate) fn child<'a>(parent: &'a impl Children, key: &str) -> &'a Node {
    parent
        .children()
        .iter()
        .find(|n| n.key == key)
        .unwrap_or_else(|| panic!("no `{key}:`"))
}

pub(crate) fn unquote(value: &str) -> String {
    let v = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

pub(crate) fn compose() -> Vec<Node> {
    parse_yaml(&read("docker-compose.yml"))
}

/// A service's `environment:` (map or `- KEY=value` list), with Compose's `${VAR:-default}`
/// resolved to the default, as on a machine without an .env file.
pub(crate) fn compose_environment(service: &Node) -> BTreeMap<String, String> {
    let Some(environment) = service.children.iter().find(|n| n.key == "environment") else {
        return BTreeMap::new();
    };
    environment
        .children
        .iter()
        .map(|n| {
            let (key, value) = if n.key == "-" {
                let item = unquote(&n.value);
                let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                (k.to_owned(), v.to_owned())
            } else {
                (n.key.clone(), unquote(&n.value))
            };
            (key, interpolate(&value))
        })
        .collect()
}

pub(crate) fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unclosed ${") + start;
        let expression = &rest[start + 2..end];
        if let Some((_, default)) = expression.split_once(":-") {
            out.push_str(default);
        } else {
            assert!(
                !expression.contains('?'),
                "${{{expression}}} needs a variable from the environment"
            );
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The attrsync metric names in the dashboard's queries, histogram suffixes removed.
pub(crate) fn dashboard_metric_names() -> BTreeSet<String> {
    let dashboard = read_json("deploy/grafana/dashboards/attrsync.json");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for piece in expr.split("attrsync_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let name = format!("attrsync_{name}");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name)
                    .to_owned();
                names.insert(base);
            }
        }
    }
    names
}

/// The metric names in a Prometheus text exposition, histogram suffixes removed.
pub(crate) fn exported_metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}
