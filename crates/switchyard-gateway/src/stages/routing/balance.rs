//! Load balancing across deployments of one model (`[[model_groups]]`).
//!
//! A group turns one requested name into an ordered plan over its members; the call stage tries
//! the first and falls back to the rest, so balancing is only ever an *ordering*: no member is
//! refused here, and a busy or failing one still serves when everything ahead of it fails.
//!
//! The order is decided by three keys, most significant first:
//! 1. health: healthy, then cooling down after a recent failure, then breaker open;
//! 2. locality: self-hosted members below `overflow_utilization` of their capacity, then hosted
//!    ones, then the self-hosted ones that are full (burst to cloud);
//! 3. the group's strategy (weighted round robin, least latency, least in flight), then
//!    configuration order.
//!
//! Live numbers come from [`DeploymentStats`](crate::stages::call::DeploymentStats), which the
//! call executor updates around every upstream attempt with atomics only; reading them here
//! takes no lock either.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::ModelEntry;
use crate::config::{BalanceStrategy, ModelGroupConfig, MAX_GROUP_MEMBERS};
use crate::stages::call::Health;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Locality {
    /// Self-hosted with room to spare: cheaper, and the data stays home.
    #[default]
    Home,
    Hosted,
    /// Self-hosted at or above `overflow_utilization` of its capacity.
    HomeFull,
}

/// The sort key of one member; field order is significance order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Rank {
    health: Health,
    locality: Locality,
    strategy: u64,
    index: u8,
}

struct Member {
    entry: Arc<ModelEntry>,
    /// Full at this many in flight (`ceil(capacity × overflow_utilization)`); `None`: hosted,
    /// or self-hosted without a configured capacity, which is never considered full.
    full_at: Option<u32>,
}

/// One `[[model_groups]]` entry, resolved against the model table.
pub struct ModelGroup {
    name: String,
    members: Vec<Member>,
    strategy: BalanceStrategy,
    /// `weighted`: one period of nginx's smooth weighted round robin, as member indexes.
    sequence: Vec<u8>,
    /// Requests planned so far: the position in `sequence`.
    turn: AtomicUsize,
    cooldown_ms: u64,
    has_home: bool,
    overflows: OnceLock<metrics::Counter>,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("model_groups: {group:?} names {member:?}, which is not a configured model")]
    UnknownMember { group: String, member: String },
    #[error("model_groups: {group:?} has more than {MAX_GROUP_MEMBERS} members")]
    TooManyMembers { group: String },
}

