//! The DHCP codec (`mvdp::dhcp::message`): never a panic on any bytes, as
//! a message or as a whole frame; what decodes re-encodes to a message that
//! decodes, and after one round trip the message is a fixed point (a text
//! option longer than an option can hold is cut once, at a character).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mvdp::dhcp::message::{decode_frame, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let once = Message::decode(&m.encode()).expect("an encoded message decodes");
        let twice = Message::decode(&once.encode()).expect("an encoded message decodes");
        assert_eq!(once, twice);
    }
    let _ = decode_frame(data);
});
