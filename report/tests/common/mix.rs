//! The known mix of known_mix.rs, shared with the format tests.
#![allow(dead_code)]

use super::{MsgGroup, ReqGroup, SessGroup, Spec};

const TSV_V4: &str = "\
1.0.0.0\t1.0.0.255\t9924\tTW\tTFN-TW
2.0.0.0\t2.0.255.255\t3462\tTW\tHINET
3.0.0.0\t3.0.0.255\t4134\tCN\tCHINANET
4.0.0.0\t4.0.0.255\t0\tNone\tNot routed
";
const TSV_V6: &str = "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64500\tUS\tEXAMPLE-V6\n";

/// Campaign A, variant 1 (en).
pub const A1: &str = "From: \"Pharmacy\" <sales@pills-a.example>\r\nSubject: Cheap meds for John\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear John, our online pharmacy offers the best prices on all popular medications. Order today and get 25% off your first purchase. Fast and discreet shipping worldwide, no prescription needed. Visit http://www.pills-a.example/buy?id=123 to see the full catalogue and save money now.\r\n";
/// Campaign A, variant 2: another name, number and URL path.
pub const A2: &str = "From: \"Pharmacy\" <sales@pills-a.example>\r\nSubject: Cheap meds for Maria\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear Maria, our online pharmacy offers the best prices on all popular medications. Order today and get 40% off your first purchase. Fast and discreet shipping worldwide, no prescription needed. Visit http://pills-a.example/buy?id=987 to see the full catalogue and save money now.\r\n";
/// Portuguese.
pub const B: &str = "From: <loja@ofertas.example.br>\r\nSubject: Oferta para voce\r\n\r\nOlá Maria, aproveite agora a nossa promoção com descontos de até 50% em todos os produtos da loja. Não perca esta oportunidade, a oferta é válida somente por tempo limitado. Acesse https://ofertas.example.br/x e compre com frete grátis para todo o Brasil.\r\n";
const C_TEXT: &str = "親愛的客戶您好，我們公司提供最優惠的產品和服務，現在訂購立即享有特別折扣。詳情請瀏覽 http://cn-shop.example/ 謝謝。";
const D_TEXT: &str =
    "Здравствуйте! Лучшие цены на рекламу для вашей компании. http://pills-a.example/ru";

/// Chinese, base64.
pub fn c_body() -> &'static str {
    let s = format!(
        "From: <a@cn-shop.example>\r\nSubject: =?utf-8?B?5pyA5paw5YSq5oOg?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        spampot_report::body::base64_encode(C_TEXT.as_bytes())
    );
    Box::leak(s.into_boxed_str())
}

/// Russian, quoted-printable, mentions campaign A's domain.
pub fn d_body() -> &'static str {
    let s = format!(
        "From: <r@ru.example>\r\nSubject: =?utf-8?Q?=D0=9F=D1=80=D0=B5=D0=B4=D0=BB=D0=BE=D0=B6=D0=B5=D0=BD=D0=B8=D0=B5?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
        spampot_report::body::qp_encode(D_TEXT)
    );
    Box::leak(s.into_boxed_str())
}
/// A relay probe.
pub const E: &str = "Subject: test\r\n\r\ntest\r\n";
/// Spanish, multipart with the URL only in the HTML part.
pub const F: &str = "From: <e@es.example>\r\nSubject: Hola\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHola, descubre como ganar dinero desde casa con nuestro sistema. Visita ya.\r\n--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hola</p><a href=\"HTTP://WWW.Promo.example.es/\">aqu\u{ed}</a>\r\n--XX--\r\n";

const G1_RCPTS: &[&str] = &[
    "u1@hotmail.com",
    "u2@hotmail.com",
    "u3@hotmail.com",
    "u4@hotmail.com",
    "u5@hotmail.com",
    "u1@yahoo.com.tw",
    "u2@yahoo.com.tw",
    "u3@yahoo.com.tw",
    "u4@yahoo.com.tw",
    "<U5@Yahoo.com.tw>",
];
const G2_RCPTS: &[&str] = &[
    "a@hotmail.com",
    "b@hotmail.com",
    "c@hotmail.com",
    "d@hotmail.com",
    "e@HOTMAIL.COM",
];

