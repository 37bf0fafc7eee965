//! Fuzz target `chunked`: the body is `lbproxy_fuzz::chunked` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/chunked/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::chunked(data));
