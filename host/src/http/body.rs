//! Request bodies (issue 17, items 4 and 7): received whole within
//! `[server] body_timeout` and `max_body`, then decoded according to
//! `Content-Encoding`, with `max_body` applied again to the decoded size.
//!
//! Decoded encodings: `gzip` (and `x-gzip`; multi-member streams too),
//! `deflate` (zlib-wrapped as RFC 9110 says; a raw DEFLATE stream, which some
//! clients send under that name, is accepted as well), `zstd` (window at most
//! 8 MiB, as RFC 8878 asks of HTTP decoders) and `identity`. These cover what
//! shippers send: Fluent Bit's `compress gzip`, Vector's http
//! sink `compression = "gzip" | "zlib" | "zstd"`. Anything else (`br`,
//! `snappy`, `compress`, ...) is refused with 415 naming it, before the body
//! is read: undecoded bytes are never routed.

use std::io::Read;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{Request, StatusCode};

use super::ingest::IngestError;
use super::AppState;
use crate::telemetry::Stats;

/// Reads the whole body and undoes its `Content-Encoding`: 415 for a coding
/// not decoded (before reading), 413 past `max_body` (while reading, for
/// chunked bodies too, and again on the decoded size), 408 when the body
/// takes longer than `body_timeout` to arrive (issue 17, items 4 and 7).
pub(crate) async fn read_body(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), IngestError> {
    let too_large = || IngestError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("body is larger than max_body ({} bytes)", state.max_body),
    };
    let (parts, body) = req.into_parts();
    let codings = encodings(&parts.headers)?;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body) {
        return Err(too_large());
    }
    let limit = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    let read = tokio::time::timeout(state.body_timeout, Limited::new(body, limit).collect());
    let raw = match read.await {
        Err(_) => {
            Stats::add(&state.stats.body_timeouts, 1);
            tracing::debug!(timeout = ?state.body_timeout, "request body too slow; answering 408");
            return Err(IngestError {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the body did not arrive within body_timeout ({})",
                    humantime::format_duration(state.body_timeout)
                ),
            });
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(IngestError {
                status: StatusCode::BAD_REQUEST,
                message: format!("cannot read the body: {e}"),
            })
        }
    };
    if codings.is_empty() {
        return Ok((parts, raw));
    }
    let max_body = state.max_body;
    let decoded = tokio::task::spawn_blocking(move || decode(&codings, raw, max_body))
        .await
        .map_err(|e| IngestError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("decoding the body failed: {e}"),
        })??;
    Ok((parts, decoded))
}

/// The `Accept-Encoding` value sent with a 415 (RFC 7694): what is decoded.
pub const ACCEPTED_ENCODINGS: &str = "gzip, deflate, zstd, identity";

/// Largest zstd window accepted, as a power of two (8 MiB, RFC 8878 §3.1.1.1.2).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// One content coding of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Deflate,
    Zstd,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Zstd => "zstd",
        }
    }
}

/// The codings of `Content-Encoding` in the order they were applied
/// (`identity` dropped; several headers or a comma list both allowed; empty
/// elements between codings are skipped).
/// Errors: 415 naming the first coding not decoded, or for a header with no
/// coding at all (`Content-Encoding:` or `,`); 400 for a header that is not
/// visible ASCII.
pub fn encodings(headers: &HeaderMap) -> Result<Vec<Encoding>, IngestError> {
    let mut out = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let value = value.to_str().map_err(|_| IngestError {
            status: StatusCode::BAD_REQUEST,
            message: "Content-Encoding: not visible ASCII".into(),
        })?;
        let mut tokens = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .peekable();
        if tokens.peek().is_none() {
            // An empty value is not identity: the body might be encoded
            // anyway, and undecoded bytes must never be routed.
            return Err(IngestError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!(
                    "empty Content-Encoding ({value:?}): name the coding, one of {ACCEPTED_ENCODINGS}, \
                     or leave the header out"
                ),
            });
        }
        for token in tokens {
            let coding = match token.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Encoding::Gzip,
                "deflate" => Encoding::Deflate,
                "zstd" => Encoding::Zstd,
                _ => {
                    return Err(IngestError {
                        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        message: format!(
                            "Content-Encoding {token:?} is not supported: send the body as is \
                             or encoded with one of {ACCEPTED_ENCODINGS}"
                        ),
                    })
                }
            };
            out.push(coding);
        }
    }
    Ok(out)
}

/// Undoes `codings` (last applied first). The result is at most `max_body`
/// bytes: a larger one (a decompression bomb included) is a 413, found while
/// decoding, without holding more than `max_body + 1` bytes. A stream that
/// does not decode is a 400 naming the coding.
pub fn decode(codings: &[Encoding], body: Bytes, max_body: u64) -> Result<Bytes, IngestError> {
    let mut body = body;
    for &coding in codings.iter().rev() {
        body = decode_one(coding, &body, max_body)?;
    }
    Ok(body)
}

