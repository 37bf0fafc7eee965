//! Writes the man page and shell completions of `lbproxy`, generated from its
//! clap definition (`lbproxy::Args`), so they list exactly the flags it has.
//!
//!   cargo run --bin gen-docs                 # into target/doc-gen/
//!   cargo run --bin gen-docs -- DIR          # into DIR
//!
//! Files: `lbproxy.1` (man page), `lbproxy.bash`, `_lbproxy` (zsh), `lbproxy.fish`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(|| PathBuf::from("target/doc-gen"), PathBuf::from);
    match generate(&dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// The man page and the completions in `dir`; returns the files written.
fn generate(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = lbproxy::Args::command();
    let name = command.get_name().to_string();
    let man = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(&man, page)?;
    let mut files = vec![man];
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        files.push(clap_complete::generate_to(shell, &mut command, &name, dir)?);
    }
    Ok(files)
}
