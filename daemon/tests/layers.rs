//! The layering of ARCHITECTURE.md, checked against the code: every
//! `crate::` path in `daemon/src` must point to a lower layer (or a leaf),
//! and no two modules of the CLI's commands may use each other in a circle.
//! A new module fails here until ARCHITECTURE.md places it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first, and the leaves, as ARCHITECTURE.md lists them.
fn layers() -> (Vec<Vec<String>>, BTreeSet<String>) {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md is there");
    let start = doc
        .find("<!-- layers: top to bottom -->")
        .expect("ARCHITECTURE.md has the layer list");
    let block = &doc[start..];
    let body = block
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the layer list is a text block");
    let mut layers = Vec::new();
    let mut leaves = BTreeSet::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        match line.strip_prefix("leaves:") {
            Some(rest) => leaves.extend(rest.split_whitespace().map(str::to_string)),
            None => layers.push(line.split_whitespace().map(str::to_string).collect()),
        }
    }
    (layers, leaves)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The module names a source file names after `prefix` (`crate::x`,
/// `crate::{x, y::z}`), comments left out.
fn uses(text: &str, prefix: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = part.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() && name != "self" {
                    out.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn every_daemon_module_uses_only_the_layers_below_it() {
    let (layers, leaves) = layers();
    let level: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(n, l)| l.iter().map(move |m| (m.as_str(), n)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for file in sources(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue; // the binary and the crate root: above everything
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for used in uses(&text, "crate::") {
            if used == top {
                continue;
            }
            let ok = if leaves.contains(&top) {
                leaves.contains(&used)
            } else {
                match (level.get(top.as_str()), level.get(used.as_str())) {
                    (None, _) => {
                        wrong.push(format!(
                            "{}: module {top} is not in ARCHITECTURE.md's layers",
                            rel.display()
                        ));
                        continue;
                    }
                    (_, None) if leaves.contains(&used) => true,
                    (_, None) => false,
                    (Some(a), Some(b)) => b > a,
                }
            };
            if !ok {
                wrong.push(format!(
                    "{}: {top} uses {used}, which is not below it",
                    rel.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_clis_command_modules_use_each_other_in_no_circle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/src/cli");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&dir) {
        let rel = file.strip_prefix(&dir).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "mod" {
            continue; // the parent: dispatch and the shared Failure type
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A file inside a folder module reaches its siblings as super::super::.
        let prefix = if rel.components().count() > 1 {
            "super::super::"
        } else {
            "super::"
        };
        let used = uses(&text, prefix);
        graph
            .entry(module.clone())
            .or_default()
            .extend(used.into_iter().filter(|u| *u != module));
    }
    let names: BTreeSet<String> = graph.keys().cloned().collect();
    for g in graph.values_mut() {
        g.retain(|u| names.contains(u));
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "the CLI's modules use each other in a circle: {}",
                c.join(" -> ")
            );
        }
    }
}

#[test]
fn the_check_sees_what_it_checks() {
    // A check that found nothing would pass anything.
    let found = uses(
        "use crate::{agent::Agent, config};\nlet x = crate::token::Cell::new(); // crate::api",
        "crate::",
    );
    assert_eq!(
        found,
        ["agent", "config", "token"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let (layers, leaves) = layers();
    assert!(layers.len() > 5 && leaves.contains("clock"), "{layers:?}");
}
