//! The HTTP load generator of `clusterops bench node`: closed-loop clients
//! (each keeps one request in flight) over keep-alive connections for a
//! fixed time, every latency recorded, percentiles from the sorted sample.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the clients request.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `GET /api/records/{id}`: ids round-robin, nodes round-robin.
    Records,
    /// `GET /api/__health_check`, nodes round-robin.
    Health,
}

/// One measurement.
#[derive(Debug)]
pub struct LoadReport {
    /// Requests completed (successes and errors).
    pub requests: u64,
    /// Requests that failed or did not answer 2xx.
    pub errors: u64,
    /// First failure seen, if any.
    pub first_error: Option<String>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Latencies of the successful requests in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    /// Completed requests per second.
    pub fn requests_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile (`q` in 0..=1) of the successful requests, in ms.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        let mut v = json!({
            "requests": self.requests,
            "errors": self.errors,
            "duration_s": r3(self.elapsed.as_secs_f64()),
            "requests_per_s": self.requests_per_s().round(),
            "p50_ms": r3(self.percentile_ms(0.50)),
            "p90_ms": r3(self.percentile_ms(0.90)),
            "p99_ms": r3(self.percentile_ms(0.99)),
            "max_ms": r3(self.percentile_ms(1.0)),
        });
        if let (Some(e), Some(o)) = (&self.first_error, v.as_object_mut()) {
            o.insert("first_error".into(), json!(e));
        }
        v
    }
}

/// A keep-alive client with room for `concurrency` idle connections per node.
pub fn client(concurrency: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// `GET url`, which must answer 2xx.
pub async fn get_ok(http: &reqwest::Client, url: &str) -> Result<(), String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if code.is_success() {
        Ok(())
    } else {
        Err(format!(
            "GET {url}: {code} {}",
            body.lines().next().unwrap_or("")
        ))
    }
}

/// The URLs requested in turn: request `i` goes to node `i % nodes` and
/// (records) id `(i / nodes) % ids`, so every (node, id) pair comes up.
fn urls(target: Target, addrs: &[String], ids: &[i64]) -> Vec<String> {
    match target {
        Target::Health => addrs
            .iter()
            .map(|a| format!("http://{a}/api/__health_check"))
            .collect(),
        Target::Records => (0..addrs.len() * ids.len())
            .map(|i| {
                let addr = &addrs[i % addrs.len()];
                let id = ids[(i / addrs.len()) % ids.len()];
                format!("http://{addr}/api/records/{id}")
            })
            .collect(),
    }
}

/// `concurrency` clients requesting `target` for `duration`.
pub async fn drive(
    http: &reqwest::Client,
    target: Target,
    addrs: &[String],
    ids: &[i64],
    concurrency: usize,
    duration: Duration,
) -> LoadReport {
    let urls = Arc::new(urls(target, addrs, ids));
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(parking_lot::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (http, urls, next) = (http.clone(), urls.clone(), next.clone());
            let (errors, first_error) = (errors.clone(), first_error.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(16 * 1024);
                while Instant::now() < deadline {
                    let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                    let sent = Instant::now();
                    let outcome = match http.get(url).send().await {
                        Ok(resp) => {
                            let code = resp.status();
                            match resp.bytes().await {
                                Ok(_) if code.is_success() => Ok(()),
                                Ok(_) => Err(format!("GET {url}: {code}")),
                                Err(e) => Err(format!("GET {url}: {e}")),
                            }
                        }
                        Err(e) => Err(format!("GET {url}: {e}")),
                    };
                    match outcome {
                        Ok(()) => {
                            let us = sent.elapsed().as_micros();
                            lat.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().get_or_insert(e);
                            // A refused connection fails at once: do not spin.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for t in tasks {
        if let Ok(lat) = t.await {
            latencies_us.extend(lat);
        }
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    let errors = errors.load(Ordering::Relaxed);
    let first_error = first_error.lock().take();
    LoadReport {
        requests: latencies_us.len() as u64 + errors,
        errors,
        first_error,
        elapsed,
        latencies_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let r = LoadReport {
            requests: 10,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
            latencies_us: (1..=10).map(|i| i * 1000).collect(),
        };
        assert_eq!(r.percentile_ms(0.5), 5.0);
        assert_eq!(r.percentile_ms(0.9), 9.0);
        assert_eq!(r.percentile_ms(0.99), 10.0);
        assert_eq!(r.percentile_ms(1.0), 10.0);
        assert_eq!(r.requests_per_s(), 5.0);
    }

    #[test]
    fn every_node_and_id_pair_comes_up() {
        let addrs = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let u = urls(Target::Records, &addrs, &[1, 2, 3]);
        let set: std::collections::HashSet<_> = u.iter().collect();
        assert_eq!(set.len(), 9);
        assert_eq!(u[0], "http://a/api/records/1");
        assert_eq!(u[1], "http://b/api/records/1");
    }
}
