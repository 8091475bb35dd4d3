//! Mutated SOCKS handshakes: no panic, and TCP's cuts do not change the answer.

use socks::SocksProxy;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

/// SOCKS 4, 4a and 5 (with and without a password) to port 25, then SMTP.
const HANDSHAKES: &[&[u8]] = &[
    b"\x04\x01\x00\x19\xc0\x00\x02\x19spammer\x00HELO x\r\n",
    b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example.com\x00EHLO x\r\n",
    b"\x05\x01\x00\x05\x01\x00\x03\x0emx.example.com\x00\x19EHLO x\r\n",
    b"\x05\x02\x00\x02\x01\x04user\x04pass\x05\x01\x00\x01\xc0\x00\x02\x19\x00\x19HELO x\r\n",
    b"\x05\x01\x02\x01\x04user\x04pass\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\
      \x00\x00\x00\x00\x00\x00\x00\x01\x00\x19MAIL FROM:<a@b>\r\n",
    b"\x05\x01\x00\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00",
    b"\x04\x02\x00\x15\xc0\x00\x02\x01\x00",
];

#[test]
fn mutated_handshakes_never_panic_and_do_not_depend_on_cuts() {
    let summary = Fuzz::new(HANDSHAKES)
        .conn(ConnInfo::test(1080))
        .config(Config::default())
        .run::<SocksProxy>();
    assert!(summary.spliced > summary.cases / 100, "{summary:?}");
    assert!(summary.closed > summary.cases / 2, "{summary:?}");
}
