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
}

impl Slot {
    pub fn new(seq: i32) -> Self {
        Self {
            seq,
            cached: Vec::new(),
            active: None,
            last_used: 0,
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

/// Picks a free slot for `prompt`: the free slot whose own cache shares the most with it (the
/// least recently used on a tie, so hot prefixes survive), and the longest prefix held by any
/// slot. At least one prompt token is always left to compute, because sampling needs logits.
pub(crate) fn place<T: PartialEq>(caches: &[(&[T], bool, u64)], prompt: &[T]) -> Option<Placement> {
    let usable = prompt.len().saturating_sub(1);
    let target = caches
        .iter()
        .enumerate()
        .filter(|(_, (_, busy, _))| !busy)
        .max_by(|(_, (a, _, used_a)), (_, (b, _, used_b))| {
            common_prefix(a, prompt)
                .cmp(&common_prefix(b, prompt))
                .then(used_b.cmp(used_a))
        })
        .map(|(i, _)| i)?;
    let own = common_prefix(caches[target].0, prompt).min(usable);
    let (source, best) = caches
        .iter()
        .enumerate()
        .map(|(i, (cache, _, _))| (i, common_prefix(cache, prompt).min(usable)))
        .max_by_key(|&(i, n)| (n, i == target))
        .unwrap_or((target, own));
    if best > own {
        Some(Placement {
            target,
            source,
            reuse: best,
        })
    } else {
        Some(Placement {
            target,
            source: target,
            reuse: own,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_free_slot_means_no_placement() {
        let a = [1, 2];
        assert_eq!(place(&[(&a[..], true, 0)], &[1, 2, 3]), None);
    }

    #[test]
    fn prefers_the_free_slot_that_already_holds_the_prefix() {
        let s0 = [9, 9];
        let s1 = [1, 2, 3, 7];
        let p = place(&[(&s0[..], false, 5), (&s1[..], false, 1)], &[1, 2, 3, 4]).unwrap();
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
    fn shares_a_prefix_from_a_busy_slot() {
        let busy = [1, 2, 3, 4, 5];
        let free = [8];
        let p = place(
            &[(&busy[..], true, 9), (&free[..], false, 1)],
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
    fn leaves_one_token_to_compute_for_an_identical_prompt() {
        let s = [1, 2, 3];
        let p = place(&[(&s[..], false, 0)], &[1, 2, 3]).unwrap();
        assert_eq!(p.reuse, 2);
    }

    #[test]
    fn takes_the_least_recently_used_of_equally_good_slots() {
        let empty: [i32; 0] = [];
        let p = place(&[(&empty[..], false, 7), (&empty[..], false, 3)], &[1, 2]).unwrap();
        assert_eq!((p.target, p.reuse), (1, 0));
    }
}
