//! regent: configure registries, log in, and get tokens from the regent agent.

mod cli;

use clap::Parser;
use cli::args::Cli;

fn main() {
    let cli = Cli::parse();
    // Lean start for `regent token`: one thread, no pool of workers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("regent: {}", f.message());
            f.exit_code()
        }
    };
    // Dropping the runtime waits for nothing we still need.
    drop(runtime);
    std::process::exit(code);
}
