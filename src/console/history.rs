//! The recent past built from the snapshots received: total queue depth and
//! total stream lag per snapshot, for the Overview's sparklines.

use crate::inspect::Snapshot;
use std::collections::VecDeque;

/// One snapshot's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the snapshot was taken, unix ms.
    pub at_ms: u64,
    /// Messages waiting plus in flight, all queues.
    pub queue_depth: u64,
    /// Entries not yet handled, all readers of all streams.
    pub stream_lag: u64,
}

impl Sample {
    /// The totals of one snapshot.
    pub fn of(snap: &Snapshot) -> Self {
        let queue_depth = snap
            .queues
            .ok()
            .map_or(0, |qs| qs.iter().map(|q| q.waiting + q.in_flight).sum());
        let stream_lag = snap.streams.ok().map_or(0, |ss| {
            ss.iter().flat_map(|s| &s.readers).map(|r| r.lag).sum()
        });
        Self {
            at_ms: snap.taken_at_ms,
            queue_depth,
            stream_lag,
        }
    }
}

/// The last samples, oldest first, at most [`History::CAPACITY`] and at most
/// [`History::WINDOW_MS`] old.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Samples kept.
    pub const CAPACITY: usize = 300;
    /// Age of the oldest sample kept, ms (10 minutes).
    pub const WINDOW_MS: u64 = 600_000;

    /// Record one snapshot; a snapshot already recorded (same time) is ignored.
    pub fn push(&mut self, snap: &Snapshot) {
        let s = Sample::of(snap);
        if self
            .samples
            .back()
            .is_some_and(|last| last.at_ms >= s.at_ms)
        {
            return;
        }
        self.samples.push_back(s);
        while self.samples.len() > Self::CAPACITY
            || self
                .samples
                .front()
                .is_some_and(|f| s.at_ms - f.at_ms > Self::WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Oldest first.
    pub fn samples(&self) -> impl DoubleEndedIterator<Item = &Sample> + ExactSizeIterator {
        self.samples.iter()
    }

    /// Milliseconds between the oldest and the newest sample.
    pub fn span_ms(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => b.at_ms - a.at_ms,
            _ => 0,
        }
    }

    /// The last `n` values of one series, oldest first.
    pub fn last(&self, n: usize, f: impl Fn(&Sample) -> u64) -> Vec<u64> {
        let skip = self.samples.len().saturating_sub(n);
        self.samples.iter().skip(skip).map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn history_keeps_one_sample_per_snapshot_within_the_window() {
        let mut h = History::default();
        let mut s = sample::degraded();
        h.push(&s);
        h.push(&s);
        assert_eq!(h.samples().len(), 1);
        assert_eq!(h.samples().next().unwrap().queue_depth, 118 + 9 + 40);
        assert_eq!(h.samples().next().unwrap().stream_lag, 342);
        s.taken_at_ms += History::WINDOW_MS + 1;
        h.push(&s);
        assert_eq!(h.samples().len(), 1, "the old sample left the window");
    }
}
