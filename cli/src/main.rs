//! The `quiver` binary: parse, run, and turn an error into a message and a non-zero exit code.

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = quiver_cli::Cli::parse();
    if let Err(e) = quiver_cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
