//! Cluster-wide admission: `query.max-concurrent` and `query.max-queued` hold across all
//! coordinators together.

use std::time::Duration;

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{get_json, post_statement, query_info};
use shoal_tests::{holds_for, wait_for};

const LONG: &str = "SELECT value FROM generate_series(1, 1000000000) AS t(value)";

fn state(url: &str, id: &str, user: &str) -> String {
    query_info(url, id, user)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Start a long query on `url` and read its first page, so it holds its slot.
fn start_long(url: &str) -> (String, String) {
    let first = post_statement(url, "admission", LONG);
    let id = first["id"].as_str().expect("id").to_string();
    let mut next = first["nextUri"].as_str().expect("nextUri").to_string();
    loop {
        let page = get_json(&next);
        if page.get("data").is_some() {
            return (id, next);
        }
        next = page["nextUri"].as_str().expect("still running").to_string();
    }
}

#[test]
fn max_concurrent_holds_across_coordinators() {
    let mut cluster = ProcessCluster::new(3);
    cluster.extra_config = "query.max-concurrent=2\nquery.max-queued=1\n".into();
    cluster.start_joined(3);
    let urls = cluster.client_urls(3);

    let (first, first_next) = start_long(&urls[0]);
    let (_second, _) = start_long(&urls[1]);
    let third = post_statement(&urls[2], "admission", "SELECT 3");
    let third_id = third["id"].as_str().expect("id").to_string();
    holds_for(
        Duration::from_secs(2),
        "a third query never runs while two do",
        || state(&urls[0], &third_id, "admission") == "QUEUED",
    );
    let fourth = post_statement(&urls[0], "admission", "SELECT 4");
    let mut next = fourth["nextUri"].as_str().map(str::to_string);
    let mut error = fourth.get("error").cloned();
    while let (Some(uri), None) = (next.clone(), error.clone()) {
        let page = get_json(&uri);
        error = page.get("error").cloned();
        next = page["nextUri"].as_str().map(str::to_string);
    }
    let error = error.expect("the queue (max 1) is full");
    assert_eq!(error["errorName"], "QUERY_QUEUE_FULL", "{error}");

    // Cancelling one running query lets the queued one run.
    let status = ureq::delete(&first_next)
        .header("X-Trino-User", "admission")
        .call()
        .expect("cancel")
        .status();
    assert_eq!(status.as_u16(), 204);
    let done = wait_for(Duration::from_secs(20), "the queued query finishes", || {
        let state = state(&urls[1], &third_id, "admission");
        (state == "FINISHED").then_some(state)
    });
    assert_eq!(done, "FINISHED");
    assert_eq!(state(&urls[2], &first, "admission"), "FAILED");
}

#[test]
fn slots_of_a_dead_coordinator_are_released() {
    let mut cluster = ProcessCluster::new(3);
    cluster.extra_config = "query.max-concurrent=1\n".into();
    cluster.start_joined(3);
    let urls = cluster.client_urls(3);
    let (holder, _) = start_long(&urls[2]);
    assert_eq!(state(&urls[0], &holder, "admission"), "RUNNING");
    cluster.kill(3);
    let next = post_statement(&urls[0], "admission", "SELECT 42");
    let id = next["id"].as_str().expect("id").to_string();
    let mut uri = next["nextUri"].as_str().map(str::to_string);
    while let Some(current) = uri {
        let page = get_json(&current);
        assert!(page.get("error").is_none(), "{page}");
        uri = page["nextUri"].as_str().map(str::to_string);
    }
    wait_for(
        Duration::from_secs(20),
        "the query admitted after the dead coordinator's slot was released finishes",
        || (state(&urls[1], &id, "admission") == "FINISHED").then_some(()),
    );
}

#[test]
fn only_the_owner_or_an_admin_cancels_a_query() {
    let mut cluster = ProcessCluster::new(1);
    cluster.extra_config = "query.admin-users=root, ops\n".into();
    cluster.start_joined(1);
    let url = cluster.client_url(1);
    let first = post_statement(&url, "alice", LONG);
    let id = first["id"].as_str().expect("id").to_string();
    let next = first["nextUri"].as_str().expect("nextUri").to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = |user: Option<&str>| {
        let mut request = agent.delete(&next);
        if let Some(user) = user {
            request = request.header("X-Trino-User", user);
        }
        request.call().expect("an answer").status().as_u16()
    };
    assert_eq!(status(Some("mallory")), 403);
    assert_eq!(status(None), 403);
    assert_ne!(
        state(&url, &id, "alice"),
        "FAILED",
        "a refused cancel leaves the query running"
    );
    assert_eq!(status(Some("ops")), 204);
    let error = wait_for(Duration::from_secs(30), "the query is cancelled", || {
        let info = query_info(&url, &id, "alice");
        (info["state"] == "FAILED").then(|| info["errorCode"]["name"].clone())
    });
    assert_eq!(error, "USER_CANCELED");
}

/// Read query `first` (a statement's first answer) to its end; the page with an error, if any.
fn read_to_end(first: &serde_json::Value) -> Option<serde_json::Value> {
    let mut uri = first["nextUri"].as_str().map(str::to_string);
    while let Some(current) = uri {
        let page = get_json(&current);
        if page.get("error").is_some() {
            return Some(page);
        }
        uri = page["nextUri"].as_str().map(str::to_string);
    }
    None
}

#[test]
fn a_coordinator_restarted_at_once_holds_no_slot_and_its_queries_are_settled() {
    let mut cluster = ProcessCluster::new(3);
    cluster.extra_config = "query.max-concurrent=1\nquery.max-queued=4\n".into();
    cluster.start_joined(3);
    let urls = cluster.client_urls(3);
    // Coordinator 3 drives a long query (no workers here) and has one waiting behind it.
    let (running, _) = start_long(&urls[2]);
    let waiting = post_statement(&urls[2], "admission", "SELECT 42");
    let waiting = waiting["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(20), "the second query waits", || {
        (state(&urls[0], &waiting, "admission") == "QUEUED").then_some(())
    });

    // kill -9 and started again at once, same id and data: the others may never see it gone.
    cluster.kill(3);
    cluster.start(3);
    wait_for(Duration::from_secs(60), "coordinator 3 rejoined", || {
        cluster.joined_state(3)
    });

    // Its earlier start's slot and queue entry hold nothing: a new query runs at once.
    let fresh = post_statement(&urls[0], "admission", "SELECT 7");
    let failed = read_to_end(&fresh);
    assert!(failed.is_none(), "{failed:?}");

    // And its queries do not stay RUNNING or QUEUED: the one that delivered rows failed (its
    // driver is gone), the one that never ran was taken over and ran.
    let fresh = fresh["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(30), "the new query finished", || {
        (state(&urls[1], &fresh, "admission") == "FINISHED").then_some(())
    });
    let error = wait_for(Duration::from_secs(30), "the long query is settled", || {
        let info = query_info(&urls[0], &running, "admission");
        (info["state"] == "FAILED").then(|| info["errorCode"]["name"].clone())
    });
    assert_eq!(error, "REMOTE_HOST_GONE");
    wait_for(Duration::from_secs(30), "the waiting query ran", || {
        (state(&urls[0], &waiting, "admission") == "FINISHED").then_some(())
    });
}
