//! State in Redis, shared by every replica that uses the same Redis and key prefix.
//!
//! Every operation is one command or one Lua script, so concurrent replicas cannot interleave
//! between a read and a write. Scripts read the clock with `TIME` inside Redis, so replicas whose
//! own clocks disagree still agree on the rate limits (Redis 5+ replicates script effects, which
//! is what allows a non-deterministic command in a script that writes).

use crate::error::{redact_url, Secrets};
use crate::{args, gcra, RateDecision, StateBackend, StateError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use std::sync::Arc;
use std::time::Duration;

/// Acquire: KEYS[1] = TAT key; ARGV = limit, period (ms), cost.
/// Returns {allowed, remaining, retry_after (µs), reset_after (µs)}. Mirrors `gcra::acquire`.
const RATE_ACQUIRE: &str = r#"
-- Clamped so that absurd debts cannot overflow the integer conversions.
local function px(ms) return string.format('%d', math.min(math.max(1, math.ceil(ms)), 1e13)) end
local function us(ms) return math.min(math.max(0, math.ceil(ms * 1000)), 9e15) end
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = period / limit
local tol = math.min(interval / 2, 1)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + cost * interval
local allowed, after, retry = 0, tat, 0
if cost > limit then
  retry = period
elseif new_tat - now <= period + tol then
  allowed, after = 1, new_tat
  if cost > 0 then
    redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', px(new_tat - now))
  end
else
  retry = new_tat - period - now
end
local remaining = math.floor((period + tol - (after - now)) / interval)
if remaining < 0 then remaining = 0 end
if remaining > limit then remaining = limit end
return {allowed, remaining, us(retry), us(after - now)}
"#;

/// Adjust: KEYS[1] = TAT key; ARGV = limit, period (ms), delta. Mirrors `gcra::adjust`.
const RATE_ADJUST: &str = r#"
local function px(ms) return string.format('%d', math.min(math.max(1, math.ceil(ms)), 1e13)) end
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + delta * (period / limit)
if new_tat > now then
  redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', px(new_tat - now))
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// KEYS[1] = counter; ARGV = max, expiry (s). The expiry is refreshed on every admission, so a
/// counter in use does not expire, while slots leaked by a crashed replica vanish once the key
/// has gone one expiry without an admission (not sooner: there is no per-slot lease).
const CONCURRENCY_ACQUIRE: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1])) or 0
if count < tonumber(ARGV[1]) then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// KEYS[1] = counter; ARGV = slots to release. Never goes below zero; DECRBY keeps the expiry.
const CONCURRENCY_RELEASE: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1])) or 0
local n = tonumber(ARGV[1])
if count <= n then
  redis.call('DEL', KEYS[1])
  return 0
end
return redis.call('DECRBY', KEYS[1], n)
"#;

/// KEYS[1] = counter; ARGV = amount, expiry (ms). The expiry is set only when the counter has
/// none, i.e. when it is created, so a budget window is not stretched by later spending.
const SPEND_ADD: &str = r#"
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return total
"#;

/// KEYS[1] = counter. Returns {total or "", remaining ttl in ms}; the ttl lets the resilient
/// backend mirror the counter locally with the right expiry.
const SPEND_GET: &str = r#"
local total = redis.call('GET', KEYS[1])
if not total then return {'', -2} end
return {total, redis.call('PTTL', KEYS[1])}
"#;

struct Scripts {
    rate_acquire: Script,
    rate_adjust: Script,
    concurrency_acquire: Script,
    concurrency_release: Script,
    spend_add: Script,
    spend_get: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            rate_acquire: Script::new(RATE_ACQUIRE),
            rate_adjust: Script::new(RATE_ADJUST),
            concurrency_acquire: Script::new(CONCURRENCY_ACQUIRE),
            concurrency_release: Script::new(CONCURRENCY_RELEASE),
            spend_add: Script::new(SPEND_ADD),
            spend_get: Script::new(SPEND_GET),
        }
    }
}

/// How to talk to Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prepended to every key (`{prefix}rate:{key}`, `{prefix}conc:{key}`, `{prefix}spend:{key}`).
    pub prefix: String,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on one command; a slow Redis must not hold requests up for long.
    pub response_timeout: Duration,
    /// Expiry of a concurrency counter, refreshed on each admission.
    pub concurrency_ttl: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: crate::DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            concurrency_ttl: Duration::from_secs(600),
        }
    }
}

