//! Fuzz target `response_head`: the body is `lbproxy_fuzz::response_head` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/response_head/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::response_head(data));
