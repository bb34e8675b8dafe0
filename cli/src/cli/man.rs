//! `regent man`: a page per command (`regent-registry-add.1`, ...), each
//! with its options, its examples, and what every page needs: the
//! environment, the files, the exit status. clap_mangen renders what clap
//! knows; the shared sections are regent's.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment regent reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("REGENT_SOCKET", "The agent's socket, when --socket is not given."),
    ("XDG_RUNTIME_DIR", "Where the socket is by default: $XDG_RUNTIME_DIR/regent/agent.sock (else /tmp/regent-$UID/agent.sock, else the one the running agent recorded)."),
    ("XDG_CONFIG_HOME", "Where the config file is (default ~/.config)."),
    ("XDG_STATE_HOME", "Where the agent's state is: its lock, the file store, the autostarted agent's log (default ~/.local/state)."),
    ("REGENT_NO_AUTOSTART", "When set and not empty, regent never starts regentd itself: no agent means exit 3."),
    ("BROWSER", "The browser to open for a login: a ':'-separated list of commands, %s standing for the URL."),
];

/// The files regent and regentd use.
const FILES: &[(&str, &str)] = &[
    ("$XDG_CONFIG_HOME/regent/config.toml", "Registries, MCP servers and IdPs (no secrets). Yours to edit: the agent keeps comments and order, and never overwrites a file that does not parse."),
    ("$XDG_RUNTIME_DIR/regent/agent.sock", "The agent's socket (0600, in a 0700 directory)."),
    ("$XDG_STATE_HOME/regent/agent.lock", "Held by the running agent: one agent per user. Names its pid and socket."),
    ("$XDG_STATE_HOME/regent/agent.log", "The log of an agent regent started (under systemd: journalctl --user -u regentd)."),
    ("$XDG_STATE_HOME/regent/tokens.json", "The token store of --store file (0600)."),
    ("~/.config/systemd/user/regentd.{socket,service}", "The user units regent service install writes."),
];

/// The exit status of every regent command.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "An error; stderr says which, in one line."),
    ("2", "A command line that cannot work."),
    (
        "3",
        "No agent could be reached (or the socket is not yours).",
    ),
    (
        "4",
        "A login is required: stderr names the regent login to run.",
    ),
    ("128+N", "Stopped by signal N while waiting (130: Ctrl-C)."),
];

/// Renders the page of `cmd` (a built command, so subcommands know their full names).
pub fn render(cmd: &clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).manual("regent manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if let Some(help) = cmd.get_after_help() {
        writeln!(w, ".SH EXAMPLES")?;
        writeln!(w, ".nf")?;
        for line in help.to_string().lines() {
            writeln!(w, "{}", escape(line))?;
        }
        writeln!(w, ".fi")?;
    }
    section(w, "ENVIRONMENT", ENVIRONMENT)?;
    section(w, "FILES", FILES)?;
    section(w, "EXIT STATUS", EXIT_STATUS)?;
    writeln!(w, ".SH SEE ALSO")?;
    let mut see: Vec<String> = vec!["regentd(1)".into()];
    if cmd.get_name() != "regent" {
        see.push("regent(1)".into());
    }
    see.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{}(1)", page_name(s))),
    );
    writeln!(w, "{}", escape(&see.join(", ")))
}

/// Writes every page (regent's and each command's) into `dir`.
pub fn write_all(cmd: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    fn walk(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let path = dir.join(format!("{}.1", page_name(cmd)));
        let mut f = std::fs::File::create(&path)?;
        render(cmd, &mut f)?;
        out.push(path);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, out)?;
        }
        Ok(())
    }
    walk(cmd, dir, &mut written)?;
    Ok(written)
}

/// The built command `words` name (`["registry", "add"]`), if any.
pub fn find<'a>(cmd: &'a clap::Command, words: &[String]) -> Option<&'a clap::Command> {
    words
        .iter()
        .try_fold(cmd, |c, w| c.find_subcommand(w.as_str()))
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

fn section(w: &mut dyn Write, title: &str, items: &[(&str, &str)]) -> std::io::Result<()> {
    writeln!(w, ".SH {title}")?;
    for (k, v) in items {
        writeln!(w, ".TP\n\\fB{}\\fR\n{}", escape(k), escape(v))?;
    }
    Ok(())
}

/// Text as roff shows it: backslashes escaped, no line read as a request.
fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn built() -> clap::Command {
        let mut cmd = crate::cli::args::Cli::command().disable_help_subcommand(true);
        cmd.build();
        cmd
    }

    #[test]
    fn every_command_has_a_page_with_the_shared_sections() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_all(&built(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for n in [
            "regent.1",
            "regent-registry-add.1",
            "regent-mcp-proxy.1",
            "regent-agent-logs.1",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        let add = std::fs::read_to_string(dir.path().join("regent-registry-add.1")).unwrap();
        for s in [
            ".SH EXAMPLES",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXIT STATUS",
            "regent registry add",
        ] {
            assert!(add.contains(s), "{s} missing:\n{add}");
        }
    }

    #[test]
    fn a_page_is_found_by_its_words() {
        let cmd = built();
        let words = ["mcp".to_string(), "add".to_string()];
        assert_eq!(page_name(find(&cmd, &words).unwrap()), "regent-mcp-add");
        assert!(find(&cmd, &["nope".to_string()]).is_none());
    }
}
