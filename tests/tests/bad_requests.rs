//! Malformed, oversized and truncated requests to every HTTP endpoint of a coordinator and a
//! worker: each gets a 4xx answer with a message, and the cluster keeps serving.

use shoal_proto::CLUSTER_SECRET_HEADER;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

/// One request: method, URL, whether it carries the secret, body.
struct Probe {
    method: &'static str,
    url: String,
    secret: bool,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
}

fn probe(method: &'static str, url: String, secret: bool, body: Vec<u8>) -> Probe {
    Probe {
        method,
        url,
        secret,
        body,
        headers: Vec::new(),
    }
}

#[test]
fn every_endpoint_answers_bad_requests_with_a_4xx_and_the_cluster_keeps_serving() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    cluster.start_workers_seen(&["w1"], 1);
    let client_url = cluster.client_url(1);
    let internal_url = cluster.coordinators[&1].internal_url.clone();
    let mut client = TrinoClient::new(vec![client_url.clone()], "bad");
    let worker_url = cluster.worker_url("w1");

    let truncated = vec![1u8, 2, 3];
    let huge_length = {
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes
    };
    let mut probes = vec![
        probe(
            "POST",
            format!("{client_url}/v1/statement"),
            false,
            vec![0xff, 0xfe, 0x00],
        ),
        probe(
            "POST",
            format!("{client_url}/v1/statement"),
            false,
            b"   ;  ".to_vec(),
        ),
        probe(
            "GET",
            format!("{client_url}/v1/statement/executing/q/slug/not-a-number"),
            false,
            vec![],
        ),
        probe(
            "GET",
            format!("{client_url}/v1/statement/executing/no_such_query/slug/0"),
            false,
            vec![],
        ),
        probe(
            "DELETE",
            format!("{client_url}/v1/statement/executing/no_such_query/slug/0"),
            false,
            vec![],
        ),
        probe(
            "GET",
            format!("{client_url}/v1/query/no_such_query"),
            false,
            vec![],
        ),
        probe(
            "POST",
            format!("{client_url}/v1/admin/state"),
            false,
            b"{}".to_vec(),
        ),
        probe(
            "POST",
            format!("{client_url}/v1/admin/state"),
            true,
            b"{not json".to_vec(),
        ),
        probe(
            "POST",
            format!("{client_url}/v1/admin/leader"),
            true,
            b"[1,2".to_vec(),
        ),
    ];
    let mut bad_session = probe(
        "POST",
        format!("{client_url}/v1/statement"),
        false,
        b"SELECT 1".to_vec(),
    );
    bad_session.headers = vec![("X-Trino-Session", "no-equals-sign")];
    probes.push(bad_session);
    for path in [
        "/raft/v1/append",
        "/raft/v1/vote",
        "/raft/v1/snapshot",
        "/store/v1/write",
        "/store/v1/read-index",
        "/store/v1/admin",
        "/store/v1/status",
        "/store/v1/election",
        "/cluster/v1/join",
        "/query/v1/page",
        "/query/v1/cancel",
        "/query/v1/progress",
    ] {
        for body in [&truncated, &huge_length] {
            probes.push(probe(
                "POST",
                format!("{internal_url}{path}"),
                true,
                body.clone(),
            ));
        }
        probes.push(probe(
            "POST",
            format!("{internal_url}{path}"),
            false,
            truncated.clone(),
        ));
    }
    for path in ["/query/v1/drive", "/query/v1/page", "/query/v1/cancel"] {
        probes.push(probe(
            "POST",
            format!("{worker_url}{path}"),
            true,
            truncated.clone(),
        ));
        probes.push(probe(
            "POST",
            format!("{worker_url}{path}"),
            true,
            huge_length.clone(),
        ));
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut wrong = Vec::new();
    for probe in &probes {
        let mut request = http::Request::builder()
            .method(probe.method)
            .uri(&probe.url);
        if probe.secret {
            request = request.header(CLUSTER_SECRET_HEADER, &cluster.secret);
        }
        for (name, value) in &probe.headers {
            request = request.header(*name, *value);
        }
        let request = request.body(probe.body.clone()).expect("a request");
        match agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                if !(400..500).contains(&status) {
                    wrong.push(format!("{} {}: {status} {text}", probe.method, probe.url));
                } else if text.trim().is_empty() && status != 413 && status != 404 {
                    wrong.push(format!(
                        "{} {}: {status} without a message",
                        probe.method, probe.url
                    ));
                }
            }
            Err(e) => wrong.push(format!("{} {}: {e}", probe.method, probe.url)),
        }
    }
    assert!(
        wrong.is_empty(),
        "answers that are not a 4xx with a message:\n{}",
        wrong.join("\n")
    );

    // An oversized statement, announced by its length and cut off: refused before it is read.
    let answer = oversized_and_truncated(&client_url);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let result = client
        .execute("SELECT 42")
        .expect("the coordinator keeps serving");
    assert_eq!(result.rows, vec![vec![serde_json::Value::from(42)]]);
}

/// Announce a 40 MiB statement, send a few bytes of it, and read the answer.
fn oversized_and_truncated(base: &str) -> String {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /v1/statement HTTP/1.1\r\nHost: {address}\r\nX-Trino-User: bad\r\n\
         Content-Length: {}\r\n\r\nSELECT ",
        40 << 20
    );
    stream.write_all(head.as_bytes()).expect("send");
    let mut answer = vec![0u8; 512];
    let read = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..read]).to_string()
}
