//! The `lbproxy` binary: parse the command line (or `--config FILE`), start
//! logging, run the reactor. `--check` validates and prints the configuration.

use std::process::ExitCode;

use clap::Parser;
use lbproxy::config::ServerConfig;
use lbproxy::{Args, Plan, Server};

fn main() -> ExitCode {
    let args = Args::parse();
    let check = args.check;
    // Configuration errors exit 2, as clap's do.
    let server = match ServerConfig::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        print!("{}", server.to_toml());
        return ExitCode::SUCCESS;
    }
    if server.frontends.len() > 1 {
        eprintln!("error: several frontends need the server core (issue 9); run one per process for now");
        return ExitCode::from(2);
    }
    let level = server.global.log_level.to_string();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let result = Server::bind(Plan::single(server.to_config(0))).and_then(Server::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
