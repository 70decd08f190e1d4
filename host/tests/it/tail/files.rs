//! Which file is which (reused inodes, identical headers, globs) and what
//! is in them (empty files, partial lines, CRLF, lines that are not events).

use super::*;

/// 30 identical header lines, over 2 KiB: more than a file fingerprint.
fn header() -> String {
    (0..30)
        .map(|i| format!("{{\"name\":\"t.Header\",\"data\":{{\"n\":\"{i:060}\"}}}}\n"))
        .collect()
}

/// How many header lines reached the sink.
fn header_events(t: &Tail) -> usize {
    t.out().iter().filter(|e| e["name"] == "t.Header").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_inode_is_a_new_file() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    let log = t.path("logs/app.log");
    // The same first 2 KiB in both generations: more than the fingerprint.
    let header = header();
    assert!(header.len() > 2048);
    append(&log, &format!("{header}{}", lines(0..100)));
    let old = fs::metadata(&log).unwrap();
    t.start().await;
    t.wait(20, "the first file", |t| t.counts().len() >= 100).await;
    t.stop().await;
    // Delete and create again within one second, so that no time in whole
    // seconds tells them apart; ext4 hands the inode straight back out.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    // (Not right at the start of a second either: file times come from a
    // coarser clock that may still be in the previous one.)
    while !(100..500).contains(&now().subsec_millis()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let deleted_at = now().as_secs() as i64;
    fs::remove_file(&log).unwrap();
    append(&log, &format!("{header}{}", lines(100..400)));
    let new = fs::metadata(&log).unwrap();
    assert_eq!(new.ctime(), deleted_at, "deleted and created within one second");
    if new.ino() != old.ino() {
        eprintln!(
            "this filesystem did not reuse the inode; the test still checks that the new file is read from 0"
        );
    }
    t.start().await;
    t.wait(20, "the new file", |t| t.counts().len() >= 400).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..400);
    let headers = header_events(&t);
    assert_eq!(headers, 60, "both generations' headers, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_headers_are_not_confused() {
    let tail = r#"
[[source.tail]]
path = "logs/*.log"
start_at = "beginning"
rotate_wait = "200ms"
"#;
    let mut t = Tail::setup(tail, "");
    let header = header();
    append(&t.path("logs/a.log"), &format!("{header}{}", lines(0..100)));
    append(&t.path("logs/b.log"), &format!("{header}{}", lines(100..300)));
    t.start().await;
    t.wait(20, "both files", |t| t.counts().len() >= 300).await;
    t.stop().await;
    // While stopped, a.log is rotated away and a new one with the same
    // header appears; b.log grows.
    fs::rename(t.path("logs/a.log"), t.path("logs/a.log.1")).unwrap();
    append(&t.path("logs/a.log.1"), &lines(300..350));
    append(&t.path("logs/a.log"), &format!("{header}{}", lines(350..400)));
    append(&t.path("logs/b.log"), &lines(400..450));
    t.start().await;
    append(&t.path("logs/b.log"), &lines(450..500));
    t.wait(20, "every line", |t| t.counts().len() >= 500).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..500);
    let headers = header_events(&t);
    assert_eq!(headers, 90, "three files' headers, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_files_partial_lines_and_crlf() {
    let tail = r#"
[[source.tail]]
path = "logs/*.log"
"#;
    let mut t = Tail::setup(tail, "");
    // Present at the first start: start_at = "end" skips its content, and an
    // empty file has none.
    File::create(t.path("logs/empty.log")).unwrap();
    append(&t.path("logs/old.log"), &lines(1000..1010));
    t.start().await;
    let empty = t.path("logs/empty.log");
    append(&empty, &lines(0..3));
    append(&empty, "{\"name\":\"t.Seq\",\"da");
    t.wait(20, "the complete lines", |t| t.counts().len() >= 3).await;
    // The partial line waits for its newline (and is no dead letter).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.counts().len(), 3);
    assert!(t.dead().is_empty(), "{:?}", t.dead());
    let partial_at = fs::metadata(&empty).unwrap().len() - 19;
    append(
        &empty,
        "ta\":{\"seq\":3}}\r\n{\"name\":\"t.Seq\",\"data\":{\"seq\":4}}\r\n",
    );
    append(&t.path("logs/old.log"), &lines(5..6));
    t.wait(20, "the completed line and the CRLF ones", |t| {
        t.counts().len() >= 6
    })
    .await;
    let out = t.out();
    let three = out.iter().find(|e| e["data"]["seq"] == 3).unwrap();
    assert_eq!(three["meta"]["offset"], partial_at);
    assert_eq!(three["meta"]["file"], empty.to_str().unwrap());
    assert_eq!(three["source"], format!("tail:{}", empty.display()));
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_go_to_dead_letters_and_reading_goes_on() {
    let tail = r#"
[[source.tail]]
path = "logs/app.log"
max_line = "1KiB"
"#;
    let mut t = Tail::setup(tail, "");
    t.start().await;
    let log = t.path("logs/app.log");
    let long = format!("{{\"name\":\"t.Long\",\"data\":\"{}\"}}\n", "x".repeat(5000));
    let mut body = Vec::new();
    body.extend_from_slice(line(0).as_bytes());
    let long_at = body.len();
    body.extend_from_slice(long.as_bytes());
    body.extend_from_slice(line(1).as_bytes());
    let utf8_at = body.len();
    body.extend_from_slice(b"{\"name\":\"t.Seq\",\"data\":\"\xff\xfe\"}\n");
    let unparsable_at = body.len();
    body.extend_from_slice(b"{\"name\": \n");
    let noname_at = body.len();
    body.extend_from_slice(b"{\"data\": {}}\n");
    body.extend_from_slice(line(2).as_bytes());
    // Written in pieces: the long line is never whole in one read.
    let mut f = OpenOptions::new().create(true).append(true).open(&log).unwrap();
    for piece in body.chunks(700) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
    }
    t.wait(20, "the good lines and four dead letters", |t| {
        t.counts().len() >= 3 && t.dead().len() >= 4
    })
    .await;
    let (metrics, _) = crate::metrics::scrape(t.daemon()).await;
    assert_eq!(
        crate::metrics::sample(&metrics, "switchyard_dead_letters_total", &[("kind", "bad_line")]),
        4.0,
        "each letter counted once, by its kind"
    );
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..3);
    let dead = t.dead();
    let file = log.to_str().unwrap();
    let by_offset = |o: usize| {
        dead.iter()
            .find(|d| d["offset"] == o)
            .unwrap_or_else(|| panic!("no dead letter at {o}: {dead:?}"))
    };
    let d = by_offset(long_at);
    assert_eq!(
        (d["kind"].as_str(), d["reason"].as_str(), d["file"].as_str()),
        (Some("bad_line"), Some("too_long"), Some(file))
    );
    assert_eq!(d["len"], long.len() - 1);
    assert_eq!(d["line_cut"], true);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("longer than max_line (1024 bytes)"),
        "{d}"
    );
    assert_eq!(
        d["line"].as_str().unwrap().len(),
        1024,
        "the beginning of the line"
    );
    let d = by_offset(utf8_at);
    assert_eq!(d["reason"], "invalid_utf8");
    assert_eq!(d["line_base64"], "eyJuYW1lIjoidC5TZXEiLCJkYXRhIjoi//4ifQ==");
    let d = by_offset(unparsable_at);
    assert_eq!(d["reason"], "unparsable");
    assert!(d["message"].as_str().unwrap().starts_with("not JSON: "), "{d}");
    assert_eq!(d["line"], "{\"name\": ");
    let d = by_offset(noname_at);
    assert_eq!(d["message"], "not an event: missing \"name\"");
    assert_eq!(d["source"], format!("tail:{file}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_picks_up_files_created_later() {
    let tail = r#"
[[source.tail]]
path = "later/*.log"
"#;
    let mut t = Tail::setup(tail, "");
    // Not even the directory exists yet.
    t.start().await;
    fs::create_dir(t.path("later")).unwrap();
    append(&t.path("later/a.log"), &lines(0..10));
    append(&t.path("later/ignored.txt"), &lines(100..110));
    t.wait(20, "the first file", |t| t.counts().len() >= 10).await;
    append(&t.path("later/b.log"), &lines(10..20));
    fs::create_dir(t.path("later/sub")).unwrap();
    append(&t.path("later/sub/c.log"), &lines(200..210));
    t.wait(20, "the second file", |t| t.counts().len() >= 20).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..20);
}
