//! The batched, asynchronous request-log writer.
//!
//! Callers hand records to [`RequestLog::record`] and move on; one task
//! batches them into the store. When the store fails, batches go to the spool
//! and are replayed later, so an accepted record ends up in the store or on
//! disk, never nowhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backlog::Backlog;
use crate::spool::{Spool, SpoolReader};
use crate::{RequestRecord, Store};

/// A hung database (e.g. a black-holed TCP connection) must not stall the log
/// forever. An insert that times out may still commit later; replaying it from
/// the spool is harmless because inserts ignore known request ids.
const INSERT_TIMEOUT: Duration = Duration::from_secs(10);

/// Records held in memory when both the store and the spool fail (disk full
/// during an outage). Bounded so a long double failure cannot exhaust memory.
const MAX_HELD: usize = 100_000;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Most records per insert.
    pub batch_size: usize,
    /// Longest a record waits in memory before its batch is written.
    pub flush_interval: Duration,
    /// How often a non-empty spool is retried against the store.
    pub replay_interval: Duration,
    /// Most bytes of logged bodies held by records waiting in memory; past it, records are
    /// logged without their bodies until the writer catches up (see [`crate::backlog`]).
    pub max_queued_body_bytes: usize,
    /// Most records waiting in memory; past it, new requests wait for room (backpressure)
    /// before they are read (see [`RequestLog::wait_for_room`]).
    pub max_queued_records: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            flush_interval: Duration::from_millis(20),
            replay_interval: Duration::from_secs(5),
            // With the records' own bound, the queue stays under about 8 MiB: room for it in a
            // 64 MiB gateway. 4 MiB is ~1,000 prompts logged at the 4 KiB cap.
            max_queued_body_bytes: 4 * 1024 * 1024,
            // About 1 KiB each without bodies: a 4 MiB bound, 0.1 s of logging at 40k req/s.
            // At a steady rate the writer stayed within 1,500 records of the requests (exact
            // cache hits at 38k req/s); a stall of the store (a checkpoint's fsync on a busy
            // disk) is what reaches this.
            max_queued_records: 4 * 1024,
        }
    }
}

// Nearly every message is a Record, so boxing it would only add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// With the weight its bodies charge to the [`Backlog`].
    Record(RequestRecord, usize),
    Flush(oneshot::Sender<()>),
    Replay(oneshot::Sender<()>),
    Shutdown,
}

/// Runs on every record before it is written or spooled, in the writer task rather than on
/// the request path (the gateway redacts logged prompts and answers here), so nothing it
/// removes ever reaches the store or the spool file.
pub type RecordHook = Arc<dyn Fn(&mut RequestRecord) + Send + Sync>;

/// Handle to the writer task; cheap to clone and share.
#[derive(Clone)]
pub struct RequestLog {
    tx: mpsc::UnboundedSender<Msg>,
    spool: Arc<Spool>,
    stopped: watch::Receiver<bool>,
    hook: Option<RecordHook>,
    backlog: Arc<Backlog>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("spool", &self.spool.path())
            .field("spooled_pending", &self.spool.pending())
            .field("stopped", &*self.stopped.borrow())
            .finish()
    }
}

fn count(outcome: &'static str, n: usize) {
    metrics::counter!("switchyard_log_records_total", "outcome" => outcome).increment(n as u64);
}

impl RequestLog {
    /// Starts the writer task; must be called inside a Tokio runtime. Any
    /// records already in the spool are replayed first.
    pub fn spawn(
        store: Arc<dyn Store>,
        spool_path: PathBuf,
        opts: WriterOptions,
    ) -> (RequestLog, tokio::task::JoinHandle<()>) {
        Self::spawn_with_hook(store, spool_path, opts, None)
    }

