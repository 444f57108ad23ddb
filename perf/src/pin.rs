//! Pinning this process (all its threads, and every thread it starts later) to a CPU set,
//! through `taskset` so that this crate needs no `unsafe` `sched_setaffinity` call.

use std::process::Command;

use anyhow::{bail, Context};

/// Pins every thread of this process to `cpus` (a taskset list such as `1` or `0,2-3`).
/// Threads started afterwards inherit the set.
///
/// # Errors
/// When `taskset` is missing or refuses the list.
pub fn pin_self(cpus: &str) -> anyhow::Result<()> {
    let pid = std::process::id().to_string();
    let output = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .output()
        .context("running taskset (util-linux) to pin this process")?;
    if !output.status.success() {
        bail!(
            "taskset -a -p -c {cpus} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `command` prefixed so that it runs pinned to `cpus` (or unchanged without a set).
pub fn pinned_shell_command(command: &str, cpus: Option<&str>) -> Vec<String> {
    let shell = vec!["sh".to_owned(), "-c".to_owned(), format!("exec {command}")];
    match cpus {
        Some(cpus) => [
            vec!["taskset".to_owned(), "-c".to_owned(), cpus.to_owned()],
            shell,
        ]
        .concat(),
        None => shell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_wrapped_so_that_the_pid_is_the_server() {
        assert_eq!(
            pinned_shell_command("sluiced -x", None),
            ["sh", "-c", "exec sluiced -x"]
        );
        assert_eq!(
            pinned_shell_command("nsqd", Some("0")),
            ["taskset", "-c", "0", "sh", "-c", "exec nsqd"]
        );
    }
}
