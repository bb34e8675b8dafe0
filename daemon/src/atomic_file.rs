//! Crash-safe file replacement: the config and the file store both use it.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a 0600 temp file in the same directory,
/// fsyncs it, renames it over `path` and fsyncs the directory, so a crash
/// leaves the old file or the new one, never a half-written one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let ctx = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| ctx("cannot create the directory of", e))?;
    // tempfile creates its files with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".regent-")
        .tempfile_in(dir)
        .map_err(|e| ctx("cannot create a temp file beside", e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| ctx("cannot write", e))?;
    tmp.persist(path)
        .map_err(|e| ctx("cannot replace", e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx("cannot sync the directory of", e))
}

/// Creates `dir` (and parents) with mode 0700 where missing.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
