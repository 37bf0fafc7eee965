//! Fuzz target `config_file`: the body is `lbproxy_fuzz::config_file` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/config_file/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::config_file(data));
