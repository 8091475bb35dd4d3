//! Mutated proxy requests: no panic, and TCP's cuts do not change the answer.

use http_proxy::HttpProxy;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

/// What open-proxy abusers and proxy checkers send.
const REQUESTS: &[&[u8]] = &[
    b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\nEHLO spam\r\nMAIL FROM:<a@b>\r\n",
    b"CONNECT 192.0.2.25:25 HTTP/1.1\r\nHost: 192.0.2.25:25\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
    b"GET http://judge.example.com/azenv.php?x=1 HTTP/1.1\r\nHost: judge.example.com\r\n\
      User-Agent: ProxyChecker/2.0\r\nProxy-Connection: keep-alive\r\n\r\n\
      GET http://judge.example.com/azenv.php HTTP/1.0\r\n\r\n",
    b"POST http://www.example.com/form HTTP/1.1\r\nHost: www.example.com\r\n\
      Content-Length: 11\r\n\r\nhello=world GET / HTTP/1.0\r\n\r\n",
    b"CONNECT www.example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello",
    b"GET http://[2001:db8::1]:8080/x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\
      Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
];

#[test]
fn mutated_requests_never_panic_and_do_not_depend_on_cuts() {
    let summary = Fuzz::new(REQUESTS)
        .conn(ConnInfo::test(8080))
        .config(Config::default())
        .run::<HttpProxy>();
    assert!(summary.spliced > summary.cases / 100, "{summary:?}");
    assert!(summary.closed > summary.cases / 2, "{summary:?}");
}
