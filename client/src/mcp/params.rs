//! Tool parameters mirrored into headers (SEP-2243, MCP 2026-07-28): a
//! tool's input schema may mark a property with `"x-mcp-header": "Name"`,
//! and a client calling it sends that argument as `Mcp-Param-Name` too, so
//! gateways can route on it without reading the body. A stdio client cannot
//! send headers, so the bridge reads the declarations from the `tools/list`
//! answers it carries and adds the headers to each `tools/call`. A tool whose
//! declarations are invalid is left out of the list (as the SDKs do): calling
//! it could send a header the server does not expect, or none it needs.

use serde_json::Value;

/// One declaration: the header's name and where its argument is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The name after `Mcp-Param-`.
    pub header: String,
    /// The property path from the arguments' root.
    pub path: Vec<String>,
}

/// A tool's declarations, or why they are invalid.
pub type Declarations = Result<Vec<Declaration>, String>;

/// Keywords whose values are data, not schemas: never searched.
const DATA: [&str; 4] = ["default", "const", "enum", "examples"];

/// Reads the declarations of one input schema.
pub fn scan(schema: &Value) -> Declarations {
    let mut found = Vec::new();
    walk(schema, &mut Vec::new(), &mut found)?;
    let mut seen = std::collections::HashSet::new();
    for d in &found {
        if !seen.insert(d.header.to_ascii_lowercase()) {
            return Err(format!(
                "header name {} is declared twice (names are case-insensitive)",
                d.header
            ));
        }
    }
    Ok(found)
}

/// Visits `node` at key path `at`, collecting declarations.
fn walk(node: &Value, at: &mut Vec<String>, found: &mut Vec<Declaration>) -> Result<(), String> {
    match node {
        Value::Object(map) => {
            if let Some(name) = map.get("x-mcp-header") {
                found.push(declaration(map, name, at)?);
            }
            for (k, v) in map {
                if DATA.contains(&k.as_str()) || k == "x-mcp-header" {
                    continue;
                }
                at.push(k.clone());
                walk(v, at, found)?;
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(i.to_string());
                walk(v, at, found)?;
                at.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks one `x-mcp-header` found at key path `at`.
fn declaration(
    schema: &serde_json::Map<String, Value>,
    name: &Value,
    at: &[String],
) -> Result<Declaration, String> {
    // Only a property reached through `properties` alone names one argument:
    // under items, oneOf, additionalProperties and the like it names none or many.
    let through_properties = !at.is_empty()
        && at.len().is_multiple_of(2)
        && at.iter().step_by(2).all(|k| k == "properties");
    let shown = |n: &Value| crate::text::printable(&n.to_string()).to_string();
    if !through_properties {
        return Err(format!(
            "x-mcp-header {} is not on a property of the arguments (at /{})",
            shown(name),
            at.join("/")
        ));
    }
    let Some(name) = name.as_str().filter(|n| !n.is_empty()) else {
        return Err(format!("x-mcp-header {} is not a header name", shown(name)));
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(token) {
        return Err(format!(
            "x-mcp-header {} has characters a header name cannot have",
            crate::text::printable(name)
        ));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string" | "integer" | "boolean") => {}
        _ => {
            return Err(format!(
                "x-mcp-header {name} is on a property that is not a string, integer or boolean"
            ))
        }
    }
    Ok(Declaration {
        header: name.to_string(),
        path: at.iter().skip(1).step_by(2).cloned().collect(),
    })
}

/// The value to mirror for `d` from a call's `arguments`: `None` when the
/// argument is absent or null (the header is then omitted).
pub fn value(d: &Declaration, arguments: &Value) -> Option<String> {
    let mut v = arguments;
    for k in &d.path {
        v = v.get(k)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        // Integers only, and only where every client reads them alike.
        Value::Number(n) => n
            .as_i64()
            .filter(|i| i.unsigned_abs() < (1u64 << 53))
            .map(|i| i.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declarations_on_properties_are_read_with_their_paths() {
        let s = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {
                "verbose": {"type": "boolean", "x-mcp-header": "Verbose"}}},
            "query": {"type": "string", "default": {"x-mcp-header": "NotOne"}},
        }});
        let d = scan(&s).unwrap();
        assert_eq!(d.len(), 2);
        let region = d.iter().find(|d| d.header == "Region").unwrap();
        assert_eq!(region.path, ["region"]);
        let verbose = d.iter().find(|d| d.header == "Verbose").unwrap();
        assert_eq!(verbose.path, ["opts", "verbose"]);
        let args = json!({"region": "us-west1", "opts": {"verbose": false}});
        assert_eq!(value(region, &args).as_deref(), Some("us-west1"));
        assert_eq!(value(verbose, &args).as_deref(), Some("false"));
        assert_eq!(value(region, &json!({"region": null})), None);
        assert_eq!(value(region, &json!({})), None);
    }

    #[test]
    fn invalid_declarations_are_refused_with_why() {
        let tool = |prop: Value| json!({"type": "object", "properties": {"p": prop}});
        let bad = [
            (
                tool(json!({"type": "string", "x-mcp-header": ""})),
                "not a header name",
            ),
            (
                tool(json!({"type": "object", "x-mcp-header": "P"})),
                "not a string",
            ),
            (
                tool(json!({"type": "number", "x-mcp-header": "P"})),
                "not a string",
            ),
            (
                tool(json!({"type": "string", "x-mcp-header": "My Region"})),
                "characters",
            ),
            (
                tool(json!({"type": "string", "x-mcp-header": "Région"})),
                "characters",
            ),
            (
                tool(json!({"type": "string", "x-mcp-header": "R:1"})),
                "characters",
            ),
            (
                tool(json!({"type": "array", "items": {"type": "string", "x-mcp-header": "P"}})),
                "not on a property",
            ),
            (
                json!({"type": "object", "oneOf": [{"properties": {"p": {"type": "string", "x-mcp-header": "P"}}}]}),
                "not on a property",
            ),
            (
                json!({"type": "string", "x-mcp-header": "Root"}),
                "not on a property",
            ),
            (
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "x-mcp-header": "Region"},
                    "b": {"type": "string", "x-mcp-header": "region"}}}),
                "declared twice",
            ),
        ];
        for (schema, why) in bad {
            let e = scan(&schema).unwrap_err();
            assert!(e.contains(why), "{schema}: {e}");
        }
    }

    #[test]
    fn numbers_that_are_not_safe_integers_are_not_mirrored() {
        let d = Declaration {
            header: "N".into(),
            path: vec!["n".into()],
        };
        assert_eq!(value(&d, &json!({"n": 42})).as_deref(), Some("42"));
        assert_eq!(value(&d, &json!({"n": -7})).as_deref(), Some("-7"));
        assert_eq!(value(&d, &json!({"n": 3.5})), None);
        assert_eq!(value(&d, &json!({"n": 9007199254740993u64})), None);
    }
}
