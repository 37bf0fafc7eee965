//! Fuzz target `dns_answer`: the body is `lbproxy_fuzz::dns_answer` (fuzz/src/lib.rs),
//! which tests/fuzz_corpus.rs also replays over fuzz/corpus/dns_answer/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbproxy_fuzz::dns_answer(data));
