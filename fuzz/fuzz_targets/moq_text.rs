//! Fuzzes what the network side parses from peers and files: catalogs, JWK keys, tokens (with
//! a fixed key) and their grants, and MoQ addresses.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use splatcast_net::token::Key;
use splatcast_net::{Address, StreamCatalog};

const JWK: &str = r#"{"kty":"oct","alg":"HS256","k":"c3BsYXRjYXN0LWZ1enotc2VjcmV0LWF0LWxlYXN0LTMyLWJ5dGVz"}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = StreamCatalog::from_json(text);
    let _ = Key::from_jwk(text);
    let _ = text.parse::<Address>();
    let key = Key::from_jwk(JWK).expect("valid key");
    if let Ok(claims) = key.verify(text, SystemTime::now()) {
        let _ = claims.authorize(text);
    }
    // Grants against arbitrary paths, from a token we sign ourselves.
    let claims = splatcast_net::token::Claims {
        root: text.into(),
        publish: vec![text.into()],
        ..Default::default()
    };
    let token = key.sign(&claims);
    if let Ok(back) = key.verify(&token, SystemTime::now()) {
        assert_eq!(back.root, claims.root);
        let _ = back.authorize(text);
    }
});
