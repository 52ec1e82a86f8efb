//! HTTP to the slotgate admin API, with failover between nodes and retries.
//!
//! Contract: one `reqwest::Client` serves every call. A call tries the `--cluster` URLs in
//! order: a connection error or timeout moves on to the next URL; a 503 ("no leader yet")
//! also moves on. When a pass over all URLs ends without an answer: if no node has said 503
//! during this call, it fails at once ("cannot reach any slotgate node"); otherwise (a leader
//! election is under way) the pass is repeated after a backoff (100 ms doubling to 1 s) until
//! the total timeout runs out, then it fails with "no leader yet". The request body is
//! serialized once, so a retried write carries the same `request_id` (the server applies it
//! once). Any other answer ends the call: 2xx is returned as a [`Reply`], every other status
//! becomes a one-sentence error (the server's `ApiError` text when it sent one).

use anyhow::{anyhow, bail, Result};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slotgate_shared::api::ApiError;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A 2xx answer: the raw JSON body and where it came from.
#[derive(Debug)]
pub struct Reply {
    pub url: String,
    pub body: String,
}

impl Reply {
    /// The body as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|e| {
            anyhow!("{} answered with JSON this slotctl does not understand ({e}); use a slotctl of the same version as the nodes", self.url)
        })
    }
}

pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    token: Option<String>,
    timeout: Duration,
}

/// The outcome of one request to one node.
enum Attempt {
    Answer { url: String, status: StatusCode, body: String },
    Unreachable { cause: String },
    /// 503, with the server's error text when it sent one.
    NoLeader { detail: Option<String> },
}

impl Client {
    /// `cluster` is the raw `--cluster` value; `timeout` is the total time a call may take.
    pub fn new(cluster: &str, token: Option<String>, timeout: Duration, tls: Option<&TlsFiles>) -> Result<Client> {
        let urls = normalise_urls(cluster, tls.is_some())?;
        let mut b = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT.min(timeout)).timeout(timeout);
        if let Some(t) = tls {
            let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| anyhow!("cannot read {} ({e})", p.display()));
            let ca = reqwest::Certificate::from_pem(&read(&t.ca)?).map_err(|e| anyhow!("--ca {}: {e}", t.ca.display()))?;
            b = b.use_rustls_tls().tls_built_in_root_certs(false).add_root_certificate(ca);
            match (&t.cert, &t.key) {
                (Some(cert), Some(key)) => {
                    let mut pem = read(cert)?;
                    pem.push(b'\n');
                    pem.extend(read(key)?);
                    b = b.identity(reqwest::Identity::from_pem(&pem).map_err(|e| anyhow!("--cert/--key: {e}"))?);
                }
                (None, None) => {}
                _ => bail!("--cert and --key go together (the client certificate for nodes with admin_tls.require_client_cert)"),
            }
        }
        let http = b.build().map_err(|e| anyhow!("cannot start the HTTP client ({e})"))?;
        let token = token.filter(|t| !t.is_empty());
        Ok(Client { http, urls, token, timeout })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.call(Method::GET, path, None, false).await?.ok_or_else(|| anyhow!("{path} was not found"))
    }

    /// Like [`Client::get`], but a 404 that carries an `ApiError` (the resource does not exist
    /// yet) is `None`.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Reply>> {
        self.call(Method::GET, path, None, true).await
    }

    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Reply> {
        let body = serde_json::to_vec(body)?;
        self.call(Method::POST, path, Some(body), false).await?.ok_or_else(|| anyhow!("{path} was not found"))
    }

    pub async fn post_empty(&self, path: &str) -> Result<Reply> {
        self.call(Method::POST, path, None, false).await?.ok_or_else(|| anyhow!("{path} was not found"))
    }

    pub async fn delete(&self, path: &str) -> Result<Reply> {
        self.call(Method::DELETE, path, None, false).await?.ok_or_else(|| anyhow!("{path} was not found"))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>, missing_ok: bool) -> Result<Option<Reply>> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut ever_no_leader = false;
        let mut detail: Option<String> = None;
        let mut last_cause: Option<String> = None;
        loop {
            let mut pass_no_leader = false;
            let mut pass_unreachable = false;
            for base in &self.urls {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                match self.attempt(base, &method, path, body.as_deref(), remaining).await {
                    Attempt::Answer { url, status, body } => return interpret(url, status, body, missing_ok),
                    Attempt::Unreachable { cause } => {
                        pass_unreachable = true;
                        last_cause = Some(cause);
                    }
                    Attempt::NoLeader { detail: d } => {
                        pass_no_leader = true;
                        ever_no_leader = true;
                        detail = d.or(detail);
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Unreachable nodes alone fail at once; once a node said "no leader yet", a
            // failover is under way and every node is retried until the deadline.
            if !ever_no_leader || remaining.is_zero() {
                if pass_no_leader || (ever_no_leader && !pass_unreachable) {
                    let detail = detail.map(|d| format!(" (last answer: {d})")).unwrap_or_default();
                    bail!(
                        "the meta group has no leader yet (election in progress or no quorum); retry in a few seconds or check `slotctl status` on each node{detail}"
                    );
                }
                bail!(
                    "cannot reach any slotgate node at {} ({}); check --cluster and that the nodes are running",
                    self.urls.join(", "),
                    last_cause.as_deref().unwrap_or("timed out")
                );
            }
            tokio::time::sleep(backoff.min(remaining)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&self, base: &str, method: &Method, path: &str, body: Option<&[u8]>, remaining: Duration) -> Attempt {
        let url = join(base, path);
        let mut req = self.http.request(method.clone(), &url).timeout(remaining);
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body.to_vec());
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return Attempt::Unreachable { cause: format!("{base}: {}", cause(&e)) },
        };
        let status = resp.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let text = resp.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<ApiError>(&text).ok().map(|e| format!("{url}: {}", e.error.trim()));
            return Attempt::NoLeader { detail };
        }
        match resp.text().await {
            Ok(body) => Attempt::Answer { url, status, body },
            Err(e) => Attempt::Unreachable { cause: format!("{base}: {}", cause(&e)) },
        }
    }
}

