//! The `lbproxy` binary: parse the command line, start logging, run the reactor.

use std::process::ExitCode;

use clap::Parser;
use lbproxy::{Args, Config, Reactor};

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::from(args);
    let result = Reactor::bind(config).and_then(Reactor::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
