//! The `quiver` binary: parse, run, and turn an error into a message and a non-zero exit code.

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // `quiver query ... | head` closes stdout early; Rust ignores SIGPIPE, so the next println!
    // panics with "Broken pipe". A reader that has seen enough is not an error: exit quietly.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = quiver_cli::Cli::parse();
    if let Err(e) = quiver_cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
