//! Where things are: the repository, its template, and the project-local venv.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// The repository root (this crate lives in `<root>/infra/local`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn template() -> PathBuf {
    repo_root().join("template.yaml")
}

/// `$FLEXBRIDGE_VENV`, or `<root>/.venv`.
pub fn venv() -> PathBuf {
    std::env::var_os("FLEXBRIDGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// Creates the venv with the pinned tools on first use (about a minute), once per process.
/// `setup-venv.sh` holds a file lock, so parallel test binaries wait for one install.
pub fn ensure_venv() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = repo_root().join("infra/local/setup-venv.sh");
        let status = Command::new("bash")
            .arg(&script)
            .env("FLEXBRIDGE_VENV", venv())
            .status()
            .map_err(|e| format!("cannot run {}: {e} (is bash installed?)", script.display()))?;
        if !status.success() {
            return Err(format!(
                "{} failed ({status}); it needs python3 with venv and pip, and access to PyPI",
                script.display()
            ));
        }
        Ok(())
    })
    .clone()
    .map_err(anyhow::Error::msg)
    .context("setting up the local tooling venv")?;
    if !python().exists() {
        bail!("{} is missing after setup", python().display());
    }
    Ok(())
}
