//! The envelope parser on arbitrary bytes: never panics; what parses re-serialises to the same
//! header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = tracex_core::seal::parse(data) else { return };
    let mut header = Vec::new();
    env.header.write(&mut header).expect("a parsed header writes");
    assert_eq!(&data[..header.len()], &header[..], "header bytes round-trip");
});
