//! Sequence slots and prefix reuse.
//!
//! Every slot is one llama.cpp sequence id. A slot remembers which tokens its KV cache holds
//! even after its request is done, so a later request that starts with the same tokens (a shared
//! system prompt, a growing conversation) only computes what is new. With a unified KV cache a
//! prefix can also be shared from a busy slot: `seq_cp` tags the same cells with a second
//! sequence id instead of copying them.

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::text::{StopMatcher, Utf8Joiner};
use super::{EngineEvent, Sampling};

pub(crate) struct Slot {
    pub seq: i32,
    /// Tokens whose KV entries this sequence holds, at positions `0..cached.len()`.
    pub cached: Vec<LlamaToken>,
    pub active: Option<Active>,
    /// Step of the last admission, to reuse the least recently used free slot first.
    pub last_used: u64,
    /// How often this slot's cache has served another request's prefix: a shared system
    /// prompt is worth keeping, a one-off prompt is not.
    pub reused: u32,
}

impl Slot {
    pub fn new(seq: i32) -> Self {
        Self {
            seq,
            cached: Vec::new(),
            active: None,
            last_used: 0,
            reused: 0,
        }
    }
}

/// A request being served by a slot.
pub(crate) struct Active {
    pub prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache (reused or computed).
    pub prefilled: usize,
    pub cached_prompt_tokens: u32,
    pub sampling: Sampling,
    pub sampler: LlamaSampler,
    pub events: mpsc::UnboundedSender<EngineEvent>,
    /// The sampled token that the next step decodes.
    pub next_token: Option<LlamaToken>,
    /// Index in the current batch whose logits belong to this request.
    pub logits_at: Option<i32>,
    pub generated: u32,
    pub utf8: Utf8Joiner,
    pub stop: StopMatcher,
    pub admitted: u64,
}

impl Active {
    pub fn is_prefilling(&self) -> bool {
        self.prefilled < self.prompt.len()
    }
}

/// Where a new request goes and which cached prefix it starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub target: usize,
    /// The slot whose cache holds the longest usable prefix (may be `target` itself).
    pub source: usize,
    /// Prompt tokens reused from `source`.
    pub reuse: usize,
}

pub(crate) fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// What placement needs to know about a slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotView<'a, T> {
    pub cached: &'a [T],
    pub busy: bool,
    pub last_used: u64,
    pub reused: u32,
}

/// Picks a free slot for `prompt` and the longest cached prefix any slot holds for it.
///
/// The target is the free slot whose cache is cheapest to overwrite: one that loses nothing
/// (empty, or holding a prefix of this very prompt) first; never a cache that has served other
/// requests' prefixes while an unshared one can go; then the fewest tokens lost; then the least
/// recently used. The prefix itself can come from any slot, busy or not (`seq_cp`), so the target
/// does not have to be the slot that holds it. At least one prompt token is always left to
/// compute, because sampling needs logits.
pub(crate) fn place<T: PartialEq>(slots: &[SlotView<'_, T>], prompt: &[T]) -> Option<Placement> {
    let usable = prompt.len().saturating_sub(1);
    let own = |s: &SlotView<'_, T>| common_prefix(s.cached, prompt).min(usable);
    let target = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.busy)
        .min_by_key(|(_, s)| {
            let lost = s.cached.len() - own(s);
            (lost > 0 && s.reused > 0, lost, s.last_used)
        })
        .map(|(i, _)| i)?;
    let own_reuse = own(&slots[target]);
    let (source, best) = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (i, own(s)))
        .max_by_key(|&(i, n)| (n, i == target))
        .unwrap_or((target, own_reuse));
    Some(if best > own_reuse {
        Placement {
            target,
            source,
            reuse: best,
        }
    } else {
        Placement {
            target,
            source: target,
            reuse: own_reuse,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cached: &[i32], busy: bool, last_used: u64, reused: u32) -> SlotView<'_, i32> {
        SlotView {
            cached,
            busy,
            last_used,
            reused,
        }
    }

    #[test]
    fn no_free_slot_means_no_placement() {
        assert_eq!(place(&[view(&[1, 2], true, 0, 0)], &[1, 2, 3]), None);
    }

    #[test]
    fn extends_the_free_slot_that_already_holds_the_prefix() {
        let p = place(
            &[view(&[9, 9], false, 1, 0), view(&[1, 2, 3], false, 5, 0)],
            &[1, 2, 3, 4],
        )
        .unwrap();
        assert_eq!(
            p,
            Placement {
                target: 1,
                source: 1,
                reuse: 3
            }
        );
    }

    #[test]
    fn shares_a_prefix_from_a_busy_slot_into_an_empty_one() {
        let p = place(
            &[view(&[1, 2, 3, 4, 5], true, 9, 0), view(&[], false, 1, 0)],
            &[1, 2, 3, 6],
        )
        .unwrap();
        assert_eq!(
            p,
            Placement {
                target: 1,
                source: 0,
                reuse: 3
            }
        );
    }

    #[test]
    fn an_unrelated_prompt_does_not_overwrite_a_shared_prefix() {
        // Slot 0 holds a system prompt that other requests reused; slot 1 a one-off prompt.
        let shared = [1, 2, 3, 4, 5, 6];
        let one_off = [1, 7, 7, 7, 7, 7, 7, 7];
        let p = place(
            &[view(&shared, false, 1, 3), view(&one_off, false, 9, 0)],
            &[1, 8, 8],
        )
        .unwrap();
        assert_eq!(p.target, 1);
    }

    #[test]
    fn leaves_one_token_to_compute_for_an_identical_prompt() {
        let p = place(&[view(&[1, 2, 3], false, 0, 0)], &[1, 2, 3]).unwrap();
        assert_eq!(p.reuse, 2);
    }

    #[test]
    fn takes_the_least_recently_used_of_equally_good_slots() {
        let p = place(&[view(&[], false, 7, 0), view(&[], false, 3, 0)], &[1, 2]).unwrap();
        assert_eq!((p.target, p.reuse), (1, 0));
    }
}
