//! Fuzz target `proxy_header`: the body is `lbproxy_fuzz::proxy_header` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/proxy_header/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::proxy_header(data));
