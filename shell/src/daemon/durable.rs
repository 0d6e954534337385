//! What outlives the process: the operator's pause and the day's token use, kept as
//! `<state root>/state.json` and handed back to the core at start
//! ([`symphony_core::Event::StateRestored`]).
//!
//! Written whole to a temporary file in the state root, then renamed over the old one, so a
//! crash leaves either the old or the new file, never a torn one. A pause change is written at
//! once; token counts at most every [`TOKENS_EVERY`] and at shutdown (a crash loses at most that
//! much of the day's count).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use symphony_core::Durable;

/// The file's name in the state root.
pub(crate) const FILE: &str = "state.json";
/// Longest file read back; a larger one is not ours.
const MAX_BYTES: u64 = 64 * 1024;
/// Token counts are written at most this often.
const TOKENS_EVERY: Duration = Duration::from_secs(5);

/// Keeps the file in step with the core.
pub(crate) struct Keeper {
    path: PathBuf,
    written: Durable,
    last_write: Option<Instant>,
}

impl Keeper {
    /// The keeper for `state_root`, and what an earlier process kept there (`None` when there
    /// is nothing, or nothing readable: that is logged and the daemon starts fresh).
    pub(crate) fn open(state_root: &Path) -> (Self, Option<Durable>) {
        let path = state_root.join(FILE);
        let kept = read(&path);
        let keeper = Self {
            path,
            written: kept.clone().unwrap_or_default(),
            last_write: None,
        };
        (keeper, kept)
    }

    /// Writes `durable` when it differs from what is on disk: at once for a pause change or
    /// when `now` is set (shutdown), else when the last write is old enough.
    pub(crate) fn offer(&mut self, durable: &Durable, now: bool) {
        if *durable == self.written {
            return;
        }
        let due = now
            || durable.paused != self.written.paused
            || self
                .last_write
                .is_none_or(|at| at.elapsed() >= TOKENS_EVERY);
        if !due {
            return;
        }
        match write(&self.path, durable) {
            Ok(()) => {
                self.written = durable.clone();
                self.last_write = Some(Instant::now());
            }
            Err(e) => tracing::error!(
                "cannot keep the pause and the day's tokens in {}: {e}",
                self.path.display()
            ),
        }
    }
}

fn read(path: &Path) -> Option<Durable> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!("cannot read {}: {e}; starting fresh", path.display());
            return None;
        }
    };
    if !meta.is_file() || meta.len() > MAX_BYTES {
        tracing::error!(
            "{} is not a regular file of at most {MAX_BYTES} bytes; starting fresh",
            path.display()
        );
        return None;
    }
    let parsed = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Durable>(&bytes).map_err(|e| e.to_string()));
    match parsed {
        Ok(durable) => Some(durable),
        Err(e) => {
            tracing::error!("cannot read {}: {e}; starting fresh", path.display());
            None
        }
    }
}

fn write(path: &Path, durable: &Durable) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(durable).map_err(std::io::Error::other)?;
    let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::{Pause, Timestamp};

    #[test]
    fn kept_state_round_trips_and_bad_files_start_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let (mut keeper, kept) = Keeper::open(dir.path());
        assert_eq!(kept, None, "nothing kept yet");
        let paused = Durable {
            paused: Some(Pause {
                reason: "freeze".into(),
                since: Timestamp(1_000),
            }),
            day: 20_000,
            day_tokens: 5,
        };
        keeper.offer(&paused, false);
        assert_eq!(Keeper::open(dir.path()).1, Some(paused.clone()));
        // Tokens alone are not written again within the interval; a pause change is.
        let more = Durable {
            day_tokens: 9,
            ..paused.clone()
        };
        keeper.offer(&more, false);
        assert_eq!(Keeper::open(dir.path()).1, Some(paused.clone()));
        keeper.offer(&more, true);
        assert_eq!(Keeper::open(dir.path()).1, Some(more.clone()));
        let resumed = Durable {
            paused: None,
            ..more
        };
        keeper.offer(&resumed, false);
        assert_eq!(Keeper::open(dir.path()).1, Some(resumed));
        // A torn or foreign file: ignored, never fatal.
        std::fs::write(dir.path().join(FILE), "{\"paused\": nul").unwrap();
        assert_eq!(Keeper::open(dir.path()).1, None);
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        std::fs::create_dir(dir.path().join(FILE)).unwrap();
        assert_eq!(Keeper::open(dir.path()).1, None);
    }
}
