//! The `lbproxy` binary: parse the command line (or `--config FILE`), start
//! logging, run the server. `--check` validates and prints the configuration.

use std::process::ExitCode;

use clap::Parser;
use lbproxy::config::ServerConfig;
use lbproxy::{Args, Plan, Server};

fn main() -> ExitCode {
    let args = Args::parse();
    let check = args.check;
    let file = args.config.clone();
    // Configuration errors exit 2, as clap's do.
    let config = match ServerConfig::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    lbproxy::logfmt::init(config.global.log_level, config.global.log_format);
    // Only reached with admin_insecure: the checks refuse this otherwise.
    if let Some(addr) = config.global.admin_exposed() {
        log::warn!(
            "admin API on {addr} without a token (admin insecure): anyone who can reach it can add and remove \
             backends and switch the policy"
        );
    }
    let result = Server::bind(Plan::from_config(&config)).and_then(|mut server| {
        // SIGHUP and POST /reload read the file again; an invalid one changes nothing.
        if let Some(path) = file {
            server.set_reloader(Box::new(move || {
                ServerConfig::load(&path).map(|c| Plan::from_config(&c)).map_err(|e| e.to_string())
            }));
        }
        server.run()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
