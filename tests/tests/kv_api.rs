//! The coordinators' key-value API (`/v1/admin/kv/{key}`): puts, conditional puts, reads at
//! both consistencies, deletes, the cluster secret, and keys kept apart from the cluster's.

use serde_json::{json, Value};
use shoal_proto::CLUSTER_SECRET_HEADER;
use shoal_tests::process::ProcessCluster;

/// One request with the cluster secret (or `secret`): status and JSON body.
fn call(
    cluster: &ProcessCluster,
    method: &str,
    path: &str,
    body: Option<Value>,
    secret: &str,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", cluster.client_url(1)))
        .header(CLUSTER_SECRET_HEADER, secret)
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("a request");
    let mut response = agent.run(request).expect("an answer");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn puts_conditional_puts_reads_and_deletes() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    let secret = cluster.secret.clone();
    let kv = |method: &str, path: &str, body: Option<Value>| {
        call(
            &cluster,
            method,
            &format!("/v1/admin/kv/{path}"),
            body,
            &secret,
        )
    };

    let (status, put) = kv("PUT", "app/colour", Some(json!({"value": "red"})));
    assert_eq!(
        (status, put["succeeded"].clone()),
        (200, json!(true)),
        "{put}"
    );
    let (status, entry) = kv("GET", "app/colour", None);
    assert_eq!(status, 200);
    assert_eq!(entry["key"], "app/colour");
    assert_eq!(entry["value"], "red");
    assert_eq!(entry["version"], 1);
    let revision = entry["modRevision"].as_u64().expect("a revision");

    let conditional = [
        (json!({"value": "blue", "ifAbsent": true}), false),
        (json!({"value": "blue", "ifValue": "green"}), false),
        (
            json!({"value": "blue", "ifModRevision": revision + 1000}),
            false,
        ),
        (json!({"value": "blue", "ifModRevision": revision}), true),
        (json!({"value": "violet", "ifValue": "blue"}), true),
    ];
    for (body, expected) in conditional {
        let (status, outcome) = kv("PUT", "app/colour", Some(body.clone()));
        assert_eq!(status, 200, "{body}: {outcome}");
        assert_eq!(outcome["succeeded"], expected, "{body}: {outcome}");
    }
    let (_, entry) = kv("GET", "app/colour?consistency=local", None);
    assert_eq!(
        (entry["value"].clone(), entry["version"].clone()),
        (json!("violet"), json!(3))
    );

    let (status, deleted) = kv("DELETE", "app/colour", None);
    assert_eq!((status, deleted["succeeded"].clone()), (200, json!(true)));
    let (status, missing) = kv("GET", "app/colour", None);
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!("NOT_FOUND"))
    );
    let (_, again) = kv("DELETE", "app/colour", None);
    assert_eq!(again["succeeded"], false);
    let (status, _) = kv(
        "PUT",
        "app/new",
        Some(json!({"value": "x", "ifAbsent": true})),
    );
    assert_eq!(status, 200);

    // Bad requests are refused with a message.
    let (status, bad) = kv("GET", "app/new?consistency=sometimes", None);
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (400, json!("INVALID_ARGUMENT"))
    );
    let (status, _) = kv("PUT", "app/new", Some(json!({"valeu": "typo"})));
    assert!((400..500).contains(&status), "{status}");

    // Without the cluster secret nothing is read or written.
    let (status, _) = call(&cluster, "GET", "/v1/admin/kv/app/new", None, "wrong");
    assert_eq!(status, 401);
    let put = Some(json!({"value": "y"}));
    let (status, _) = call(&cluster, "PUT", "/v1/admin/kv/app/new", put, "wrong");
    assert_eq!(status, 401);

    // Operator keys never reach the cluster's own: the catalog still works after writing
    // keys named like it.
    let (status, _) = kv(
        "PUT",
        "catalog/schemas/default",
        Some(json!({"value": "junk"})),
    );
    assert_eq!(status, 200);
    let mut client = shoal_tests::trino::TrinoClient::new(cluster.client_urls(1), "kv");
    let schemas = client
        .execute("SHOW SCHEMAS")
        .expect("the catalog still reads");
    assert!(
        schemas.rows.iter().any(|row| row[0] == "default"),
        "{:?}",
        schemas.rows
    );
}
