//! Mutated proxy requests: no panic, and TCP's cuts do not change the answer.

use http_proxy::HttpProxy;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

#[test]
fn mutated_requests_never_panic_and_do_not_depend_on_cuts() {
    let summary = Fuzz::new(http_proxy::CONVERSATIONS)
        .conn(ConnInfo::test(8080))
        .config(Config::default())
        .run::<HttpProxy>();
    assert!(summary.spliced > summary.cases / 100, "{summary:?}");
    assert!(summary.closed > summary.cases / 2, "{summary:?}");
}
