//! The HTTP server against hostile or careless clients, over raw sockets where a client
//! library would hide the behaviour: idle and trickling connections are cut off by the read
//! deadlines, a `Content-Length` over the limit is refused before any body is sent, media
//! types are parsed, fields bound for the broker are bounded, and shutdown lets a request in
//! flight finish. Every refusal is a `4xx`, never a `5xx`, and the server answers afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use runner::transport::Broker;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{eventually, shipped_pipelines, simple_order, temp_sqlite, System, ADMIN_TOKEN};

/// The server's deadlines (`runner::http::ServerLimits::DEFAULT`), as the tests expect them.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a raw client saw: the bytes answered, when the first arrived, and when the server
/// closed the connection (both from the connect).
struct Seen {
    answer: String,
    answered: Option<Duration>,
    closed: Duration,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        self.answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

/// Connects, sends `head` at once, then `trickle` one byte a second until the server answers;
/// reads until the server closes the connection (panics after `give_up`).
async fn raw(addr: SocketAddr, head: &[u8], trickle: &[u8], give_up: Duration) -> Seen {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    let (mut answer, mut answered) = (Vec::new(), None);
    let mut trickle = trickle.iter();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered.get_or_insert(start.elapsed());
                    answer.extend_from_slice(&buffer[..n]);
                }
            },
            _ = tick.tick(), if answered.is_none() => {
                if let Some(byte) = trickle.next() {
                    // The server may have closed already; the read says so.
                    let _ = stream.write_all(&[*byte]).await;
                }
            }
            _ = tokio::time::sleep(give_up.saturating_sub(start.elapsed())) => {
                panic!("the server kept the connection open for {give_up:?}; answered so far: {:?}", String::from_utf8_lossy(&answer))
            }
        }
    }
    Seen { answer: String::from_utf8_lossy(&answer).into_owned(), answered, closed: start.elapsed() }
}

fn assert_about(what: &str, took: Duration, expected: Duration) {
    let (low, high) = (expected.saturating_sub(Duration::from_millis(500)), expected + Duration::from_secs(3));
    assert!(took >= low && took <= high, "{what}: took {took:?}, expected about {expected:?}");
}

/// No client holds a connection by being slow: one that sends nothing, one that sends its
/// headers a byte a second and one idle after its response are closed after the header
/// timeout; a body sent a byte a second is answered `408` after the body timeout. Meanwhile
/// and afterwards the server answers everyone else at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let (_dir, url) = temp_sqlite();
    // order-api alone: the deadlines are the server's, whatever it serves.
    let pipelines = shipped_pipelines(&url).into_iter().filter(|p| p.order_api.is_some()).collect();
    let system = System::start(pipelines).await;
    let addr = system.running.addr;
    let give_up = BODY_TIMEOUT + Duration::from_secs(10);

    let get = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let post =
        b"POST /api/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    let spaces = [b' '; 1000];
    let slow = async {
        tokio::join!(
            raw(addr, b"", b"", give_up),
            raw(addr, b"", get, give_up),
            raw(addr, get, b"", give_up),
            raw(addr, post, &spaces, give_up),
        )
    };
    // While the slow clients hang on, everyone else is served at once.
    let others = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let (status, _) = system.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1), "healthz took {:?}", started.elapsed());
    };
    let ((silent, headers, idle, body), ()) = tokio::join!(slow, others);
    println!(
        "closed: silent after {:?}, trickled headers after {:?}, idle keep-alive after {:?}; trickled body answered {:?} after {:?}",
        silent.closed,
        headers.closed,
        idle.closed,
        body.status(),
        body.answered
    );

    assert_eq!((silent.answered, silent.answer.as_str()), (None, ""), "a silent client is not answered");
    assert_about("a silent client", silent.closed, HEADER_TIMEOUT);
    assert_eq!(headers.answered, None, "a request head that never ends is not answered: {}", headers.answer);
    assert_about("headers sent a byte a second", headers.closed, HEADER_TIMEOUT);
    assert_eq!(idle.status(), Some(200), "{}", idle.answer);
    assert!(idle.answered.unwrap() < Duration::from_secs(1));
    assert_about("an idle keep-alive connection", idle.closed, HEADER_TIMEOUT);
    assert_eq!(body.status(), Some(408), "{}", body.answer);
    assert_about("a body sent a byte a second", body.answered.unwrap(), BODY_TIMEOUT);
    assert!(
        body.answer.contains("did not arrive within 30s; send the whole body without pauses"),
        "the 408 says what to do: {}",
        body.answer
    );

    let (status, _) = system.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    system.post_order(&simple_order(1)).await;
    system.stop().await;
}

