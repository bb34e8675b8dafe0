//! Users of the test's own (for a systemd user manager, for the remote side
//! of an ssh session): made with useradd, removed with userdel.

use std::path::Path;
use std::process::Command;

/// Creates `name` with home `home` (made, owned by the user, mode 0700);
/// returns its uid. Its password is "*": none that works, but not a locked
/// account (sshd refuses those).
pub fn create(name: &str, home: &Path) -> Result<u32, String> {
    // useradd takes /etc/passwd's lock; parallel tests queue on a lock of their own.
    let created = with_passwd_lock(|| {
        Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--password",
                "*",
                "--home-dir",
            ])
            .arg(home)
            .arg(name)
            .output()
    })
    .map_err(|e| format!("useradd: {e}"))?;
    if !created.status.success() {
        return Err(format!(
            "useradd: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    let uid = id_of(name)?;
    clear_keys(uid);
    private_dir(home, uid)?;
    Ok(uid)
}

/// Empties the kernel's persistent keyring of `uid`. It outlives the user
/// (the kernel keeps it for days), and a uid is reused by the next test
/// user: what an earlier one's agent stored would count against the new
/// user's key quota (200 keys, 20,000 bytes) until its store fails.
fn clear_keys(uid: u32) {
    let _ = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .args([
            "sh",
            "-c",
            "id=$(keyctl get_persistent @u) && keyctl clear \"$id\" && keyctl unlink \"$id\" @u",
        ])
        .output();
}

/// Makes `dir`, owned by `uid`, mode 0700.
pub fn private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| e.to_string())
}

/// Removes `name` (its processes first, and what it left in the kernel's keyrings).
pub fn remove(name: &str) {
    let _ = Command::new("pkill").args(["-KILL", "-u", name]).status();
    if let Ok(uid) = id_of(name) {
        clear_keys(uid);
    }
    let _ = with_passwd_lock(|| Command::new("userdel").arg(name).output());
}

fn id_of(user: &str) -> Result<u32, String> {
    let out = Command::new("id")
        .args(["-u", user])
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("no uid for {user}"))
}

/// Runs `f` holding a lock that every test creating users shares.
fn with_passwd_lock<T>(f: impl FnOnce() -> T) -> T {
    use std::os::unix::io::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/regent-tests-useradd.lock")
        .expect("the useradd lock opens");
    // SAFETY: flock on a descriptor we own; released when it is closed.
    unsafe {
        libc::flock(lock.as_raw_fd(), libc::LOCK_EX);
    }
    f()
}