impl ModelGroup {
    /// `lookup` resolves member names; the config was validated, so a miss is a bug upstream
    /// of this, reported rather than panicking.
    pub fn new(
        config: &ModelGroupConfig,
        lookup: impl Fn(&str) -> Option<Arc<ModelEntry>>,
    ) -> Result<Self, GroupError> {
        if config.members.len() > MAX_GROUP_MEMBERS {
            return Err(GroupError::TooManyMembers {
                group: config.name.clone(),
            });
        }
        let mut members = Vec::with_capacity(config.members.len());
        for name in &config.members {
            let entry = lookup(name).ok_or_else(|| GroupError::UnknownMember {
                group: config.name.clone(),
                member: name.clone(),
            })?;
            let full_at = config
                .capacity
                .get(name)
                .filter(|_| entry.self_hosted)
                .map(|&cap| full_at(cap, config.overflow_utilization));
            members.push(Member { entry, full_at });
        }
        let sequence = match config.strategy {
            BalanceStrategy::Weighted => {
                let weights = config
                    .weights
                    .clone()
                    .unwrap_or_else(|| vec![1; members.len()]);
                smooth_weighted_sequence(&weights)
            }
            _ => Vec::new(),
        };
        Ok(Self {
            name: config.name.clone(),
            has_home: members.iter().any(|m| m.entry.self_hosted),
            members,
            strategy: config.strategy,
            sequence,
            turn: AtomicUsize::new(0),
            cooldown_ms: config.cooldown_ms,
            overflows: OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = &Arc<ModelEntry>> {
        self.members.iter().map(|m| &m.entry)
    }

    /// Appends the members to `plan` in the order they should be tried, as of `now_ms`
    /// ([`mono_ms`](crate::stages::call::mono_ms)). Returns whether the request burst to the
    /// cloud: a hosted member leads because the self-hosted ones that would otherwise lead are
    /// full.
    pub fn order_into(&self, plan: &mut Vec<Arc<ModelEntry>>, now_ms: u64) -> bool {
        let n = self.members.len().min(MAX_GROUP_MEMBERS);
        // A stack buffer: the plan vector is the only allocation per request.
        let mut ranks = [Rank::default(); MAX_GROUP_MEMBERS];
        let strategy = self.strategy_ranks(n);
        for (i, m) in self.members.iter().take(n).enumerate() {
            let stats = &m.entry.stats;
            let locality = match (m.entry.self_hosted, m.full_at) {
                (false, _) if self.has_home => Locality::Hosted,
                (false, _) => Locality::Home,
                (true, Some(full)) if stats.in_flight() >= full => Locality::HomeFull,
                (true, _) => Locality::Home,
            };
            ranks[i] = Rank {
                health: stats.health(now_ms, self.cooldown_ms),
                locality,
                strategy: strategy[i],
                index: i as u8,
            };
        }
        let ranks = &mut ranks[..n];
        ranks.sort_unstable();
        let overflowed = ranks.first().is_some_and(|lead| {
            lead.locality == Locality::Hosted
                && ranks
                    .iter()
                    .any(|r| r.locality == Locality::HomeFull && r.health == lead.health)
        });
        if overflowed {
            self.overflows
                .get_or_init(|| {
                    let group = self.name.clone();
                    metrics::counter!("switchyard_router_overflow_total", "group" => group)
                })
                .increment(1);
        }
        plan.extend(
            ranks
                .iter()
                .map(|r| self.members[usize::from(r.index)].entry.clone()),
        );
        overflowed
    }

    /// Lower goes first. Advances the round robin, so call once per request.
    fn strategy_ranks(&self, n: usize) -> [u64; MAX_GROUP_MEMBERS] {
        let mut ranks = [0u64; MAX_GROUP_MEMBERS];
        match self.strategy {
            BalanceStrategy::LeastInFlight => {
                for (r, m) in ranks.iter_mut().zip(&self.members) {
                    *r = u64::from(m.entry.stats.in_flight());
                }
            }
            BalanceStrategy::LeastLatency => {
                for (r, m) in ranks.iter_mut().zip(&self.members) {
                    // No sample yet reads as 0 µs: such a member goes first and gets one.
                    *r = m.entry.stats.latency_us();
                }
            }
            BalanceStrategy::Weighted if !self.sequence.is_empty() => {
                // The SWRR pick leads; the others follow in the order the sequence reaches
                // them, so a member that is skipped (full, cooling) hands its turn on in
                // proportion to the weights rather than always to the same neighbour.
                let len = self.sequence.len();
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % len;
                ranks[..n].fill(u64::MAX);
                let mut unranked = n;
                for step in 0..len {
                    let i = usize::from(self.sequence[(start + step) % len]);
                    if i < n && ranks[i] == u64::MAX {
                        ranks[i] = step as u64;
                        unranked -= 1;
                        if unranked == 0 {
                            break;
                        }
                    }
                }
            }
            BalanceStrategy::Weighted => {}
        }
        ranks
    }
}

/// `ceil(capacity × utilization)`, at least 1: the in-flight count at which a member is full.
fn full_at(capacity: u32, utilization: f64) -> u32 {
    let at = (f64::from(capacity) * utilization).ceil();
    if at.is_finite() && at >= 1.0 {
        at.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// One period of nginx's smooth weighted round robin: every step each member's current weight
/// grows by its weight, the largest (first on ties) is picked and loses the total. Over
/// `sum / gcd` steps each member is picked exactly `weight / gcd` times, evenly interleaved, so
/// a shared counter into this sequence gives the same picks lock-free.
pub fn smooth_weighted_sequence(weights: &[u32]) -> Vec<u8> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .take(MAX_GROUP_MEMBERS)
        .map(|&w| i64::from(w / divisor))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(best as u8);
    }
    sequence
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::call::{mono_ms, DeploymentStats};
    use std::collections::BTreeMap;
    use std::time::Duration;
    use switchyard_providers::{build_provider, ProviderKind, ProviderSettings};

    fn entry(name: &str, self_hosted: bool) -> Arc<ModelEntry> {
        let settings = ProviderSettings::new("p", ProviderKind::OpenAi, "http://127.0.0.1:9/v1");
        Arc::new(ModelEntry {
            name: name.to_owned(),
            provider: build_provider(settings, reqwest::Client::new()),
            upstream: name.to_owned(),
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            timeout: Duration::from_secs(1),
            max_retries: 0,
            fallbacks: Vec::new(),
            context_window: None,
            context_fallback: None,
            breaker_key: format!("p/{name}"),
            self_hosted,
            stats: Arc::new(DeploymentStats::new(format!("p/{name}"))),
        })
    }

    fn group(
        members: &[Arc<ModelEntry>],
        strategy: BalanceStrategy,
        weights: Option<Vec<u32>>,
        capacity: &[(&str, u32)],
    ) -> ModelGroup {
        let config = ModelGroupConfig {
            name: "g".to_owned(),
            members: members.iter().map(|m| m.name.clone()).collect(),
            strategy,
            weights,
            capacity: capacity
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
            overflow_utilization: 0.8,
            cooldown_ms: 5_000,
        };
        ModelGroup::new(&config, |n| members.iter().find(|m| m.name == n).cloned())
            .expect("members resolve")
    }

    fn order(g: &ModelGroup, now_ms: u64) -> Vec<String> {
        let mut plan = Vec::new();
        g.order_into(&mut plan, now_ms);
        plan.iter().map(|m| m.name.clone()).collect()
    }

    #[test]
    fn swrr_interleaves_exact_proportions() {
        assert_eq!(smooth_weighted_sequence(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_weighted_sequence(&[6, 2]), [0, 0, 1, 0]);
        assert_eq!(smooth_weighted_sequence(&[1, 1, 1]), [0, 1, 2]);
    }

    #[test]
    fn weighted_leads_in_proportion_and_lists_every_member() {
        let ms = [entry("a", false), entry("b", false)];
        let g = group(&ms, BalanceStrategy::Weighted, Some(vec![3, 1]), &[]);
        let mut firsts = BTreeMap::new();
        for _ in 0..40 {
            let o = order(&g, 0);
            assert_eq!(o.len(), 2);
            *firsts.entry(o[0].clone()).or_insert(0) += 1;
        }
        assert_eq!(firsts["a"], 30);
        assert_eq!(firsts["b"], 10);
    }

    #[test]
    fn least_in_flight_breaks_ties_by_config_order() {
        let ms = [entry("a", false), entry("b", false), entry("c", false)];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[]);
        assert_eq!(order(&g, 0), ["a", "b", "c"]);
        let _a = ms[0].stats.begin();
        let _b1 = ms[1].stats.begin();
        let b2 = ms[1].stats.begin();
        assert_eq!(order(&g, 0), ["c", "a", "b"]);
        drop(b2);
        drop(_a);
        assert_eq!(order(&g, 0), ["a", "c", "b"]);
    }

    #[test]
    fn least_latency_samples_unknown_members_first() {
        let ms = [entry("slow", false), entry("fast", false)];
        let g = group(&ms, BalanceStrategy::LeastLatency, None, &[]);
        assert_eq!(order(&g, 0), ["slow", "fast"]);
        ms[0].stats.record_success(Duration::from_millis(200));
        assert_eq!(order(&g, 0), ["fast", "slow"], "no sample yet goes first");
        ms[1].stats.record_success(Duration::from_millis(5));
        assert_eq!(order(&g, 0), ["fast", "slow"]);
        // The average moves by alpha = 0.3 per sample, not all the way.
        ms[1].stats.record_success(Duration::from_millis(405));
        assert_eq!(ms[1].stats.latency(), Some(Duration::from_millis(125)));
        assert_eq!(order(&g, 0), ["fast", "slow"]);
        ms[1].stats.record_success(Duration::from_millis(405));
        assert_eq!(order(&g, 0), ["slow", "fast"]);
    }

    #[test]
    fn a_failed_member_cools_down_then_returns() {
        let ms = [entry("a", false), entry("b", false)];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[]);
        ms[0].stats.record_failure();
        let now = mono_ms();
        assert_eq!(order(&g, now), ["b", "a"], "ordered last, not refused");
        assert_eq!(order(&g, now + 5_000), ["a", "b"], "cool-down over");
        ms[0].stats.record_success(Duration::from_millis(1));
        assert_eq!(order(&g, now), ["a", "b"], "a success clears it");
    }

    #[test]
    fn an_open_breaker_goes_behind_cooling_members() {
        let ms = [entry("a", false), entry("b", false), entry("c", false)];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[]);
        ms[0].stats.record_failure();
        ms[0].stats.breaker_opened(Duration::from_secs(30));
        ms[1].stats.record_failure();
        let now = mono_ms();
        assert_eq!(order(&g, now), ["c", "b", "a"]);
        assert_eq!(order(&g, now + 10_000), ["b", "c", "a"]);
        assert_eq!(
            order(&g, now + 31_000),
            ["a", "b", "c"],
            "half-open: may probe"
        );
    }

    #[test]
    fn self_hosted_first_until_full_then_burst_to_cloud() {
        let ms = [
            entry("east", false),
            entry("west", false),
            entry("home", true),
        ];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[("home", 5)]);
        assert_eq!(order(&g, 0), ["home", "east", "west"]);
        // 0.8 × 5 = 4 in flight is full.
        let busy: Vec<_> = (0..3).map(|_| ms[2].stats.begin()).collect();
        let mut plan = Vec::new();
        assert!(!g.order_into(&mut plan, 0));
        assert_eq!(plan[0].name, "home");
        let one_more = ms[2].stats.begin();
        plan.clear();
        assert!(g.order_into(&mut plan, 0), "burst counts as overflow");
        let names: Vec<_> = plan.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["east", "west", "home"], "home is now the fallback");
        drop(one_more);
        drop(busy);
        assert_eq!(order(&g, 0), ["home", "east", "west"]);
    }

    #[test]
    fn self_hosted_without_capacity_is_never_full() {
        let ms = [entry("cloud", false), entry("home", true)];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[]);
        let _busy: Vec<_> = (0..100).map(|_| ms[1].stats.begin()).collect();
        assert_eq!(order(&g, 0), ["home", "cloud"]);
    }

    #[test]
    fn failing_self_hosted_member_is_not_an_overflow() {
        let ms = [entry("cloud", false), entry("home", true)];
        let g = group(&ms, BalanceStrategy::LeastInFlight, None, &[("home", 1)]);
        ms[1].stats.record_failure();
        let mut plan = Vec::new();
        assert!(!g.order_into(&mut plan, mono_ms()));
        assert_eq!(plan[0].name, "cloud");
    }

    #[test]
    fn in_flight_guard_releases_on_cancellation() {
        let ms = [entry("a", false)];
        let stats = ms[0].stats.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let attempt = async {
                let _g = stats.begin();
                tokio::time::sleep(Duration::from_secs(60)).await;
            };
            let cancelled = tokio::time::timeout(Duration::from_millis(10), attempt).await;
            assert!(cancelled.is_err());
        });
        assert_eq!(stats.in_flight(), 0);
    }

    #[test]
    fn full_at_rounds_up_and_never_hits_zero() {
        assert_eq!(full_at(8, 0.8), 7);
        assert_eq!(full_at(1, 0.8), 1);
        assert_eq!(full_at(5, 1.0), 5);
        assert_eq!(full_at(1, 0.01), 1);
    }
}
