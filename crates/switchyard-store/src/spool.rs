//! The local spool: a JSON Lines file holding records the store could not take
//! yet. It is the last line of defence, so every append is fsynced and every
//! read tolerates a torn tail left by a crash.
//!
//! All functions do blocking file I/O; async callers go through
//! `spawn_blocking`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::record::finite_cost;
use crate::RequestRecord;

/// One per spool path per process, so that two writers (or a writer and the
/// synchronous fallback of a stopped one) pointed at the same file serialise
/// their appends and truncations instead of losing each other's lines.
pub(crate) struct Spool {
    path: PathBuf,
    state: Mutex<State>,
    pending: AtomicU64,
}

struct State {
    /// False when the file may end in a torn line (at start, or after a failed
    /// write); the next append first terminates it so the new record is not
    /// glued onto garbage and lost with it.
    tail_clean: bool,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Spool>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Spool>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Poisoning only means another thread panicked mid-append; the file itself is
/// still the source of truth, so carrying on is correct.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spool {
    pub(crate) fn open(path: PathBuf) -> Arc<Spool> {
        let key = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let mut reg = lock(registry());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        let pending = match count_lines(&path) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read request spool");
                0
            }
        };
        let spool = Arc::new(Spool {
            path,
            state: Mutex::new(State { tail_clean: false }),
            pending: AtomicU64::new(pending),
        });
        reg.insert(key, Arc::downgrade(&spool));
        spool.publish();
        spool
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        metrics::gauge!("switchyard_log_spool_pending").set(self.pending() as f64);
    }

    /// Appends and fsyncs; returns only once the records are durable.
    pub(crate) fn append(&self, recs: &[RequestRecord]) -> io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let buf = encode_lines(recs)?;
        let mut state = lock(&self.state);
        match append_bytes(&self.path, &buf, state.tail_clean) {
            Ok(()) => {
                state.tail_clean = true;
                drop(state);
                self.pending.fetch_add(recs.len() as u64, Ordering::Relaxed);
                self.publish();
                Ok(())
            }
            Err(e) => {
                state.tail_clean = false;
                Err(e)
            }
        }
    }

    /// Current size, taken under the lock so it always falls on a line
    /// boundary of completed appends.
    pub(crate) fn snapshot_len(&self) -> io::Result<u64> {
        let _state = lock(&self.state);
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Drops the first `consumed` bytes (everything a replay has stored).
    /// Lines appended after the replay's snapshot are kept.
    pub(crate) fn finish_replay(&self, consumed: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let mut file = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            // Removed by an operator meanwhile: nothing is left to keep.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                drop(state);
                self.pending.store(0, Ordering::Relaxed);
                self.publish();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let remaining = if len <= consumed {
            file.set_len(0)?;
            file.sync_all()?;
            state.tail_clean = true;
            0
        } else {
            // Rare (another writer appended meanwhile): rewrite the tail via a
            // temporary file and rename, so a crash leaves either the old or
            // the new file, never a half-copied one.
            file.seek(SeekFrom::Start(consumed))?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail)?;
            let tmp = self.path.with_extension("spool-tmp");
            {
                let mut out = File::create(&tmp)?;
                out.write_all(&tail)?;
                out.sync_all()?;
            }
            std::fs::rename(&tmp, &self.path)?;
            state.tail_clean = tail.last() == Some(&b'\n');
            count_in(&tail)
        };
        drop(state);
        self.pending.store(remaining, Ordering::Relaxed);
        self.publish();
        Ok(())
    }

    /// Where records that the store rejects one by one are set aside, so a
    /// single poison record cannot block the spool forever.
    pub(crate) fn rejected_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".rejected");
        PathBuf::from(name)
    }

    pub(crate) fn append_rejected(&self, recs: &[RequestRecord]) -> io::Result<()> {
        let buf = encode_lines(recs)?;
        let _state = lock(&self.state);
        append_bytes(&self.rejected_path(), &buf, false)
    }
}

fn encode_lines(recs: &[RequestRecord]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(recs.len() * 512);
    for rec in recs {
        let cost = finite_cost(rec);
        if cost.to_bits() == rec.cost_usd.to_bits() {
            serde_json::to_writer(&mut buf, rec)?;
        } else {
            let fixed = RequestRecord {
                cost_usd: cost,
                ..rec.clone()
            };
            serde_json::to_writer(&mut buf, &fixed)?;
        }
        buf.push(b'\n');
    }
    Ok(buf)
}

