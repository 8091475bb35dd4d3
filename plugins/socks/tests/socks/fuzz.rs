//! Mutated SOCKS handshakes: no panic, and TCP's cuts do not change the answer.

use socks::SocksProxy;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

#[test]
fn mutated_handshakes_never_panic_and_do_not_depend_on_cuts() {
    let summary = Fuzz::new(socks::CONVERSATIONS)
        .conn(ConnInfo::test(1080))
        .config(Config::default())
        .run::<SocksProxy>();
    assert!(summary.spliced > summary.cases / 100, "{summary:?}");
    assert!(summary.closed > summary.cases / 2, "{summary:?}");
}
