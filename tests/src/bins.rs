//! Where the suites find the workspace, its built binaries and the golden transcripts.
//!
//! Cargo sets `CARGO_BIN_EXE_*` only for tests of the binary's own package, so these suites look
//! for `sluiced` and `sluice-lookupd` next to the running test executable (`target/<profile>/`,
//! which follows `CARGO_TARGET_DIR` and `--release` by itself), then under the workspace's
//! `target/debug/`. `SLUICE_BIN_DIR` overrides both.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The golden transcripts: `SLUICE_GOLDEN_DIR`, else `<workspace>/../shared/golden`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("SLUICE_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/golden"),
    }
}

/// Directories searched for binaries, in order.
pub fn bin_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_BIN_DIR") {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = Vec::new();
    // A test executable lives in target/<profile>/deps/; binaries in target/<profile>/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            dirs.push(profile_dir.to_path_buf());
        }
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    dirs.push(target.join("debug"));
    dirs
}

/// The path of a workspace binary such as `sluiced`.
///
/// # Errors
/// The binary is not built; the message says how to build it.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    let dirs = bin_dirs();
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "binary `{name}` not found in {dirs:?}: run `cargo build --bins` first \
                 (scripts/test.sh does)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn missing_binary_says_how_to_build() {
        let err = binary("no-such-binary-anywhere").unwrap_err();
        assert!(err.contains("cargo build --bins"), "{err}");
    }
}