pub fn spec() -> Spec {
    let g = |n, ip, sensor, at, port, via, from, rcpts, body, probe| MsgGroup {
        n,
        ip,
        sensor,
        at,
        port,
        via,
        from,
        rcpts,
        body,
        probe,
    };
    Spec {
        ip2asn_v4: TSV_V4,
        ip2asn_v6: TSV_V6,
        messages: vec![
            g(
                10,
                "1.0.0.1",
                "s1",
                "2026-01-30T00:00:00",
                1080,
                "socks",
                "a@spam1.example",
                G1_RCPTS,
                A1,
                false,
            ),
            g(
                6,
                "1.0.0.2",
                "s1",
                "2026-01-31T00:00:00",
                8080,
                "http-proxy",
                "<b@Spam1.Example>",
                G2_RCPTS,
                A2,
                false,
            ),
            g(
                4,
                "2.0.1.1",
                "s2",
                "2026-02-01T00:00:00",
                3128,
                "http-proxy",
                "x@SPAM2.example",
                &["x@GMAIL.com"],
                B,
                false,
            ),
            g(
                2,
                "3.0.0.5",
                "s2",
                "2026-02-15T00:00:00",
                25,
                "",
                "",
                &["y@gmail.com"],
                c_body(),
                false,
            ),
            g(
                1,
                "4.0.0.9",
                "s1",
                "2026-03-02T00:00:00",
                1080,
                "socks",
                "r@ru.example",
                &["a@mail.ru", "b@mail.ru"],
                d_body(),
                false,
            ),
            g(
                1,
                "9.9.9.9",
                "s1",
                "2026-03-02T01:00:00",
                1080,
                "socks",
                "p@probe.example",
                &["p@probe.example"],
                E,
                true,
            ),
            g(
                1,
                "2001:db8::1",
                "s2",
                "2026-03-02T02:00:00",
                80,
                "http-proxy",
                "e@es.example",
                &["e@correo.es"],
                F,
                false,
            ),
        ],
        sessions: vec![
            SessGroup {
                n: 40,
                port: 1080,
                plugin: "socks",
                sensor: "s1",
                day: "2026-01-30",
            },
            SessGroup {
                n: 30,
                port: 8080,
                plugin: "http-proxy",
                sensor: "s1",
                day: "2026-01-31",
            },
            SessGroup {
                n: 15,
                port: 3128,
                plugin: "http-proxy",
                sensor: "s2",
                day: "2026-02-01",
            },
            SessGroup {
                n: 10,
                port: 25,
                plugin: "smtp",
                sensor: "s2",
                day: "2026-02-15",
            },
            SessGroup {
                n: 4,
                port: 3127,
                plugin: "mydoom",
                sensor: "s1",
                day: "2026-03-02",
            },
            SessGroup {
                n: 1,
                port: 9999,
                plugin: "telnet",
                sensor: "s1",
                day: "2026-03-02",
            },
        ],
        requests: vec![
            ReqGroup {
                n: 90,
                module: "http",
                kind: "connect-smtp",
                sensor: "s1",
                day: "2026-01-31",
            },
            ReqGroup {
                n: 5,
                module: "http",
                kind: "connect-other",
                sensor: "s1",
                day: "2026-01-31",
            },
            ReqGroup {
                n: 3,
                module: "http",
                kind: "get",
                sensor: "s1",
                day: "2026-01-31",
            },
            ReqGroup {
                n: 2,
                module: "http",
                kind: "error",
                sensor: "s1",
                day: "2026-01-31",
            },
            ReqGroup {
                n: 30,
                module: "socks5",
                kind: "connect-smtp",
                sensor: "s1",
                day: "2026-01-30",
            },
            ReqGroup {
                n: 10,
                module: "socks5",
                kind: "error",
                sensor: "s1",
                day: "2026-01-30",
            },
            ReqGroup {
                n: 1,
                module: "socks4",
                kind: "connect-other",
                sensor: "s2",
                day: "2026-03-02",
            },
            ReqGroup {
                n: 3,
                module: "sobig",
                kind: "connect-smtp",
                sensor: "s2",
                day: "2026-02-15",
            },
        ],
    }
}

pub fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    super::build(d.path(), &spec());
    d
}
