//! Decoding of agent API request bodies, as the agent's JSON extractor does
//! it: any input must give a value or an error, never a panic; an error
//! message must not echo a quoted value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regent_proto::{AuthConfig, InvalidateRequest, LoginRequest, LogoutRequest, PutRegistry, TokenRequest};

fuzz_target!(|data: &[u8]| {
    let _ = regentd::api::decode_body::<TokenRequest>(data);
    let _ = regentd::api::decode_body::<PutRegistry>(data);
    let _ = regentd::api::decode_body::<AuthConfig>(data);
    let _ = regentd::api::decode_body::<LoginRequest>(data);
    let _ = regentd::api::decode_body::<LogoutRequest>(data);
    if let Err(e) = regentd::api::decode_body::<InvalidateRequest>(data) {
        // No long string the client sent (a token in a wrong place, as a value
        // or as a key) is echoed back in the error.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            let mut strings = Vec::new();
            collect(&v, &mut strings);
            for s in strings.iter().filter(|s| s.chars().count() > 40) {
                assert!(!e.message.contains(s.as_str()), "echoed: {}", e.message);
            }
        }
    }
    let _ = regentd::api::parse_wait_secs(std::str::from_utf8(data).ok());
});

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                collect(x, out);
            }
        }
        _ => {}
    }
}
