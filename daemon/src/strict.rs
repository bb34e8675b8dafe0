//! Unknown fields in requests and in the config: the types shared with
//! answers accept them (for older clients), so the agent checks what a
//! decode ignored, and refuses it: a typo must never be silently dropped.
//!
//! The check compares the input with the decoded value serialised again. A
//! field left out of that form because it holds its default (`false` under
//! `skip_serializing_if`) is told from an unknown one by decoding once more
//! with the value flipped: a field that exists then shows up.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One step of a path into a JSON document.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The paths (`auth.secret`) of keys in `input` that decoding into `decoded`
/// ignored. Keys whose value is null or empty are not counted: the decoded
/// form leaves those out.
pub fn ignored_keys<T: Serialize + DeserializeOwned>(input: &Value, decoded: &T) -> Vec<String> {
    let Ok(back) = serde_json::to_value(decoded) else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    walk(input, &back, &mut Vec::new(), &mut missing);
    missing
        .into_iter()
        .filter(|(path, value)| !(*value == Value::Bool(false) && exists::<T>(input, path)))
        .map(|(path, _)| render(&path))
        .collect()
}

fn walk(input: &Value, back: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Value)>) {
    match (input, back) {
        (Value::Object(i), Value::Object(b)) => {
            for (k, v) in i {
                path.push(Step::Key(k.clone()));
                match b.get(k) {
                    Some(bv) => walk(v, bv, path, out),
                    None if is_empty(v) => {}
                    None => out.push((path.clone(), v.clone())),
                }
                path.pop();
            }
        }
        (Value::Array(i), Value::Array(b)) if i.len() == b.len() => {
            for (n, (iv, bv)) in i.iter().zip(b).enumerate() {
                path.push(Step::Index(n));
                walk(iv, bv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Whether the `false` at `path` is a field of `T` left out for holding its
/// default: with `true` there instead, the decoded form keeps it.
fn exists<T: Serialize + DeserializeOwned>(input: &Value, path: &[Step]) -> bool {
    let mut flipped = input.clone();
    match at(&mut flipped, path) {
        Some(v) => *v = Value::Bool(true),
        None => return false,
    }
    let Ok(decoded) = serde_json::from_value::<T>(flipped) else {
        return false;
    };
    let Ok(mut back) = serde_json::to_value(decoded) else {
        return false;
    };
    at(&mut back, path).is_some_and(|v| *v == Value::Bool(true))
}

fn at<'v>(mut v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    for step in path {
        v = match step {
            Step::Key(k) => v.as_object_mut()?.get_mut(k)?,
            Step::Index(n) => v.as_array_mut()?.get_mut(*n)?,
        };
    }
    Some(v)
}

fn render(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(n) => s.push_str(&format!("[{n}]")),
        }
    }
    s
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

    fn check(input: Value) -> Vec<String> {
        let decoded: PutRegistry = serde_json::from_value(input.clone()).unwrap();
        ignored_keys(&input, &decoded)
    }

    #[test]
    fn finds_typos_inside_flattened_and_tagged_types() {
        let input = serde_json::json!({
            "url": "https://r",
            "auth": {"type": "oauth", "issuer": "https://i", "client_id": "c", "scopes": [], "secret": "x", "audience": null}
        });
        assert_eq!(check(input), vec!["auth.secret".to_string()]);
        assert!(check(serde_json::json!({"url": "https://r", "auth": null})).is_empty());
    }

    #[test]
    fn an_explicit_false_is_a_field_not_a_typo() {
        let input = serde_json::json!({
            "url": "https://r", "discover": false,
            "auth": {"type": "oauth", "issuer": "https://i", "client_id": "c",
                     "discovered": false, "own_grant": false, "assume_pkce_s256": false}
        });
        assert!(check(input).is_empty());
    }

    #[test]
    fn an_unknown_key_holding_false_is_still_refused() {
        let input = serde_json::json!({
            "url": "https://r", "discover": false,
            "auth": {"type": "oauth", "issuer": "https://i", "client_id": "c", "own_grnat": false}
        });
        assert_eq!(check(input), vec!["auth.own_grnat".to_string()]);
    }
}
