//! Mutated SMTP dialogues: no panic, and TCP's cuts do not change the answer.

use smtp::Smtp;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

use crate::{HOST, spliced_conn};

#[test]
fn mutated_dialogues_never_panic_and_do_not_depend_on_cuts() {
    for persona in ["postfix", "sendmail"] {
        let config = Config::default()
            .with("persona", persona)
            .with("hostname", HOST);
        let summary = Fuzz::new(smtp::CONVERSATIONS)
            .conn(ConnInfo::test(25))
            .config(config)
            .run::<Smtp>();
        // The mutations leave many messages whole: the deep states are reached.
        assert!(
            summary.stored > summary.cases / 50,
            "{persona}: {summary:?}"
        );
        assert!(summary.closed > 0, "{persona}: {summary:?}");
    }
}

#[test]
fn mutated_dialogues_after_a_splice_hold_too() {
    let summary = Fuzz::new(smtp::CONVERSATIONS)
        .conn(spliced_conn())
        .config(Config::default().with("hostname", HOST))
        .run::<Smtp>();
    assert!(summary.stored > 0, "{summary:?}");
}