/// Rate, concurrency and spend state in Redis, over a tokio `ConnectionManager` that reconnects
/// by itself. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    client: Client,
    options: Arc<RedisOptions>,
    scripts: Arc<Scripts>,
    secrets: Secrets,
    url: Arc<str>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.url)
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connects with the default prefix and checks that Redis answers.
    pub async fn connect(url: &str) -> Result<Self, StateError> {
        Self::connect_with_options(url, RedisOptions::default()).await
    }

    /// Connects with `options` and checks that Redis answers.
    pub async fn connect_with_options(
        url: &str,
        options: RedisOptions,
    ) -> Result<Self, StateError> {
        let state = Self::open(url, options)?;
        state.ping().await?;
        Ok(state)
    }

    /// Parses `url` and prepares a connection without any I/O: the first command connects, and
    /// later commands reconnect after a failure. Only a malformed URL is an error.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, StateError> {
        let shown = redact_url(url);
        let secrets = Secrets::from_url(url);
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("redis" | "rediss" | "unix" | "redis+unix")) {
            return Err(StateError::InvalidUrl {
                url: shown,
                reason: "expected redis://, rediss:// or unix://".into(),
            });
        }
        let client = Client::open(url).map_err(|err| {
            let mut reason = secrets.scrub(&err.to_string());
            if scheme == Some("rediss") {
                // TLS would need the redis crate's `tokio-rustls-comp` feature plus a rustls
                // crypto provider chosen by the binary; until then say so instead of a bare
                // "feature is not enabled".
                reason = format!("TLS (rediss://) is not built into switchyard-state: {reason}");
            }
            StateError::InvalidUrl {
                url: shown.clone(),
                reason,
            }
        })?;
        let conn = Self::manager(&client, &options, &secrets)?;
        Ok(Self {
            conn,
            client,
            options: Arc::new(options),
            scripts: Arc::new(Scripts::new()),
            secrets,
            url: shown.into(),
        })
    }

    fn manager(
        client: &Client,
        options: &RedisOptions,
        secrets: &Secrets,
    ) -> Result<ConnectionManager, StateError> {
        // No retries inside the manager: a command waiting on a reconnect would wait out every
        // backoff step. Callers (ResilientState) decide when to try again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|err| secrets.redis_error(&err))
    }

    /// A fresh connection manager for the same server, for when the current one seems stuck.
    pub(crate) fn reopened(&self) -> Result<Self, StateError> {
        let conn = Self::manager(&self.client, &self.options, &self.secrets)?;
        Ok(Self {
            conn,
            ..self.clone()
        })
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.options.prefix
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.options.prefix)
    }

    fn err(&self, err: redis::RedisError) -> StateError {
        self.secrets.redis_error(&err)
    }

    /// Releases `n` slots at once (the resilient backend replays releases missed in an outage).
    pub(crate) async fn concurrency_release_n(&self, key: &str, n: u64) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .concurrency_release
            .key(self.key("conc", key))
            .arg(n)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The counter's total and remaining expiry (`None` when it has none).
    pub(crate) async fn spend_get_with_ttl(
        &self,
        key: &str,
    ) -> Result<(f64, Option<Duration>), StateError> {
        let mut conn = self.conn.clone();
        let (total, pttl): (String, i64) = self
            .scripts
            .spend_get
            .key(self.key("spend", key))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        if total.is_empty() {
            return Ok((0.0, None));
        }
        let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok((parse_float(&total)?, ttl))
    }
}

fn parse_float(text: &str) -> Result<f64, StateError> {
    text.parse()
        .map_err(|_| StateError::UnexpectedReply(format!("not a number: {text:?}")))
}

fn units(value: i64, what: &str) -> Result<u64, StateError> {
    u64::try_from(value).map_err(|_| StateError::UnexpectedReply(format!("negative {what}")))
}

/// Whole milliseconds for PX/PEXPIRE, at least 1 (0 is an error there) and at most ~300 years
/// (Redis refuses expiries that overflow its clock; `Duration::MAX` may mean "forever").
fn millis(d: Duration) -> u64 {
    const MAX_MS: u64 = 10_000_000_000_000;
    u64::try_from(d.as_millis())
        .unwrap_or(MAX_MS)
        .clamp(1, MAX_MS)
}

#[async_trait::async_trait]
impl StateBackend for RedisState {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn rate_acquire(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        cost: u64,
    ) -> Result<RateDecision, StateError> {
        args::rate(limit, period)?;
        if limit == 0 {
            return Ok(gcra::zero_limit(period));
        }
        let mut conn = self.conn.clone();
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .scripts
            .rate_acquire
            .key(self.key("rate", key))
            .arg(limit)
            .arg(period.as_secs_f64() * 1000.0)
            .arg(cost)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit,
            remaining: units(remaining, "remaining")?,
            retry_after: Duration::from_micros(units(retry_us, "retry_after")?),
            reset_after: Duration::from_micros(units(reset_us, "reset_after")?),
        })
    }

    async fn rate_adjust(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        delta: i64,
    ) -> Result<(), StateError> {
        args::rate(limit, period)?;
        args::delta(delta)?;
        if limit == 0 || delta == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .rate_adjust
            .key(self.key("rate", key))
            .arg(limit)
            .arg(period.as_secs_f64() * 1000.0)
            .arg(delta)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn concurrency_acquire(&self, key: &str, max: u64) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let admitted: i64 = self
            .scripts
            .concurrency_acquire
            .key(self.key("conc", key))
            .arg(max)
            .arg(self.options.concurrency_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(admitted == 1)
    }

    async fn concurrency_release(&self, key: &str) -> Result<(), StateError> {
        self.concurrency_release_n(key, 1).await
    }

    async fn spend_add(&self, key: &str, usd: f64, ttl: Duration) -> Result<f64, StateError> {
        args::spend(usd, ttl)?;
        let mut conn = self.conn.clone();
        let total: String = self
            .scripts
            .spend_add
            .key(self.key("spend", key))
            .arg(usd)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        parse_float(&total)
    }

    async fn spend_get(&self, key: &str) -> Result<f64, StateError> {
        Ok(self.spend_get_with_ttl(key).await?.0)
    }

    async fn spend_seed(&self, key: &str, usd: f64, ttl: Duration) -> Result<(), StateError> {
        args::spend(usd, ttl)?;
        let mut conn = self.conn.clone();
        // A single SET … NX is atomic on its own; no script needed.
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key("spend", key))
            .arg(usd)
            .arg("PX")
            .arg(millis(ttl))
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let reply: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(StateError::UnexpectedReply(format!(
                "PING answered {reply:?}"
            )))
        }
    }
}
