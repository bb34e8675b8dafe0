//! Unknown fields in requests and in the config: the types shared with
//! answers accept them (for older clients), so the agent checks what a
//! decode ignored, and refuses it: a typo must never be silently dropped.

use serde::Serialize;
use serde_json::Value;

/// The paths (`auth.secret`) of keys in `input` that decoding into `decoded`
/// ignored. Keys whose value is null or empty are not counted: the decoded
/// form leaves those out.
pub fn ignored_keys<T: Serialize>(input: &Value, decoded: &T) -> Vec<String> {
    let Ok(back) = serde_json::to_value(decoded) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(input, &back, "", &mut out);
    out
}

fn walk(input: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(i), Value::Object(b)) => {
            for (k, v) in i {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => walk(v, bv, &here, out),
                    None if is_empty(v) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(i), Value::Array(b)) if i.len() == b.len() => {
            for (n, (iv, bv)) in i.iter().zip(b).enumerate() {
                walk(iv, bv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regent_proto::PutRegistry;

    #[test]
    fn finds_typos_inside_flattened_and_tagged_types() {
        let input: Value = serde_json::json!({
            "url": "https://r",
            "auth": {"type": "oauth", "issuer": "https://i", "client_id": "c", "scopes": [], "secret": "x", "audience": null}
        });
        let decoded: PutRegistry = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(
            ignored_keys(&input, &decoded),
            vec!["auth.secret".to_string()]
        );
        let clean: Value = serde_json::json!({"url": "https://r", "auth": null});
        let decoded: PutRegistry = serde_json::from_value(clean.clone()).unwrap();
        assert!(ignored_keys(&clean, &decoded).is_empty());
    }
}