    /// [`RequestLog::spawn`] with a [`RecordHook`] applied to every record first.
    pub fn spawn_with_hook(
        store: Arc<dyn Store>,
        spool_path: PathBuf,
        opts: WriterOptions,
        hook: Option<RecordHook>,
    ) -> (RequestLog, tokio::task::JoinHandle<()>) {
        let spool = Spool::open(spool_path);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stopped_tx, stopped) = watch::channel(false);
        let opts = WriterOptions {
            batch_size: opts.batch_size.max(1),
            flush_interval: opts.flush_interval.max(Duration::from_millis(1)),
            replay_interval: opts.replay_interval.max(Duration::from_millis(1)),
            ..opts
        };
        let backlog = Arc::new(Backlog::new(
            opts.max_queued_body_bytes,
            opts.max_queued_records,
        ));
        let writer = Writer {
            store,
            spool: spool.clone(),
            opts,
            rx,
            degraded: false,
            held: Vec::new(),
            hook: hook.clone(),
            backlog: backlog.clone(),
        };
        let handle = tokio::spawn(async move {
            writer.run().await;
            // Dropping the sender on a panic also wakes waiters, so this is
            // only the orderly path.
            let _ = stopped_tx.send(true);
        });
        (
            RequestLog {
                tx,
                spool,
                stopped,
                hook,
                backlog,
            },
            handle,
        )
    }

    /// Never blocks on the store and never fails. Only if the writer task is
    /// gone is the record appended to the spool synchronously, as a last
    /// resort that still keeps it.
    pub fn record(&self, mut rec: RequestRecord) {
        let weight = self.backlog.admit(&mut rec);
        if let Err(mpsc::error::SendError(Msg::Record(mut rec, _))) =
            self.tx.send(Msg::Record(rec, weight))
        {
            self.backlog.release(weight);
            if let Some(hook) = &self.hook {
                hook(&mut rec);
            }
            match self.spool.append(std::slice::from_ref(&rec)) {
                Ok(()) => count("spooled", 1),
                Err(e) => tracing::error!(
                    request_id = %rec.request_id,
                    error = %e,
                    "request log writer stopped and spool append failed; record lost"
                ),
            }
        }
    }

    /// Returns once everything recorded before the call is in the store or
    /// the spool.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() && done.await.is_ok() {
            return;
        }
        // The task is shutting down; it still writes what it had queued.
        self.wait_stopped().await;
    }

    /// Replays the spool now instead of at the next interval, and returns
    /// when that attempt is over (successful or not).
    pub async fn replay_now(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Replay(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Writes everything queued, then stops the task. Later records go to the
    /// spool synchronously. Safe to call more than once or concurrently.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        self.wait_stopped().await;
    }

    /// Waits, before a request is read, while the queue holds `max_queued_records`: the store
    /// has fallen behind and memory would otherwise grow with the request rate.
    pub async fn wait_for_room(&self) {
        tokio::select! {
            biased;
            () = self.backlog.wait_for_room() => {}
            // A writer that is gone drains nothing; `record` spools synchronously then.
            () = self.wait_stopped() => {}
        }
    }

    /// Records in the spool file waiting to be replayed.
    pub fn spooled_pending(&self) -> u64 {
        self.spool.pending()
    }

    async fn wait_stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

struct Writer {
    store: Arc<dyn Store>,
    spool: Arc<Spool>,
    opts: WriterOptions,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// Set after a failed insert: new batches go straight to the spool until a
    /// replay shows the store is back, so an outage costs one timeout, not one
    /// per batch.
    degraded: bool,
    held: Vec<RequestRecord>,
    hook: Option<RecordHook>,
    backlog: Arc<Backlog>,
}

impl Writer {
    /// Taken off the queue: its bodies are the batch's now, not the backlog's.
    fn prepare(&self, rec: &mut RequestRecord, weight: usize) {
        self.backlog.release(weight);
        if let Some(hook) = &self.hook {
            hook(rec);
        }
    }

    async fn run(mut self) {
        let mut batch: Vec<RequestRecord> = Vec::with_capacity(self.opts.batch_size);
        // Whatever a previous run left is replayed before any new record is
        // taken, so a restart makes the backlog visible as early as possible.
        self.replay().await;
        let every = self.opts.replay_interval;
        let mut replay = tokio::time::interval_at(Instant::now() + every, every);
        replay.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut msgs: Vec<Msg> = Vec::with_capacity(self.opts.batch_size);
        'run: loop {
            tokio::select! {
                biased;
                _ = replay.tick() => self.replay().await,
                n = self.rx.recv_many(&mut msgs, self.opts.batch_size) => {
                    if n == 0 {
                        break 'run;
                    }
                    // One wake-up per flush interval, not one per record: after the first record,
                    // let the batch fill without polling the channel, then take all that came.
                    // Barriers (flush, replay, shutdown) skip the wait.
                    let urgent = msgs.iter().any(|m| !matches!(m, Msg::Record(..)));
                    if !urgent && batch.len() + msgs.len() < self.opts.batch_size {
                        tokio::time::sleep(self.opts.flush_interval).await;
                    }
                    let mut stop = false;
                    loop {
                        for msg in msgs.drain(..) {
                            match msg {
                                Msg::Record(mut rec, weight) => {
                                    self.prepare(&mut rec, weight);
                                    batch.push(rec);
                                    if batch.len() >= self.opts.batch_size {
                                        self.write(&mut batch).await;
                                    }
                                }
                                Msg::Flush(ack) => {
                                    self.write(&mut batch).await;
                                    let _ = ack.send(());
                                }
                                Msg::Replay(ack) => {
                                    self.replay().await;
                                    let _ = ack.send(());
                                }
                                // Records queued behind the shutdown are still taken below.
                                Msg::Shutdown => stop = true,
                            }
                        }
                        // Take whatever else is already queued, without waiting for more.
                        while msgs.len() < self.opts.batch_size {
                            match self.rx.try_recv() {
                                Ok(m) => msgs.push(m),
                                Err(_) => break,
                            }
                        }
                        if msgs.is_empty() {
                            break;
                        }
                    }
                    if stop {
                        break 'run;
                    }
                    self.write(&mut batch).await;
                }
            }
        }
        self.drain(batch).await;
    }

    /// Final phase: closing the channel first makes every later `record`
    /// take the synchronous spool path, so nothing can slip in unseen.
    async fn drain(&mut self, mut batch: Vec<RequestRecord>) {
        self.rx.close();
        let mut acks = Vec::new();
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Record(mut rec, weight) => {
                    self.prepare(&mut rec, weight);
                    batch.push(rec);
                    if batch.len() >= self.opts.batch_size {
                        self.write(&mut batch).await;
                    }
                }
                Msg::Flush(ack) | Msg::Replay(ack) => acks.push(ack),
                Msg::Shutdown => {}
            }
        }
        self.write(&mut batch).await;
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.persist(held).await;
            if !self.held.is_empty() {
                tracing::error!(
                    records = self.held.len(),
                    "request log stopping with records neither stored nor spooled; they are lost"
                );
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
        tracing::debug!("request log writer stopped");
    }

    async fn write(&mut self, batch: &mut Vec<RequestRecord>) {
        // The batch's records are off the queue: requests waiting for room may go on.
        self.backlog.drained();
        if batch.is_empty() {
            return;
        }
        let recs = std::mem::replace(batch, Vec::with_capacity(self.opts.batch_size));
        self.persist(recs).await;
    }

    async fn persist(&mut self, recs: Vec<RequestRecord>) {
        if !self.degraded {
            match self.insert(&recs).await {
                Ok(()) => {
                    count("stored", recs.len());
                    return;
                }
                Err(reason) => {
                    tracing::warn!(
                        backend = self.store.backend(),
                        records = recs.len(),
                        error = %reason,
                        "request log insert failed; spooling until the store recovers"
                    );
                    self.degraded = true;
                }
            }
        }
        self.spool_records(recs).await;
    }

    async fn insert(&self, recs: &[RequestRecord]) -> Result<(), String> {
        match tokio::time::timeout(INSERT_TIMEOUT, self.store.insert_requests(recs)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("insert timed out after {INSERT_TIMEOUT:?}")),
        }
    }

    async fn spool_records(&mut self, recs: Vec<RequestRecord>) {
        let n = recs.len();
        let spool = self.spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let r = spool.append(&recs);
            (recs, r)
        })
        .await;
        match result {
            Ok((_, Ok(()))) => count("spooled", n),
            Ok((recs, Err(e))) => {
                tracing::error!(
                    path = %self.spool.path().display(),
                    records = n,
                    error = %e,
                    "cannot append to request spool; holding records in memory"
                );
                self.hold(recs);
            }
            Err(e) => tracing::error!(records = n, error = %e, "spool task failed; records lost"),
        }
    }

    fn hold(&mut self, recs: Vec<RequestRecord>) {
        self.held.extend(recs);
        if self.held.len() > MAX_HELD {
            let excess = self.held.len() - MAX_HELD;
            self.held.drain(..excess);
            tracing::error!(
                records = excess,
                "request log memory buffer full; oldest records lost"
            );
        }
    }

    async fn replay(&mut self) {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.persist(held).await;
        }
        let snapshot = match self.spool.snapshot_len() {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(error = %e, "cannot inspect request spool");
                return;
            }
        };
        if snapshot == 0 {
            if self.degraded && self.store.ping().await.is_ok() {
                tracing::info!("request log store reachable again");
                self.degraded = false;
            }
            return;
        }
        match self.replay_snapshot(snapshot).await {
            Ok(Some(replayed)) => {
                let spool = self.spool.clone();
                match tokio::task::spawn_blocking(move || spool.finish_replay(snapshot)).await {
                    Ok(Ok(())) => tracing::info!(records = replayed, "replayed request spool"),
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "replayed request spool but could not truncate it; will replay again"
                    ),
                    Err(e) => tracing::warn!(error = %e, "spool truncation task failed"),
                }
                self.degraded = false;
            }
            Ok(None) => self.degraded = true,
            Err(e) => tracing::warn!(error = %e, "cannot read request spool"),
        }
    }

    /// Stores every record of the first `snapshot` bytes of the spool.
    /// `Ok(None)` means the store is unavailable and the spool must be kept.
    async fn replay_snapshot(&mut self, snapshot: u64) -> std::io::Result<Option<u64>> {
        let path = self.spool.path().to_path_buf();
        let Some(mut reader) = SpoolReader::open(&path, snapshot)? else {
            return Ok(Some(0));
        };
        let max = self.opts.batch_size;
        let mut replayed = 0u64;
        loop {
            let (back, batch) = tokio::task::spawn_blocking(move || {
                let batch = reader.next_batch(max);
                (reader, batch)
            })
            .await
            .map_err(std::io::Error::other)?;
            reader = back;
            let batch = batch?;
            if batch.is_empty() {
                return Ok(Some(replayed));
            }
            if !self.replay_batch(&batch).await {
                return Ok(None);
            }
            replayed += batch.len() as u64;
        }
    }

    /// False when the store is down. If the store is up but refuses the batch,
    /// the culprit rows are found one by one and set aside in the rejected
    /// file, so one bad record cannot hold back the rest forever.
    async fn replay_batch(&mut self, batch: &[RequestRecord]) -> bool {
        let err = match self.insert(batch).await {
            Ok(()) => {
                count("replayed", batch.len());
                return true;
            }
            Err(e) => e,
        };
        if self.store.ping().await.is_err() {
            tracing::warn!(
                backend = self.store.backend(),
                error = %err,
                pending = self.spool.pending(),
                "request spool replay failed; store unavailable, will retry"
            );
            return false;
        }
        tracing::warn!(error = %err, "spool batch refused by a live store; retrying record by record");
        for rec in batch {
            let one = std::slice::from_ref(rec);
            match self.insert(one).await {
                Ok(()) => count("replayed", 1),
                Err(e) => {
                    if self.store.ping().await.is_err() {
                        return false;
                    }
                    let spool = self.spool.clone();
                    let owned = vec![rec.clone()];
                    let saved =
                        tokio::task::spawn_blocking(move || spool.append_rejected(&owned)).await;
                    match saved {
                        Ok(Ok(())) => {
                            count("rejected", 1);
                            tracing::error!(
                                request_id = %rec.request_id,
                                error = %e,
                                path = %self.spool.rejected_path().display(),
                                "store rejects spooled record; moved to rejected file"
                            );
                        }
                        // Keeping the spool intact is the only lossless choice.
                        _ => return false,
                    }
                }
            }
        }
        true
    }
}
