//! Fuzzes `splatcast auth`, the HTTP server moq-relay asks: arbitrary request bytes, and
//! arbitrary bodies in a well-framed POST (so the event parsing and the token rule are
//! reached), with a fixed key.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use splatcast_net::auth::AuthRules;
use splatcast_net::token::Key;

const JWK: &str = r#"{"kty":"oct","alg":"HS256","k":"c3BsYXRjYXN0LWZ1enotc2VjcmV0LWF0LWxlYXN0LTMyLWJ5dGVz"}"#;

static RULES: LazyLock<AuthRules> = LazyLock::new(|| AuthRules {
    key: Key::from_jwk(JWK).expect("valid key"),
    private_rooms: vec!["hidden".into()],
});

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let _ = RULES.respond(rest, now);
    } else {
        let mut request =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", rest.len()).into_bytes();
        request.extend_from_slice(rest);
        let answer = RULES.respond(&request, now).expect("a complete request is answered");
        assert!(answer.starts_with(b"HTTP/1.1 "));
    }
});
