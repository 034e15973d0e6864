//! Backlog over time, per queue and per stream, from the snapshots the
//! console received: whether it grows or shrinks (its net rate over the
//! last [`TREND_WINDOW_MS`]) and, while it shrinks, how long it takes to
//! drain at that rate. The age of the oldest unhandled entry comes with
//! each snapshot; the trend and the drain need history, so only the
//! console has them.

use crate::inspect::Snapshot;
use std::collections::{BTreeMap, VecDeque};

/// The trend is the net change over this much of the recent past (1 min).
pub const TREND_WINDOW_MS: u64 = 60_000;

/// Below this many entries per second, in either direction, a backlog is
/// steady.
const STEADY_PER_S: f64 = 0.05;

/// Which way a backlog goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// More entries than a window ago.
    Growing,
    /// Fewer.
    Shrinking,
    /// About the same.
    Steady,
    /// Not enough history yet (one snapshot, or under a second of it).
    Unknown,
}

/// A backlog's trend and time to drain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook {
    /// Which way it goes.
    pub trend: Trend,
    /// Net change, entries per second (negative: draining).
    pub per_s: f64,
    /// At that rate, milliseconds until empty; `None` unless shrinking.
    pub drain_ms: Option<u64>,
}

impl Outlook {
    /// `↑ 3.0/s`, `↓ 12/s`, `→`, or `-` (no history yet).
    pub fn trend_label(&self) -> String {
        let rate = |r: f64| {
            if r >= 10.0 {
                format!("{r:.0}/s")
            } else {
                format!("{r:.1}/s")
            }
        };
        match self.trend {
            Trend::Growing => format!("↑ {}", rate(self.per_s)),
            Trend::Shrinking => format!("↓ {}", rate(-self.per_s)),
            Trend::Steady => "→".to_string(),
            Trend::Unknown => "-".to_string(),
        }
    }

    /// The time to drain, or `—` when not draining.
    pub fn drain_label(&self) -> String {
        self.drain_ms
            .map_or_else(|| "—".to_string(), crate::console::format::age)
    }
}

/// One snapshot's backlogs: per queue (waiting + in flight) and per
/// stream (the live readers' lag, summed).
#[derive(Debug, Clone, Default, PartialEq)]
struct Backlogs {
    at_ms: u64,
    queues: BTreeMap<String, u64>,
    streams: BTreeMap<String, u64>,
}

impl Backlogs {
    fn of(snap: &Snapshot) -> Self {
        let queues = snap.queues.ok().map_or_else(BTreeMap::new, |qs| {
            qs.iter()
                .map(|q| (q.name.clone(), q.waiting + q.in_flight))
                .collect()
        });
        let streams = snap.streams.ok().map_or_else(BTreeMap::new, |ss| {
            ss.iter()
                .map(|s| {
                    let lag = s.readers.iter().filter(|r| r.live).map(|r| r.lag).sum();
                    (s.channel.clone(), lag)
                })
                .collect()
        });
        Self {
            at_ms: snap.taken_at_ms,
            queues,
            streams,
        }
    }
}

/// The backlogs of the last [`TREND_WINDOW_MS`] of snapshots, oldest first.
#[derive(Debug, Clone, Default)]
pub struct BacklogHistory {
    samples: VecDeque<Backlogs>,
}

impl BacklogHistory {
    /// Record one snapshot (one already recorded, same time, is ignored).
    pub fn push(&mut self, snap: &Snapshot) {
        if self
            .samples
            .back()
            .is_some_and(|last| last.at_ms >= snap.taken_at_ms)
        {
            return;
        }
        let b = Backlogs::of(snap);
        let now = b.at_ms;
        self.samples.push_back(b);
        // Keep one sample older than the window, so the window is covered.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|s| now.saturating_sub(s.at_ms) >= TREND_WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// The outlook of queue `name`.
    pub fn queue(&self, name: &str) -> Outlook {
        self.outlook(|b| b.queues.get(name).copied())
    }

    /// The outlook of stream `channel`.
    pub fn stream(&self, channel: &str) -> Outlook {
        self.outlook(|b| b.streams.get(channel).copied())
    }

    fn outlook(&self, value: impl Fn(&Backlogs) -> Option<u64>) -> Outlook {
        let unknown = Outlook {
            trend: Trend::Unknown,
            per_s: 0.0,
            drain_ms: None,
        };
        let Some(last) = self.samples.back() else {
            return unknown;
        };
        let Some(now) = value(last) else {
            return unknown;
        };
        // The oldest sample within the window that has this backlog.
        let Some((first_at, then)) = self
            .samples
            .iter()
            .filter(|s| last.at_ms.saturating_sub(s.at_ms) <= TREND_WINDOW_MS)
            .find_map(|s| value(s).map(|v| (s.at_ms, v)))
        else {
            return unknown;
        };
        let span_ms = last.at_ms.saturating_sub(first_at);
        if span_ms < 1_000 {
            return unknown;
        }
        let per_s = (now as f64 - then as f64) * 1000.0 / span_ms as f64;
        let (trend, drain_ms) = if per_s > STEADY_PER_S {
            (Trend::Growing, None)
        } else if per_s < -STEADY_PER_S {
            let ms = now as f64 / -per_s * 1000.0;
            (Trend::Shrinking, Some(ms.min(u64::MAX as f64) as u64))
        } else {
            (Trend::Steady, None)
        };
        Outlook {
            trend,
            per_s,
            drain_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;
    use crate::inspect::Source;

    fn with_waiting(at_ms: u64, waiting: u64) -> Snapshot {
        let mut s = sample::degraded();
        s.taken_at_ms = at_ms;
        if let Source::Ok(qs) = &mut s.queues {
            for q in qs.iter_mut() {
                q.waiting = waiting;
                q.in_flight = 0;
            }
        }
        s
    }

    #[test]
    fn a_shrinking_backlog_has_a_time_to_drain_and_a_growing_one_has_none() {
        let mut h = BacklogHistory::default();
        h.push(&with_waiting(0, 300));
        assert_eq!(h.queue("email").trend, Trend::Unknown, "one sample");
        h.push(&with_waiting(10_000, 200));
        let o = h.queue("email");
        assert_eq!(o.trend, Trend::Shrinking);
        assert!((o.per_s + 10.0).abs() < 1e-9, "{o:?}");
        assert_eq!(o.drain_ms, Some(20_000), "200 left at 10/s");
        assert_eq!(o.trend_label(), "↓ 10/s");
        assert_eq!(o.drain_label(), "20s");
        h.push(&with_waiting(20_000, 400));
        let o = h.queue("email");
        assert_eq!(o.trend, Trend::Growing, "{o:?}");
        assert_eq!(o.drain_label(), "—");
        assert_eq!(h.queue("nope").trend, Trend::Unknown);
    }

    #[test]
    fn the_trend_looks_at_the_last_minute_only() {
        let mut h = BacklogHistory::default();
        h.push(&with_waiting(0, 1_000));
        h.push(&with_waiting(100_000, 50));
        h.push(&with_waiting(130_000, 50));
        assert_eq!(h.queue("email").trend, Trend::Steady);
        assert_eq!(h.queue("email").trend_label(), "→");
    }
}
