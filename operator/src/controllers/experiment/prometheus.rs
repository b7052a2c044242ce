//! A minimal client of Prometheus's HTTP API: instant queries (`POST /api/v1/query`), the
//! vector or scalar they return, and every failure as a precise error. Plain HTTP, as
//! in-cluster Prometheus usually is; put a proxy in front for TLS.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger answers mean a query that is not per arm; refuse rather than buffer them.
const MAX_BODY: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum PromError {
    #[error("Prometheus URL {0:?} must be http://host[:port][/prefix]")]
    BadUrl(String),
    #[error("Prometheus at {0} did not answer within {TIMEOUT:?}")]
    Timeout(String),
    #[error("Prometheus at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("Prometheus rejected the query ({kind}): {message}")]
    Query { kind: String, message: String },
    #[error("unexpected answer from Prometheus: {0}")]
    Decode(String),
}

/// One series of an instant vector (or the single value of a scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn parse_value(s: &str) -> Result<f64, PromError> {
    s.parse()
        .map_err(|_| PromError::Decode(format!("sample value {s:?} is not a number")))
}

/// Decodes the JSON body of an instant query.
pub fn decode(body: &[u8]) -> Result<Vec<Sample>, PromError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| PromError::Decode(e.to_string()))?;
    if env.status != "success" {
        return Err(PromError::Query {
            kind: env.error_type.unwrap_or_else(|| "unknown".into()),
            message: env.error.unwrap_or_default(),
        });
    }
    let data = env
        .data
        .ok_or_else(|| PromError::Decode("no data".into()))?;
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> = serde_json::from_value(data.result)
                .map_err(|e| PromError::Decode(e.to_string()))?;
            items
                .into_iter()
                .map(|i| {
                    Ok(Sample {
                        labels: i.metric,
                        value: parse_value(&i.value.1)?,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| PromError::Decode(e.to_string()))?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: parse_value(&v)?,
            }])
        }
        other => Err(PromError::Decode(format!(
            "result type {other}; an instant query must give a vector or a scalar"
        ))),
    }
}

/// Runs an instant query against `base` (e.g. `http://prometheus:9090`).
pub async fn query(base: &str, promql: &str) -> Result<Vec<Sample>, PromError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| PromError::BadUrl(base.into()))?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(PromError::BadUrl(base.into()));
    }
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let transport = |e: &dyn std::fmt::Display| PromError::Transport {
        url: base.into(),
        message: e.to_string(),
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| transport(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        tokio::spawn(conn);
        let request = hyper::Request::post(format!("{prefix}/api/v1/query"))
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(format!(
                "query={}",
                form_encode(promql)
            ))))
            .map_err(|e| transport(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| transport(&*e))?
            .to_bytes();
        Ok::<_, PromError>((status, body))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| PromError::Timeout(base.into()))??;
    // Prometheus answers 400/422 with a JSON error body: surface its message.
    if !status.is_success() {
        if let Err(e @ PromError::Query { .. }) = decode(&body) {
            return Err(e);
        }
        return Err(PromError::Http {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_scalars_and_errors_decode() {
        let v = decode(
            br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"arm":"stable"},"value":[1.5,"12"]},
            {"metric":{"arm":"canary"},"value":[1.5,"NaN"]}]}}"#,
        )
        .unwrap();
        assert_eq!(v[0].labels["arm"], "stable");
        assert_eq!(v[0].value, 12.0);
        assert!(v[1].value.is_nan());
        let s =
            decode(br#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.25"]}}"#)
                .unwrap();
        assert_eq!(s[0].value, 0.25);
        let e = decode(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("bad_data") && e.to_string().contains("parse error"));
        assert!(
            decode(br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#).is_err()
        );
        assert!(decode(b"<html>").is_err());
    }

    #[test]
    fn queries_are_form_encoded() {
        assert_eq!(
            form_encode("max by (arm) (x{salt=\"a b\"})"),
            "max+by+%28arm%29+%28x%7Bsalt%3D%22a+b%22%7D%29"
        );
    }

    #[tokio::test]
    async fn urls_other_than_plain_http_are_refused() {
        assert!(matches!(
            query("https://p:9090", "up").await,
            Err(PromError::BadUrl(_))
        ));
        assert!(matches!(
            query("http://", "up").await,
            Err(PromError::BadUrl(_))
        ));
    }
}
