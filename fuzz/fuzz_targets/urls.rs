//! Connection URLs (every scheme the configuration accepts): parsed or
//! refused; the refusal never contains the password.
#![no_main]

use clusterops::config::{SecretUrl, mask_url_text};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "Fz9SecretPw";

fuzz_target!(|s: &str| {
    let _ = SecretUrl::parse(s, &["redis", "rediss", "amqp", "amqps", "postgres"]);
    let with_password = format!("redis://user:{SECRET}@{s}");
    match SecretUrl::parse(&with_password, &["redis"]) {
        Ok(u) => assert!(!u.masked().contains(SECRET) || s.contains(SECRET)),
        Err(e) => assert!(!e.contains(SECRET)),
    }
    let masked = mask_url_text(&with_password);
    assert!(!masked.contains(SECRET) || s.contains(SECRET), "{masked}");
});
