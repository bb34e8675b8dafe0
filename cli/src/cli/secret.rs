//! Secrets the user gives as files (client secrets, private keys, ID
//! tokens): read once, bounded, trimmed, never echoed.

use super::{Failure, Result};
use regent_proto::Secret;
use std::path::Path;

/// Largest secret or key file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret from a file: bounded, trimmed, non-empty.
pub fn read(what: &str, path: &Path) -> Result<Secret> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| {
        Failure::Other(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    let mut s = String::new();
    f.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut s)
        .map_err(|e| {
            Failure::Other(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
        })?;
    if s.len() as u64 > MAX_SECRET_FILE {
        return Err(Failure::Other(format!(
            "the {what} file {} is larger than 64 KiB",
            path.display()
        )));
    }
    let t = s.trim();
    if t.is_empty() {
        return Err(Failure::Other(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::from(t))
}