fn decode_one(coding: Encoding, input: &[u8], max_body: u64) -> Result<Bytes, IngestError> {
    let broken = |e: std::io::Error| IngestError {
        status: StatusCode::BAD_REQUEST,
        message: format!(
            "Content-Encoding {}: the body does not decode: {e}",
            coding.name()
        ),
    };
    // The decoders read from `rest`, which keeps what they did not consume:
    // bytes after the last stream or frame are refused for every coding.
    let mut rest = input;
    let mut reader: Box<dyn Read + '_> = match coding {
        Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut rest)),
        Encoding::Deflate if is_zlib(input) => Box::new(flate2::bufread::ZlibDecoder::new(&mut rest)),
        Encoding::Deflate => Box::new(flate2::bufread::DeflateDecoder::new(&mut rest)),
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(&mut rest).map_err(broken)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(broken)?;
            Box::new(d)
        }
    };
    let mut out = Vec::new();
    (&mut reader)
        .take(max_body.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(broken)?;
    let too_large = out.len() as u64 > max_body;
    drop(reader);
    if !too_large && !rest.is_empty() {
        return Err(broken(std::io::Error::other(format!(
            "{} bytes follow the end of the encoded data",
            rest.len()
        ))));
    }
    if too_large {
        return Err(IngestError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the body decoded from Content-Encoding {} is larger than max_body ({max_body} bytes)",
                coding.name()
            ),
        });
    }
    Ok(Bytes::from(out))
}

/// A zlib header (RFC 1950): method 8, and the check bits make CMF·256+FLG a
/// multiple of 31.
fn is_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(CONTENT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn every_decoded_coding_round_trips() {
        let data = b"__event__=a.B&k=v".repeat(50);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&data).unwrap();
        let zlib = z.finish().unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        r.write_all(&data).unwrap();
        let raw = r.finish().unwrap();
        let zst = zstd::stream::encode_all(&data[..], 3).unwrap();
        for (header, body) in [
            ("gzip", gzip(&data)),
            ("x-gzip", gzip(&data)),
            ("deflate", zlib),
            ("deflate", raw),
            ("zstd", zst),
            ("identity", data.clone()),
            ("GZIP", gzip(&data)),
        ] {
            let codings = encodings(&with(header)).unwrap();
            let out = decode(&codings, Bytes::from(body), 1 << 20).unwrap();
            assert_eq!(&out[..], &data[..], "{header}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_last_first() {
        let inner = gzip(b"{\"name\":\"a.B\"}");
        let outer = zstd::stream::encode_all(&inner[..], 1).unwrap();
        let mut h = with("gzip");
        h.append(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        let codings = encodings(&h).unwrap();
        assert_eq!(codings, [Encoding::Gzip, Encoding::Zstd]);
        assert_eq!(
            &decode(&codings, outer.into(), 100).unwrap()[..],
            b"{\"name\":\"a.B\"}"
        );
        assert_eq!(encodings(&with("gzip, identity")).unwrap(), [Encoding::Gzip]);
    }

    #[test]
    fn unknown_codings_are_415_naming_them() {
        for name in ["br", "snappy", "compress", "gzip, lz4"] {
            let e = encodings(&with(name)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}");
            let last = name.rsplit(", ").next().unwrap();
            assert!(
                e.message.contains(&format!("{last:?} is not supported")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn an_empty_content_encoding_is_415_and_empty_elements_between_codings_are_skipped() {
        for value in ["", " ", ",", " , ,"] {
            let e = encodings(&with(value)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{value:?}");
            assert!(e.message.starts_with("empty Content-Encoding"), "{}", e.message);
        }
        // An empty header next to a real one is still refused.
        let mut h = with("gzip");
        h.append(CONTENT_ENCODING, HeaderValue::from_static(""));
        assert_eq!(
            encodings(&h).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(encodings(&with("gzip,,")).unwrap(), [Encoding::Gzip]);
        assert_eq!(encodings(&with(", gzip")).unwrap(), [Encoding::Gzip]);
    }

    #[test]
    fn bytes_after_the_encoded_data_are_400_for_every_coding() {
        let data = b"{\"name\":\"a.B\"}";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data).unwrap();
        let zlib = z.finish().unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        r.write_all(data).unwrap();
        let raw = r.finish().unwrap();
        let zst = zstd::stream::encode_all(&data[..], 3).unwrap();
        for (coding, encoded) in [
            (Encoding::Gzip, gzip(data)),
            (Encoding::Deflate, zlib),
            (Encoding::Deflate, raw),
            (Encoding::Zstd, zst),
        ] {
            let whole = decode(&[coding], encoded.clone().into(), 1 << 20).unwrap();
            assert_eq!(&whole[..], data, "{coding:?}");
            for tail in [&b"x"[..], b"garbage after", b"\0\0\0\0"] {
                let mut body = encoded.clone();
                body.extend_from_slice(tail);
                let e = decode(&[coding], body.into(), 1 << 20).unwrap_err();
                assert_eq!(e.status, StatusCode::BAD_REQUEST, "{coding:?} + {tail:?}");
                assert!(
                    e.message.starts_with(&format!(
                        "Content-Encoding {}: the body does not decode",
                        coding.name()
                    )),
                    "{}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn a_bomb_is_413_and_garbage_is_400() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 20_000);
        let e = decode(&[Encoding::Gzip], bomb.into(), 1 << 20).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("max_body (1048576 bytes)"), "{}", e.message);
        let zbomb = zstd::stream::encode_all(&vec![7u8; 10 << 20][..], 3).unwrap();
        let e = decode(&[Encoding::Zstd], zbomb.into(), 1 << 20).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        for coding in [Encoding::Gzip, Encoding::Deflate, Encoding::Zstd] {
            let e = decode(&[coding], Bytes::from_static(b"__event__=a.B"), 1 << 20).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{coding:?}");
            assert!(
                e.message
                    .starts_with(&format!("Content-Encoding {}: ", coding.name())),
                "{}",
                e.message
            );
        }
    }
}
