#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clipdraw::fuzz::jobs(data));
