//! Each normative rule of CloudEvents 1.0.2 about attributes and data, as
//! refusals that name the attribute (issue 17, item 3).

use serde_json::{json, Value};

use super::{structured, structured_err};

#[test]
fn required_attributes_and_specversion() {
    let full = json!({"specversion": "1.0", "type": "a.B", "source": "/s", "id": "1"});
    for (field, message) in [
        ("id", "missing \"id\""),
        ("source", "missing \"source\""),
        ("type", "missing \"type\""),
        ("specversion", "missing \"specversion\""),
    ] {
        let mut v = full.clone();
        v.as_object_mut().unwrap().remove(field);
        assert_eq!(structured_err(v), message);
        let mut v = full.clone();
        v[field] = Value::Null;
        assert_eq!(structured_err(v), message, "null is unset: {field}");
    }
    for field in ["id", "source", "type"] {
        let mut v = full.clone();
        v[field] = json!("");
        assert_eq!(structured_err(v), format!("\"{field}\" must not be empty"));
    }
    let mut v = full.clone();
    v["specversion"] = json!("0.3");
    assert_eq!(structured_err(v), "\"specversion\" must be \"1.0\", got \"0.3\"");
    let mut v = full.clone();
    v["specversion"] = json!(1.0);
    assert_eq!(
        structured_err(v),
        "\"specversion\" must be a string, got a number"
    );
}

#[test]
fn attribute_names_and_types() {
    let with = |k: &str, v: Value| {
        let mut e = json!({"specversion": "1.0", "type": "a.B", "source": "/s", "id": "1"});
        e[k] = v;
        e
    };
    for name in ["myExt", "my_ext", "my-ext", "ext\u{e9}"] {
        let m = structured_err(with(name, json!("x")));
        assert!(m.contains("is not a CloudEvents attribute name"), "{name}: {m}");
    }
    let e = structured(with("ext1", json!(true)));
    assert_eq!(e.meta["ext1"], true);
    assert_eq!(
        structured(with("ext2", json!(-2147483648i64))).meta["ext2"],
        -2147483648i64
    );
    for (value, why) in [
        (json!(2147483648i64), "must be a 32-bit integer"),
        (json!(1.5), "must be a 32-bit integer"),
        (
            json!({"a": 1}),
            "must be a string, boolean or integer, got an object",
        ),
        (json!([1]), "must be a string, boolean or integer, got an array"),
        (json!("a\u{1}b"), "must not contain the character"),
        (json!("a\u{85}b"), "must not contain the character"),
        (json!("a\u{fffe}b"), "must not contain the character"),
        (json!("a\u{fdd0}b"), "must not contain the character"),
    ] {
        let m = structured_err(with("ext", value.clone()));
        assert!(m.starts_with("\"ext\" ") && m.contains(why), "{value}: {m}");
    }
    let m = structured_err(with("subject", json!(5)));
    assert_eq!(m, "\"subject\" must be a string, got a number");
    assert_eq!(
        structured_err(with("subject", json!(""))),
        "\"subject\" must not be empty"
    );
}

#[test]
fn uri_time_and_media_type_attributes() {
    let with = |k: &str, v: &str| {
        let mut e = json!({"specversion": "1.0", "type": "a.B", "source": "/s", "id": "1"});
        e[k] = json!(v);
        e
    };
    for ok in [
        "https://github.com/cloudevents",
        "mailto:cncf-wg-serverless@lists.cncf.io",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "/cloudevents/spec/pull/123",
        "/sensors/tn-1234567/alerts",
        "1-555-123-4567",
        "/a%20b",
    ] {
        assert_eq!(structured(with("source", ok)).meta["ce_source"], ok);
    }
    for bad in ["/my context", "/a%2", "1ab:x", "/\u{e9}"] {
        let m = structured_err(with("source", bad));
        assert!(
            m.starts_with("\"source\" ") && m.contains("is not a URI"),
            "{bad}: {m}"
        );
    }
    assert_eq!(
        structured(with("dataschema", "https://example.com/s.json")).meta["dataschema"],
        "https://example.com/s.json"
    );
    let m = structured_err(with("dataschema", "/relative"));
    assert!(m.contains("is not an absolute URI"), "{m}");
    assert_eq!(
        structured_err(with("time", "yesterday")),
        "\"time\" must be an RFC 3339 time, got \"yesterday\""
    );
    assert_eq!(
        structured(with("time", "2018-04-05T17:31:00+02:00")).time,
        "2018-04-05T17:31:00+02:00"
    );
    for bad in ["xml", "application/", "text/plain; charset", "a b/c"] {
        let m = structured_err(with("datacontenttype", bad));
        assert!(m.starts_with("\"datacontenttype\" "), "{bad}: {m}");
    }
    let ok = structured(with("datacontenttype", "text/plain; charset=\"utf-8\""));
    assert_eq!(ok.meta["ce_datacontenttype"], "text/plain; charset=\"utf-8\"");
}

#[test]
fn data_and_data_base64() {
    let with = |pairs: Value| {
        let mut e = json!({"specversion": "1.0", "type": "a.B", "source": "/s", "id": "1"});
        for (k, v) in pairs.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    assert_eq!(
        structured_err(with(json!({"data": 1, "data_base64": "AA=="}))),
        "\"data_base64\" must not be given together with \"data\""
    );
    assert!(structured_err(with(json!({"data_base64": "not base64!"})))
        .starts_with("\"data_base64\" is not base64"));
    assert_eq!(
        structured_err(with(json!({"data_base64": 5}))),
        "\"data_base64\" must be a string, got a number"
    );
    // null is unset for both; no data at all is JSON null, not an object.
    assert_eq!(structured(with(json!({}))).data, Value::Null);
    assert_eq!(structured(with(json!({"data_base64": null}))).data, Value::Null);
    assert_eq!(structured(with(json!({"data": null}))).data, Value::Null);
    let e = structured(with(json!({"data": null, "data_base64": "AA=="})));
    assert_eq!(
        (e.data, e.meta["ce_data_base64"].clone()),
        (json!("AA=="), json!(true))
    );
    let e = structured(with(json!({"data": "x", "data_base64": null})));
    assert_eq!(e.data, json!("x"));
    // Non-JSON content types carry a string.
    let m = structured_err(with(
        json!({"datacontenttype": "application/xml", "data": {"a": 1}}),
    ));
    assert!(
        m.starts_with("\"data\" must be a string when datacontenttype"),
        "{m}"
    );
    for json_type in ["text/json", "application/vnd.example+json; charset=utf-8"] {
        let e = structured(with(json!({"datacontenttype": json_type, "data": {"a": 1}})));
        assert_eq!(e.data, json!({"a": 1}), "{json_type}");
    }
}
