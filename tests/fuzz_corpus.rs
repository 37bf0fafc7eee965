//! Replays every file of `fuzz/corpus/<target>/` through the body of that fuzz
//! target (issue 15), under a plain stable `cargo test`: the seeds, and any
//! input that once crashed and was added after its fix, stay fixed without
//! cargo-fuzz or a nightly compiler. The bodies are `fuzz/src/lib.rs`, the
//! same code the fuzz targets run.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

/// Every input of one target's corpus, through `body`; at least one must exist.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Name the input that failed: the panic message alone does not.
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            eprintln!("fuzz input {} failed", file.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn request_head_corpus() {
    replay("request_head", targets::request_head);
}

#[test]
fn response_head_corpus() {
    replay("response_head", targets::response_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", targets::chunked);
}

#[test]
fn admin_request_corpus() {
    replay("admin_request", targets::admin_request);
}

#[test]
fn config_file_corpus() {
    replay("config_file", targets::config_file);
}

#[test]
fn dns_answer_corpus() {
    replay("dns_answer", targets::dns_answer);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", targets::proxy_header);
}

#[test]
fn client_hello_corpus() {
    replay("client_hello", targets::client_hello);
}
