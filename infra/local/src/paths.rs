//! Where things are: the repository, its template, and the project-local venv.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// The checkout: found at run time from the working directory or the executable
/// (`spapi_sim::models::checkout_root`), never compiled in, so a moved or renamed checkout runs
/// the binaries it already built. Outside any checkout: one line on stderr and exit 2, because
/// nothing local can work without it.
pub fn repo_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| match spapi_sim::models::checkout_root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("flexbridge: {e}");
            std::process::exit(2)
        }
    })
    .clone()
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
