//! Issue 17 follow-ups over real HTTP: binary CloudEvents bounded by
//! `max_body` headers included, eventlib form data that is not UTF-8, and
//! CloudEvents without data.

use serde_json::json;

use crate::http_ingest::archive_daemon;

type Headers<'a> = Vec<(&'a str, &'a str)>;

fn ce_headers<'a>(id: &'a str, extra: &[(&'a str, &'a str)]) -> Headers<'a> {
    let mut h = vec![
        ("ce-specversion", "1.0"),
        ("ce-type", "a.Bin"),
        ("ce-source", "/s"),
        ("ce-id", id),
    ];
    h.extend_from_slice(extra);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_cloudevents_count_their_ce_headers_toward_max_body() {
    let mut d = archive_daemon("max_body = \"64KiB\"").await;
    let big = "x".repeat(300 << 10);
    let half = "y".repeat(40 << 10);
    let cases: Vec<(Headers, Vec<u8>)> = vec![
        // One header alone, far over the limit, with an empty body.
        (ce_headers("big-ext", &[("ce-ext", &big)]), Vec::new()),
        // Body and headers each under it, together over.
        (
            ce_headers("split", &[("ce-ext", &half), ("content-type", "text/plain")]),
            half.clone().into_bytes(),
        ),
    ];
    for (headers, body) in cases {
        let r = d.request("POST", "/v1/events", &headers, body).await;
        assert_eq!(r.status, 413, "{}", r.body);
        let msg = r.body["error"].as_str().unwrap();
        assert!(msg.contains("larger than max_body (65536 bytes)"), "{msg}");
        assert!(msg.contains("ce-* header values count toward max_body"), "{msg}");
    }
    // Under the limit together: accepted, the extension kept.
    let r = d
        .request(
            "POST",
            "/v1/events",
            &ce_headers("fits", &[("ce-ext", &half), ("content-type", "text/plain")]),
            b"small".to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    d.shutdown().await;
    let got = d.lines("archive.ndjson");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], "fits");
    assert_eq!(got[0]["data"], "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventlib_form_data_that_is_not_utf8_is_refused_naming_the_field() {
    let mut d = archive_daemon("").await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "/event/log?__event__=a.B",
            b"%ff=%fe",
            "/event/log body: the key of pair 1",
        ),
        (
            "/event/log?__event__=a.B",
            b"k=%fe",
            "/event/log body: the value of \"k\"",
        ),
        (
            "/event/log?__event__=a.B&%ff=1",
            b"",
            "/event/log query string: the key of pair 2",
        ),
        (
            "/event/log?__event__=a.B&k=%C3",
            b"",
            "/event/log query string: the value of \"k\"",
        ),
    ];
    for (path, body, expect) in cases {
        let r = d.request("POST", path, &form, body.to_vec()).await;
        assert_eq!(r.status, 400, "{path} {body:?}: {}", r.body);
        let msg = r.body["error"].as_str().unwrap();
        assert!(msg.starts_with(expect), "{msg}");
        assert!(msg.contains("is not UTF-8 once percent-decoded"), "{msg}");
    }
    let r = d
        .request(
            "POST",
            "/event/log?__event__=a.Ok",
            &form,
            b"caf%C3%A9=%E2%82%AC".to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    d.shutdown().await;
    let got = d.lines("archive.ndjson");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["data"], json!({"café": "€"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_without_data_have_null_data_and_a_null_data_is_unset() {
    let mut d = archive_daemon("").await;
    let ce = json!({"specversion": "1.0", "type": "a.Ce", "source": "/s", "id": "no-data"});
    let structured = [("content-type", "application/cloudevents+json")];
    let r = d
        .request("POST", "/v1/events", &structured, ce.to_string().into_bytes())
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let both = json!({"specversion": "1.0", "type": "a.Ce", "source": "/s", "id": "b64",
                      "data": null, "data_base64": "aGk="});
    let r = d
        .request("POST", "/v1/events", &structured, both.to_string().into_bytes())
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for (id, ct) in [("bin-json", "application/json"), ("bin-text", "text/plain")] {
        let r = d
            .request(
                "POST",
                "/v1/events",
                &ce_headers(id, &[("content-type", ct)]),
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    d.shutdown().await;
    let got = d.lines("archive.ndjson");
    assert_eq!(got.len(), 4, "{got:?}");
    for e in &got {
        let expect = if e["id"] == "b64" {
            json!("aGk=")
        } else {
            json!(null)
        };
        assert_eq!(e["data"], expect, "{e}");
    }
}
