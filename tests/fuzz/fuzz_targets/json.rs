#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsgate::fuzz_checks::json::parse_and_validate(data));