async fn post_as(system: &System, content_type: &str, body: String) -> (StatusCode, Value) {
    let response = system
        .client
        .post(format!("{}/api/orders", system.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A `Content-Length` far over the limit is `413` before the body is sent (the client need
/// not send it), with or without `Expect: 100-continue`; a chunked body over the limit is
/// `413` too. Media types are parsed: any case, parameters, `+json` suffixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_media_types_are_checked_before_reading() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    let addr = system.running.addr;
    let give_up = Duration::from_secs(15);

    let head = |path: &str, extra: &str, length: u64| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
        )
    };
    for (path, extra) in [
        ("/api/orders", ""),
        ("/api/orders", "Expect: 100-continue\r\n"),
        ("/api/dlq/replay", "Authorization: Bearer local-dev-token-change-me\r\n"),
    ] {
        let seen = raw(addr, head(path, extra, 10_000_000_000).as_bytes(), b"", give_up).await;
        let answered = seen.answered.expect("an answer");
        println!("Content-Length: 10000000000 to {path} {}: {:?} after {answered:?}", extra.trim(), seen.status());
        assert_eq!(seen.status(), Some(413), "{path} {extra}: {}", seen.answer);
        assert!(answered < Duration::from_secs(1), "{path} {extra}: answered after {answered:?}");
        assert!(!seen.answer.contains("100 Continue"), "{path}: no body is asked for: {}", seen.answer);
        assert!(seen.answer.contains("-byte limit; send a smaller one"), "{}", seen.answer);
        // The unread body stays on the connection: the answer says it closes.
        assert!(seen.answer.to_ascii_lowercase().contains("connection: close"), "{}", seen.answer);
    }
    // One byte over order-api's 64 KiB is refused unsent; exactly the limit is read (and is
    // not JSON; the connection would stay open for the next request without `close`).
    let seen = raw(addr, head("/api/orders", "", 65_537).as_bytes(), b"", give_up).await;
    assert_eq!(seen.status(), Some(413), "{}", seen.answer);
    assert!(seen.answer.contains("larger than the 65536-byte limit"), "{}", seen.answer);
    let mut exact = head("/api/orders", "Connection: close\r\n", 65_536).into_bytes();
    exact.extend_from_slice(&[b' '; 65_536]);
    let seen = raw(addr, &exact, b"", give_up).await;
    assert_eq!(seen.status(), Some(400), "{}", seen.answer);

    // Chunked: no length announced, cut off once past the limit.
    let mut chunked = b"POST /api/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..7 {
        chunked.extend_from_slice(format!("{:x}\r\n", 10 * 1024).as_bytes());
        chunked.extend_from_slice(&[b' '; 10 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    let seen = raw(addr, &chunked, b"", give_up).await;
    println!("70 KiB chunked to /api/orders: {:?} after {:?}", seen.status(), seen.answered);
    assert_eq!(seen.status(), Some(413), "{}", seen.answer);
    assert!(seen.answer.contains("65536-byte limit"), "{}", seen.answer);

    // Media types.
    let order = simple_order(1).to_string();
    for content_type in
        ["Application/JSON; charset=utf-8", "application/merge-patch+json", "application/json;charset=\"UTF-8\""]
    {
        let (status, answer) = post_as(&system, content_type, order.clone()).await;
        println!("{content_type}: {status}");
        assert_eq!(status, StatusCode::ACCEPTED, "{content_type}: {answer}");
    }
    for content_type in ["text/plain", "application/jsonx", "application/json; charset=iso-8859-1", "text/json"] {
        let (status, answer) = post_as(&system, content_type, order.clone()).await;
        println!("{content_type}: {status} {answer}");
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}: {answer}");
        assert_eq!(
            answer["error"], "send the order as UTF-8 JSON with `Content-Type: application/json`",
            "{content_type}"
        );
    }

    let (status, _) = system.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    system.post_order(&simple_order(2)).await;
    system.stop().await;
}

/// Fields that end up in a broker message are bounded well below the broker's message size
/// (about 1 MB), so a client's oversized field is its mistake (`4xx` naming the field and the
/// bound) instead of a broker refusal (`503`): a chaos rule's description (one control-topic
/// record) and a dead letter's edited replay payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_bound_for_the_broker_are_bounded() {
    let (_dir, url) = temp_sqlite();
    let pipelines = shipped_pipelines(&url);
    let broker_config = pipelines.iter().find(|p| p.dlq_admin.is_some()).expect("dlq-admin is shipped").broker.clone();
    let system = System::start(pipelines).await;

    // A chaos rule: the description is bounded in characters.
    let rule = |id: &str, description: String| {
        json!({
            "id": id,
            "target": { "kind": "handler", "handler": "payment.charge" },
            "fault": { "kind": "latency", "fixed": "1ms" },
            "ttl": "10m",
            "description": description,
        })
    };
    let (status, answer) = system
        .call(Method::POST, "/api/chaos/rules", Some(ADMIN_TOKEN), Some(rule("huge", "d".repeat(1_000_000))))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "description", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(
            "`description`: 1000000 characters is longer than the longest description, 2000 characters; shorten it"
        ),
        "{answer}"
    );
    let (status, _) = system.call(Method::GET, "/api/chaos/rules/huge", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused rule is not created");
    let (status, answer) =
        system.call(Method::POST, "/api/chaos/rules", Some(ADMIN_TOKEN), Some(rule("long", "é".repeat(2_000)))).await;
    assert_eq!(status, StatusCode::CREATED, "2,000 characters (4,000 bytes) are fine: {answer}");

    // A dead letter to replay, as a consumer writes it.
    let broker = Broker::on_embedded(system.running.embedded_broker.clone().unwrap(), &broker_config);
    let order_id = uuid::Uuid::new_v4().to_string();
    let mut order = simple_order(3);
    order["orderId"] = json!(order_id);
    order["total"] = json!(1001);
    let headers: Vec<(String, Vec<u8>)> = [
        ("ce_specversion", "1.0"),
        ("ce_id", &uuid::Uuid::new_v4().to_string()),
        ("ce_type", "payment.requested"),
        ("ce_source", "orchestrator"),
        ("ce_time", "2025-01-31T12:00:00Z"),
        ("content-type", "application/json"),
        ("dlq_original_topic", "payment.requested"),
        ("dlq_original_partition", "0"),
        ("dlq_original_offset", "17"),
        ("dlq_original_timestamp", "1738324800000"),
        ("dlq_consumer_group", "payment-svc.charge"),
        ("dlq_error_kind", "rejected"),
        ("dlq_error_message", "payload is not an order"),
        ("dlq_attempts", "1"),
        ("dlq_first_failure_at", "2025-01-31T12:00:01Z"),
        ("dlq_last_failure_at", "2025-01-31T12:00:01Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    broker
        .publisher()
        .unwrap()
        .publish_raw("payment.requested.dlq", Some(order_id.as_bytes()), Some(order.to_string().as_bytes()), &headers)
        .await
        .expect("publish a dead letter");
    let id = eventually(Duration::from_secs(40), Duration::from_millis(100), async || {
        let (_, page) = system.call(Method::GET, "/api/dlq/entries", None, None).await;
        match page["entries"].as_array().and_then(|e| e.iter().find(|e| e["key"] == order_id.as_str())) {
            Some(entry) => Ok(entry["id"].as_i64().unwrap()),
            None => Err(format!("the dead letter did not become an entry: {page}")),
        }
    })
    .await;
    let replay = async |note_bytes: usize| {
        let mut payload = order.clone();
        payload["note"] = json!("n".repeat(note_bytes));
        let path = format!("/api/dlq/entries/{id}/replay");
        system.call(Method::POST, &path, Some(ADMIN_TOKEN), Some(json!({ "payload": payload }))).await
    };

    // 1.5 MB: refused before anything is claimed or sent.
    let (status, answer) = replay(1_500_000).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "payload", "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.starts_with("the edited payload is refused: 1500"), "{answer}");
    assert!(error.ends_with("bytes is over the 524288-byte limit; send a smaller payload"), "{answer}");
    let (_, entry) = system.call(Method::GET, &format!("/api/dlq/entries/{id}"), None, None).await;
    assert_eq!((entry["state"].as_str(), entry["replayCount"].as_i64()), (Some("new"), Some(0)), "{entry}");
    let (_, audit) = system.call(Method::GET, "/api/dlq/audit", None, None).await;
    let line = &audit["audit"][0];
    assert!(line["outcome"].as_str().unwrap_or_default().starts_with("refused: 1500"), "{audit}");
    assert!(line["details"]["editedPayloadBytes"].as_u64().unwrap() > 1_500_000, "the size, not the payload: {line}");

    // Just under the limit: the broker takes it.
    let (status, answer) = replay(500_000).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["replayCount"].as_i64(), &answer["edited"]), (Some(1), &json!(true)), "{answer}");

    let (status, _) = system.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    system.post_order(&simple_order(4)).await;
    system.stop().await;
}

/// Shutdown stops accepting, closes idle connections at once, and lets a request whose body
/// is still arriving finish with its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let (_dir, url) = temp_sqlite();
    let system = System::start(shipped_pipelines(&url)).await;
    let addr = system.running.addr;
    system.post_order(&simple_order(1)).await;

    let order = simple_order(2).to_string();
    let (first, rest) = order.as_bytes().split_at(order.len() / 2);
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        order.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let shutdown = system.running.shutdown.clone();
    let stopping = tokio::spawn(system.stop());
    shutdown.cancelled().await;
    // The idle connection is closed at once, and no new one is accepted.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection is closed at once: {closed:?}");
    eventually(Duration::from_secs(2), Duration::from_millis(20), async || match TcpStream::connect(addr).await {
        Err(_) => Ok(()),
        Ok(_) => Err("a new connection is still accepted".to_string()),
    })
    .await;

    // The request in flight gets its answer.
    in_flight.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_end(&mut answer))
        .await
        .expect("the answer comes before the grace period ends")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    tokio::time::timeout(Duration::from_secs(20), stopping).await.expect("the system stops").unwrap();
}
