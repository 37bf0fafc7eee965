//! Fuzz target `client_hello`: the body is `lbproxy_fuzz::client_hello` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/client_hello/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::client_hello(data));
