//! AUTH PLAIN and LOGIN: every credential is recorded and accepted.

use super::*;

fn credentials(h: &Harness<Smtp>) -> Vec<(String, String, String, String)> {
    h.events("credential")
        .iter()
        .map(|e| {
            (
                text(e, "protocol").to_owned(),
                text(e, "mechanism").to_owned(),
                text(e, "username").to_owned(),
                text(e, "password").to_owned(),
            )
        })
        .collect()
}

fn cred(mech: &str, user: &str, pass: &str) -> (String, String, String, String) {
    ("smtp".into(), mech.into(), user.into(), pass.into())
}

#[test]
fn plain_with_initial_response() {
    for mut h in [postfix(), sendmail()] {
        // "\0user@example.com\0hunter2"
        h.feed(b"EHLO x\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20AaHVudGVyMg==\r\n");
        assert!(
            h.take_text()
                .ends_with("\r\n235 2.7.0 Authentication successful\r\n")
        );
        assert_eq!(
            credentials(&h),
            [cred("PLAIN", "user@example.com", "hunter2")]
        );
    }
}

#[test]
fn plain_with_continuation() {
    let mut h = postfix();
    h.feed(b"EHLO x\r\n");
    h.take_sent();
    h.feed(b"AUTH PLAIN\r\n");
    assert_eq!(h.take_text(), "334 \r\n");
    // "admin\0admin\0123456"
    h.feed(b"YWRtaW4AYWRtaW4AMTIzNDU2\r\n");
    assert_eq!(h.take_text(), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(credentials(&h), [cred("PLAIN", "admin", "123456")]);
    // Mail goes on as usual afterwards.
    h.feed(b"MAIL FROM:<a@b>\r\n");
    assert_eq!(h.take_text(), "250 2.1.0 Ok\r\n");
}

#[test]
fn login_prompts_for_user_and_password() {
    let mut h = sendmail();
    h.feed(b"EHLO x\r\nAUTH LOGIN\r\n");
    assert!(h.take_text().ends_with("250 HELP\r\n334 VXNlcm5hbWU6\r\n"));
    h.feed(b"dGVzdA==\r\n"); // test
    assert_eq!(h.take_text(), "334 UGFzc3dvcmQ6\r\n");
    h.feed(b"dGVzdDEyMw==\r\n"); // test123
    assert_eq!(h.take_text(), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(credentials(&h), [cred("LOGIN", "test", "test123")]);
}

#[test]
fn login_with_initial_user_and_pipelined_answers() {
    let mut h = postfix();
    h.feed(b"AUTH LOGIN cm9vdA==\r\ncGFzcw==\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(
        h.take_text(),
        "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
    );
    assert_eq!(credentials(&h), [cred("LOGIN", "root", "pass")]);
}

#[test]
fn garbage_cancel_and_bad_mechanisms() {
    let mut h = postfix();
    h.feed(b"AUTH PLAIN !!notbase64!!\r\n");
    assert_eq!(h.take_text(), "501 5.5.2 Cannot decode response\r\n");
    h.feed(b"AUTH PLAIN dXNlcnBhc3M=\r\n"); // "userpass": no NUL
    assert_eq!(h.take_text(), "501 5.5.2 Cannot decode response\r\n");
    h.feed(b"AUTH LOGIN\r\n%%%\r\n");
    assert_eq!(
        h.take_text(),
        "334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode response\r\n"
    );
    h.feed(b"AUTH LOGIN\r\n*\r\n");
    assert_eq!(
        h.take_text(),
        "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n"
    );
    h.feed(b"AUTH CRAM-MD5\r\nAUTH\r\n");
    assert_eq!(
        h.take_text(),
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n".repeat(2)
    );
    assert!(credentials(&h).is_empty());
    // After garbage the dialogue is back to commands.
    h.feed(b"NOOP\r\n");
    assert_eq!(h.take_text(), "250 2.0.0 Ok\r\n");
}

#[test]
fn auth_twice_or_inside_a_transaction_is_503() {
    let mut h = postfix();
    h.feed(b"AUTH PLAIN AGEAYg==\r\nAUTH PLAIN AGEAYg==\r\n");
    assert_eq!(
        h.take_text(),
        "235 2.7.0 Authentication successful\r\n503 5.5.1 Error: already authenticated\r\n"
    );
    let mut h = postfix();
    h.feed(b"MAIL FROM:<a@b>\r\nAUTH PLAIN AGEAYg==\r\n");
    assert!(
        h.take_text()
            .ends_with("503 5.5.1 Error: MAIL transaction in progress\r\n")
    );
    assert!(credentials(&h).is_empty());
}

#[test]
fn empty_password_and_lone_equals() {
    let mut h = postfix();
    h.feed(b"AUTH LOGIN\r\ndXNlcg==\r\n=\r\n");
    assert!(
        h.take_text()
            .ends_with("235 2.7.0 Authentication successful\r\n")
    );
    assert_eq!(credentials(&h), [cred("LOGIN", "user", "")]);
}
