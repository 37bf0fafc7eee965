//! Fuzz target `admin_request`: the body is `lbproxy_fuzz::admin_request` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/admin_request/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::admin_request(data));
