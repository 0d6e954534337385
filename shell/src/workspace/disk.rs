//! The disk guard: dispatch pauses while the workspace filesystem is short of space.

use symphony_core::Event;

/// Turns free-space readings into core events, only on transitions.
#[derive(Clone, Debug)]
pub struct DiskGuard {
    min_mb: u64,
    low: bool,
}

impl DiskGuard {
    /// A guard for `workspace.min_free_disk_mb`; `0` disables it.
    pub fn new(min_mb: u64) -> Self {
        Self { min_mb, low: false }
    }

    /// Applies a reloaded minimum; the next reading decides.
    pub fn set_min(&mut self, min_mb: u64) {
        self.min_mb = min_mb;
    }

    /// The event to feed the core for this reading, if the state changed.
    pub fn observe(&mut self, free_mb: u64) -> Option<Event> {
        let low = self.min_mb > 0 && free_mb < self.min_mb;
        if low == self.low {
            return None;
        }
        self.low = low;
        Some(if low {
            Event::DiskSpaceLow {
                free_mb,
                min_mb: self.min_mb,
            }
        } else {
            Event::DiskSpaceRecovered { free_mb }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_only_on_transitions() {
        let mut guard = DiskGuard::new(256);
        assert_eq!(guard.observe(1_000), None);
        assert_eq!(
            guard.observe(100),
            Some(Event::DiskSpaceLow {
                free_mb: 100,
                min_mb: 256
            })
        );
        assert_eq!(guard.observe(50), None);
        assert_eq!(
            guard.observe(300),
            Some(Event::DiskSpaceRecovered { free_mb: 300 })
        );
        guard.observe(10);
        guard.set_min(0);
        assert_eq!(
            guard.observe(10),
            Some(Event::DiskSpaceRecovered { free_mb: 10 })
        );
    }
}
