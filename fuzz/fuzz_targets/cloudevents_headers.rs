//! Binary-mode CloudEvents: arbitrary `ce-*` headers (names and raw value
//! bytes, percent-encoding and quoted strings included) and a body. Input:
//! lines `name:value`; the part after the first empty line is the body.
//! Also the header-value decoder alone on the whole input.
#![no_main]

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard::event::cloudevents::decode_header_value;
use switchyard::http::ingest;

fuzz_target!(|input: &[u8]| {
    if let Ok(s) = decode_header_value(input) {
        assert!(s.len() <= input.len(), "decoding never grows a value");
    }
    let split = input.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &[][..]),
    };
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let mut full = b"ce-".to_vec();
        full.extend_from_slice(name);
        let name = match name {
            b"content-type" => HeaderName::from_static("content-type"),
            _ => match HeaderName::from_bytes(&full) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    if let Ok(events) = ingest::events(&headers, body) {
        assert_eq!(events.len(), 1);
        let ev = &events[0];
        assert!(!ev.id.is_empty() && !ev.name.is_empty());
        assert!(ev.meta.contains_key("ce_source"));
    }
});
