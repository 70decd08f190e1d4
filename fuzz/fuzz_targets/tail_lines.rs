//! Tail line formats: bytes as they arrive in a followed file, split into
//! lines in arbitrary chunks (CRLF, over-long lines), each line turned into
//! an event by every format: json, text (named and bare), regex (named
//! groups, with and without a `name` group).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard::config::TailFormat;
use switchyard::sources::tail::lines::{strip_cr, Item, LineSplitter};
use switchyard::sources::tail::parse::to_event;

fn formats() -> &'static [TailFormat] {
    static FORMATS: OnceLock<Vec<TailFormat>> = OnceLock::new();
    FORMATS.get_or_init(|| {
        vec![
            TailFormat::Json,
            TailFormat::Text {
                name: Some("app.Line".into()),
            },
            TailFormat::Text { name: None },
            TailFormat::Regex {
                pattern: regex::Regex::new(
                    r"^(?P<time>\S+) (?P<name>[\w.]+) user=(?P<user>\d+)(?: deal=(?P<deal>\d+))?$",
                )
                .unwrap(),
                name: None,
            },
            TailFormat::Regex {
                pattern: regex::Regex::new(r"(?P<path>/\S*)|(?P<name>\S+\.\S+)").unwrap(),
                name: Some("web.Hit".into()),
            },
        ]
    })
}

fuzz_target!(|input: &[u8]| {
    let [chunk, max, rest @ ..] = input else { return };
    let chunk = usize::from(*chunk).max(1);
    let max_line = usize::from(*max) * 4 + 1;
    let mut splitter = LineSplitter::new(0, max_line);
    let mut next = 0u64;
    for piece in rest.chunks(chunk) {
        splitter.feed(piece, |item| {
            let (offset, end) = match &item {
                Item::Line { offset, .. } | Item::TooLong { offset, .. } => (*offset, item.end()),
            };
            assert_eq!(offset, next, "lines are contiguous");
            assert!(end > offset);
            next = end;
            if let Item::Line { content, .. } = item {
                assert!(content.len() <= max_line);
                if let Ok(line) = std::str::from_utf8(strip_cr(content)) {
                    for format in formats() {
                        if let Ok(ev) = to_event(format, line, "tail:fuzz.log") {
                            assert_eq!(ev.source, "tail:fuzz.log");
                        }
                    }
                }
            }
        });
    }
    assert!(splitter.consumed() <= rest.len() as u64);
});