fn append_bytes(path: &Path, buf: &[u8], tail_clean: bool) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    if !tail_clean && !ends_with_newline(&mut file)? {
        file.write_all(b"\n")?;
    }
    file.write_all(buf)?;
    file.flush()?;
    file.sync_data()
}

fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn count_in(bytes: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count() as u64
}

fn count_lines(path: &Path) -> io::Result<u64> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(n);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            n += 1;
        }
    }
}

/// Streams a spool snapshot in batches so a spool grown large during a long
/// outage never has to fit in memory.
pub(crate) struct SpoolReader {
    reader: BufReader<io::Take<File>>,
    line_no: u64,
    line: Vec<u8>,
    pub(crate) skipped: u64,
}

impl SpoolReader {
    /// `None` when the file is gone (nothing to replay).
    pub(crate) fn open(path: &Path, limit: u64) -> io::Result<Option<Self>> {
        match File::open(path) {
            Ok(f) => Ok(Some(Self {
                reader: BufReader::new(f.take(limit)),
                line_no: 0,
                line: Vec::new(),
                skipped: 0,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Up to `max` records; an empty vector means the snapshot is exhausted.
    /// Unparseable lines (a torn write from a crash, disk corruption) are
    /// skipped with a warning rather than blocking every record after them.
    pub(crate) fn next_batch(&mut self, max: usize) -> io::Result<Vec<RequestRecord>> {
        let mut out = Vec::with_capacity(max.min(4096));
        while out.len() < max {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            self.line_no += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<RequestRecord>(&self.line) {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    self.skipped += 1;
                    // The content is not logged: it may be half a record and
                    // carries user metadata.
                    tracing::warn!(
                        line = self.line_no,
                        bytes = self.line.len(),
                        error = %e,
                        "skipping unreadable line in request spool"
                    );
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> RequestRecord {
        RequestRecord {
            request_id: id.into(),
            ts_ms: 1,
            ..Default::default()
        }
    }

    fn read_all(path: &Path) -> (Vec<String>, u64) {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let Some(mut r) = SpoolReader::open(path, len).unwrap() else {
            return (vec![], 0);
        };
        let mut ids = vec![];
        loop {
            let b = r.next_batch(2).unwrap();
            if b.is_empty() {
                break;
            }
            ids.extend(b.into_iter().map(|r| r.request_id));
        }
        (ids, r.skipped)
    }

    #[test]
    fn append_count_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spool.jsonl");
        let spool = Spool::open(path.clone());
        assert_eq!(spool.pending(), 0);
        spool.append(&[rec("a"), rec("b")]).unwrap();
        spool.append(&[rec("c")]).unwrap();
        assert_eq!(spool.pending(), 3);
        assert_eq!(read_all(&path).0, ["a", "b", "c"]);

        let len = spool.snapshot_len().unwrap();
        spool.finish_replay(len).unwrap();
        assert_eq!(spool.pending(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn same_path_shares_one_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let a = Spool::open(path.clone());
        let b = Spool::open(path);
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn torn_tail_is_skipped_and_not_glued_to_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let good = serde_json::to_string(&rec("ok1")).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{{\"request_id\":\"tor")).unwrap();
        let spool = Spool::open(path.clone());
        assert_eq!(spool.pending(), 3);
        spool.append(&[rec("ok2")]).unwrap();
        let (ids, skipped) = read_all(&path);
        assert_eq!(ids, ["ok1", "ok2"]);
        assert_eq!(skipped, 2);
    }

    #[test]
    fn finish_replay_keeps_lines_appended_after_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let spool = Spool::open(path.clone());
        spool.append(&[rec("old1"), rec("old2")]).unwrap();
        let snap = spool.snapshot_len().unwrap();
        spool.append(&[rec("new")]).unwrap();
        spool.finish_replay(snap).unwrap();
        assert_eq!(read_all(&path).0, ["new"]);
        assert_eq!(spool.pending(), 1);
    }

    #[test]
    fn non_finite_cost_round_trips_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let spool = Spool::open(path.clone());
        let mut r = rec("nan");
        r.cost_usd = f64::INFINITY;
        spool.append(&[r]).unwrap();
        let len = spool.snapshot_len().unwrap();
        let mut reader = SpoolReader::open(&path, len).unwrap().unwrap();
        let back = reader.next_batch(10).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].cost_usd, 0.0);
    }

    #[test]
    fn rejected_records_go_to_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let spool = Spool::open(path.clone());
        spool.append_rejected(&[rec("bad")]).unwrap();
        assert_eq!(spool.pending(), 0);
        assert_eq!(read_all(&spool.rejected_path()).0, ["bad"]);
    }
}
