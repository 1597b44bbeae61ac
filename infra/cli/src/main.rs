//! `flexbridge`: the operator CLI (see `flexbridge --help` and docs/runbook.md).

#[tokio::main]
async fn main() {
    let vars = std::env::vars().collect();
    match flexbridge_cli::run_with(std::env::args_os(), vars).await {
        Ok(out) => print!("{out}"),
        Err(flexbridge_cli::CliError::Usage(e)) => e.exit(),
        Err(e) => {
            eprintln!("flexbridge: {e}");
            std::process::exit(1);
        }
    }
}
