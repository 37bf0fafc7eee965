//! Fuzz target `request_head`: the body is `lbproxy_fuzz::request_head` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/request_head/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::request_head(data));