/// Maps a final answer to the caller's result; see the module contract.
fn interpret(url: String, status: StatusCode, body: String, missing_ok: bool) -> Result<Option<Reply>> {
    if status.is_success() {
        return Ok(Some(Reply { url, body }));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        bail!("the node refused the admin token; pass --token or set SLOTGATE_ADMIN_TOKEN");
    }
    let api_error = serde_json::from_str::<ApiError>(&body).ok();
    match (status, api_error) {
        (StatusCode::NOT_FOUND, Some(_)) if missing_ok => Ok(None),
        (_, Some(e)) => bail!("{}", e.error.trim()),
        (StatusCode::NOT_FOUND, None) => bail!(
            "{url} does not exist (HTTP 404); check that --cluster points at the admin port of a slotgate node that runs the meta group"
        ),
        (_, None) => {
            let text = body.lines().next().unwrap_or("").trim();
            let text: String = text.chars().take(200).collect();
            if text.is_empty() {
                bail!("{url} answered HTTP {status}; check the node's log");
            }
            bail!("{url} answered HTTP {status}: {text}");
        }
    }
}

/// The innermost cause of a request error, which names the real problem
/// ("Connection refused (os error 111)").
fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn join(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

/// TLS towards the admin ports: the CA of the nodes' certificates, and a client certificate
/// for nodes that require one.
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// `--cluster` as base URLs: comma-separated, `host:port` means `http://host:port` (or
/// `https://` with `tls`), trailing slashes dropped, order kept.
pub fn normalise_urls(cluster: &str, tls: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let default = if tls { "https" } else { "http" };
    for part in cluster.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let with_scheme = if part.contains("://") { part.to_string() } else { format!("{default}://{part}") };
        let url = Url::parse(&with_scheme).map_err(|e| anyhow!("--cluster entry {part:?} is not a URL or host:port ({e})"))?;
        match url.scheme() {
            "http" => {}
            "https" if tls => {}
            "https" => bail!("--cluster entry {part:?} uses https://: give --ca with the CA that signed the nodes' certificates"),
            other => bail!("--cluster entry {part:?} uses {other}://; write http(s)://host:port or host:port"),
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("--cluster entry {part:?} has no host; write it like 10.0.0.1:9033");
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("--cluster entry {part:?} has a query or fragment; write it like http://10.0.0.1:9033");
        }
        out.push(url.as_str().trim_end_matches('/').to_string());
    }
    if out.is_empty() {
        bail!("--cluster is empty; give one or more admin URLs like http://127.0.0.1:9033");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(text: &str) -> Vec<String> {
        normalise_urls(text, false).unwrap()
    }

    #[test]
    fn normalises_urls() {
        assert_eq!(urls("http://127.0.0.1:9033"), vec!["http://127.0.0.1:9033"]);
        assert_eq!(
            urls("10.0.0.1:9033, http://node-b:9034/ ,node-c"),
            vec!["http://10.0.0.1:9033", "http://node-b:9034", "http://node-c"]
        );
        assert_eq!(urls("HTTP://GW:80/slotgate/"), vec!["http://gw/slotgate"]);
        assert_eq!(urls("[::1]:9033"), vec!["http://[::1]:9033"]);
        assert_eq!(join(&urls("h:1")[0], "/topology"), "http://h:1/topology");
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in ["", " , ", "https://h:9033", "ftp://h", "http://", "h:notaport", "h:9033?x=1"] {
            assert!(normalise_urls(bad, false).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(normalise_urls("h:1,https://g:2", true).unwrap(), vec!["https://h:1", "https://g:2"]);
    }

    #[test]
    fn maps_statuses() {
        let ok = interpret("u".into(), StatusCode::OK, "{}".into(), false).unwrap().unwrap();
        assert_eq!(ok.body, "{}");
        let missing = interpret("u".into(), StatusCode::NOT_FOUND, r#"{"error":"no topology"}"#.into(), true).unwrap();
        assert!(missing.is_none());
        let e = interpret("u".into(), StatusCode::CONFLICT, r#"{"error":"unknown shard \"s9\"."}"#.into(), false).unwrap_err();
        assert_eq!(e.to_string(), "unknown shard \"s9\".");
        let e = interpret("u".into(), StatusCode::UNAUTHORIZED, "missing token\n".into(), false).unwrap_err();
        assert_eq!(e.to_string(), "the node refused the admin token; pass --token or set SLOTGATE_ADMIN_TOKEN");
        let e = interpret("http://h/x".into(), StatusCode::NOT_FOUND, "".into(), true).unwrap_err();
        assert!(e.to_string().starts_with("http://h/x does not exist (HTTP 404)"), "{e}");
        let e = interpret("http://h/x".into(), StatusCode::INTERNAL_SERVER_ERROR, "boom\nmore".into(), false).unwrap_err();
        assert_eq!(e.to_string(), "http://h/x answered HTTP 500 Internal Server Error: boom");
    }

    /// A fake node: answers each connection with the next `(status, body)` and records the
    /// requests it got (head and body).
    async fn fake_node(answers: Vec<(u16, &'static str)>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                            .unwrap_or(0);
                        if rest.len() >= len || n == 0 {
                            seen.push(text);
                            break;
                        }
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    async fn dead_addr() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn retries_past_dead_nodes_and_no_leader_with_the_same_body() {
        let dead = dead_addr().await;
        let (live, task) = fake_node(vec![
            (503, r#"{"error":"no leader yet"}"#),
            (503, r#"{"error":"no leader yet"}"#),
            (200, r#"{"request_id":"r1","version":7,"retried":true}"#),
        ])
        .await;
        let client = Client::new(&format!("{dead},{live}"), Some("sekrit".into()), Duration::from_secs(10), None).unwrap();
        let body = serde_json::json!({"request_id": "r1", "command": {"kind": "remove_shard", "shard": "s9"}});
        let reply = client.post("/commands", &body).await.unwrap();
        assert_eq!(reply.body, r#"{"request_id":"r1","version":7,"retried":true}"#);
        let seen = task.await.unwrap();
        assert_eq!(seen.len(), 3);
        for req in &seen {
            assert!(req.starts_with("POST /commands HTTP/1.1\r\n"), "{req}");
            assert!(req.to_ascii_lowercase().contains("authorization: bearer sekrit\r\n"), "{req}");
            assert!(req.ends_with(r#"{"command":{"kind":"remove_shard","shard":"s9"},"request_id":"r1"}"#), "{req}");
        }
    }

    #[tokio::test]
    async fn unreachable_nodes_fail_at_once() {
        let (a, b) = (dead_addr().await, dead_addr().await);
        let client = Client::new(&format!("{a},{b}"), None, Duration::from_secs(10), None).unwrap();
        let started = Instant::now();
        let e = client.get("/cluster").await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(e.starts_with(&format!("cannot reach any slotgate node at http://{a}, http://{b} (http://{b}: ")), "{e}");
        assert!(e.ends_with("); check --cluster and that the nodes are running"), "{e}");
    }

    #[tokio::test]
    async fn no_leader_until_the_timeout() {
        let (live, _task) = fake_node(vec![(503, r#"{"error":"no leader"}"#); 50]).await;
        let client = Client::new(&live, None, Duration::from_secs(1), None).unwrap();
        let started = Instant::now();
        let e = client.get("/topology").await.unwrap_err().to_string();
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        assert!(e.starts_with("the meta group has no leader yet (election in progress or no quorum); retry in a few seconds"), "{e}");
        assert!(e.ends_with(&format!("(last answer: http://{live}/topology: no leader)")), "{e}");
    }

    #[tokio::test]
    async fn topology_not_found_is_none() {
        let (live, _task) = fake_node(vec![(404, r#"{"error":"the cluster has no topology yet"}"#)]).await;
        let client = Client::new(&live, None, Duration::from_secs(5), None).unwrap();
        assert!(client.get_optional("/topology").await.unwrap().is_none());
    }
}
