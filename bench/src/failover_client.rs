//! A blocking Trino-protocol client that keeps going when a coordinator dies: a statement
//! whose submission fails at the transport goes to the next coordinator, and a page request
//! that fails is sent to the next coordinator with the same path, as `shoal sql` does.

use std::time::{Duration, Instant};

use shoal_proto::client::QueryResults;

/// How a statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished; this many rows.
    Finished { rows: u64 },
    /// The cluster answered with an error.
    Failed { error: String },
    /// No coordinator answered within the deadline.
    GaveUp { error: String },
}

pub struct FailoverClient {
    urls: Vec<String>,
    current: usize,
    user: String,
    agent: ureq::Agent,
    /// How long one statement may keep trying coordinators.
    pub deadline: Duration,
    /// Transport failures answered by moving to the next coordinator.
    pub switches: u64,
    /// Send each statement to the next coordinator in turn (else stay on the current one).
    pub rotate: bool,
    /// The id of the last statement submitted, and the coordinator it was sent to.
    pub last_query: Option<(String, usize)>,
}

impl FailoverClient {
    /// A client that starts on `urls[first]`.
    pub fn new(urls: Vec<String>, first: usize, user: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        FailoverClient {
            current: first % urls.len().max(1),
            urls,
            user: user.to_string(),
            agent,
            deadline: Duration::from_secs(60),
            switches: 0,
            rotate: false,
            last_query: None,
        }
    }

    /// Move to the next coordinator; after trying every one, back off a little.
    fn switch(&mut self) {
        self.current = (self.current + 1) % self.urls.len();
        self.switches += 1;
        if self.switches.is_multiple_of(self.urls.len() as u64) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `sql`; `after_page(rows so far)` is called after every answer.
    pub fn run(&mut self, sql: &str, mut after_page: impl FnMut(u64)) -> Outcome {
        let give_up = Instant::now() + self.deadline;
        if self.rotate {
            self.current = (self.current + 1) % self.urls.len();
        }
        self.last_query = None;
        let mut results = match self.submit(sql, give_up) {
            Ok(results) => results,
            Err(error) => return Outcome::GaveUp { error },
        };
        self.last_query = Some((results.id.clone(), self.current));
        let mut rows = 0u64;
        loop {
            if let Some(error) = results.error {
                return Outcome::Failed {
                    error: format!("{}: {}", error.error_name, error.message),
                };
            }
            rows += results.rows().map_or(0, |d| d.len() as u64);
            after_page(rows);
            let Some(next) = results.next_uri.take() else {
                return Outcome::Finished { rows };
            };
            let path = next.splitn(4, '/').nth(3).unwrap_or_default().to_string();
            results = match self.page(&path, give_up) {
                Ok(results) => results,
                Err(error) => return Outcome::GaveUp { error },
            };
        }
    }

    fn submit(&mut self, sql: &str, give_up: Instant) -> Result<QueryResults, String> {
        self.until_answered(give_up, |client, base| {
            client
                .agent
                .post(format!("{base}/v1/statement"))
                .header("X-Trino-User", &client.user)
                .send(sql)
        })
    }

    fn page(&mut self, path: &str, give_up: Instant) -> Result<QueryResults, String> {
        self.until_answered(give_up, |client, base| {
            client
                .agent
                .get(format!("{base}/{path}"))
                .header("X-Trino-User", &client.user)
                .call()
        })
    }

    /// Send `request` to the current coordinator, moving to the next one while it cannot be
    /// reached, until `give_up`.
    fn until_answered(
        &mut self,
        give_up: Instant,
        request: impl Fn(&Self, &str) -> Result<http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<QueryResults, String> {
        loop {
            let answer = request(self, &self.urls[self.current])
                .and_then(|mut r| r.body_mut().read_json::<QueryResults>());
            match answer {
                Ok(results) => return Ok(results),
                Err(e) if Instant::now() >= give_up => return Err(e.to_string()),
                Err(_) => self.switch(),
            }
        }
    }
}
