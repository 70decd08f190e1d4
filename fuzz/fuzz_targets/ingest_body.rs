//! Request bodies: every Content-Type `/v1/events` and `/event/log` take,
//! each Content-Encoding, arbitrary bytes. Input: byte 0 picks the media
//! type, byte 1 the encoding header, the rest is the body as sent. Decoding
//! must stay within max_body; parsing must answer, never panic.
#![no_main]

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use libfuzzer_sys::fuzz_target;
use switchyard::http::{body, ingest};

const MEDIA: [Option<&str>; 9] = [
    None,
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("application/cloudevents+json; charset=utf-8"),
    Some("application/cloudevents-batch+json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
    Some("application/cloudevents+avro"),
    Some("application/octet-stream"),
];
const ENCODING: [Option<&str>; 7] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("zstd"),
    Some("identity"),
    Some("gzip, zstd"),
    Some("br"),
];
const MAX_BODY: u64 = 64 << 10;

fuzz_target!(|input: &[u8]| {
    let [m, e, raw @ ..] = input else { return };
    let mut headers = HeaderMap::new();
    if let Some(ct) = MEDIA[usize::from(*m) % MEDIA.len()] {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(enc) = ENCODING[usize::from(*e) % ENCODING.len()] {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    let Ok(codings) = body::encodings(&headers) else {
        return;
    };
    let Ok(decoded) = body::decode(&codings, Bytes::copy_from_slice(raw), MAX_BODY) else {
        return;
    };
    assert!(decoded.len() as u64 <= MAX_BODY);
    if let Ok(events) = ingest::events(&headers, &decoded) {
        for ev in events {
            // Whatever was accepted serialises and reads back.
            let json = ev.to_json();
            let back: switchyard::event::Event =
                serde_json::from_slice(&json).expect("an accepted event reads back");
            assert_eq!(back, ev);
        }
    }
    let query = std::str::from_utf8(raw).ok();
    let _ = ingest::eventlib(query, &headers, &decoded);
});
