//! The continuous-batching loop.
//!
//! Every step builds one llama.cpp batch holding one token for each generating sequence plus as
//! many prompt tokens of newly admitted requests as fit, decodes it once, and samples each
//! sequence's next token. A new request therefore joins at the next step instead of waiting for
//! the running ones to finish, and prompt processing never stalls the others' decoding for
//! longer than one batch.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{mpsc as std_mpsc, Arc};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::DecodeError;

use super::slots::{place, Active, Slot, SlotView};
use super::text::{StopMatcher, StopScan, Utf8Joiner};
use super::{ChatEngineConfig, EngineEvent, FinishReason, Finished, Job, Sampling};
use crate::LocalError;

pub(super) fn run(
    backend: &LlamaBackend,
    model: Arc<LlamaModel>,
    config: ChatEngineConfig,
    jobs: std_mpsc::Receiver<Job>,
    ready: std_mpsc::Sender<Result<(), LocalError>>,
) {
    let threads = config.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
        |t| t as i32,
    );
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.context_size))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.batch_size)
        .with_n_seq_max(config.parallel)
        // One cache for all sequences: a shared prefix is stored once and any sequence may grow
        // to the full context instead of a fixed 1/parallel share.
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(LocalError::Load(format!(
                "cannot create a llama.cpp context of {} tokens: {e}",
                config.context_size
            ))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let context_limit = config.context_size.min(model.n_ctx_train().max(1)) as usize;
    let mut engine = Batcher {
        model: &model,
        batch: LlamaBatch::new(config.batch_size as usize, 1),
        batch_size: config.batch_size as usize,
        slots: (0..config.parallel as i32).map(Slot::new).collect(),
        queue: VecDeque::new(),
        step: 0,
        context_limit,
    };
    loop {
        if !engine.intake(&jobs) {
            break;
        }
        engine.admit(&mut ctx);
        engine.step(&mut ctx);
    }
    tracing::debug!("local chat engine stopped");
}

struct Batcher<'m> {
    model: &'m LlamaModel,
    batch: LlamaBatch<'static>,
    batch_size: usize,
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    step: u64,
    context_limit: usize,
}

impl Batcher<'_> {
    /// Collects new jobs, sleeping while there is nothing to do. Returns false once every handle
    /// is gone and no work is left.
    fn intake(&mut self, jobs: &std_mpsc::Receiver<Job>) -> bool {
        let idle = self.slots.iter().all(|s| s.active.is_none());
        if idle && self.queue.is_empty() {
            match jobs.recv() {
                Ok(job) => self.queue.push_back(job),
                Err(_) => return false,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            self.queue.push_back(job);
        }
        true
    }

    fn admit(&mut self, ctx: &mut LlamaContext<'_>) {
        while let Some(job) = self.queue.front() {
            if job.events.is_closed() {
                self.queue.pop_front();
                metrics::gauge!("switchyard_local_queue_depth").decrement(1.0);
                continue;
            }
            let views: Vec<_> = self
                .slots
                .iter()
                .map(|s| SlotView {
                    cached: s.cached.as_slice(),
                    busy: s.active.is_some(),
                    last_used: s.last_used,
                    reused: s.reused,
                })
                .collect();
            let Some(placement) = place(&views, &job.prompt) else {
                break;
            };
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            metrics::gauge!("switchyard_local_queue_depth").decrement(1.0);
            self.step += 1;
            let target_seq = self.slots[placement.target].seq;
            if placement.source == placement.target {
                let _ = ctx.clear_kv_cache_seq(
                    Some(target_seq as u32),
                    Some(placement.reuse as u32),
                    None,
                );
                self.slots[placement.target]
                    .cached
                    .truncate(placement.reuse);
            } else {
                let source = &self.slots[placement.source];
                let prefix = source.cached[..placement.reuse].to_vec();
                let source_seq = source.seq;
                let _ = ctx.clear_kv_cache_seq(Some(target_seq as u32), None, None);
                let _ = ctx.copy_kv_cache_seq(
                    source_seq,
                    target_seq,
                    Some(0),
                    Some(placement.reuse as u32),
                );
                self.slots[placement.target].cached = prefix;
                self.slots[placement.target].reused = 0;
            }
            // A prefix worth sharing: more than the chat template's few opening tokens.
            if placement.reuse >= 16 {
                self.slots[placement.source].reused += 1;
            }
            metrics::counter!("switchyard_local_prompt_tokens_total")
                .increment(job.prompt.len() as u64);
            metrics::counter!("switchyard_local_prompt_tokens_reused_total")
                .increment(placement.reuse as u64);
            let slot = &mut self.slots[placement.target];
            slot.last_used = self.step;
            slot.active = Some(Active {
                sampler: sampler_for(&job.sampling),
                stop: StopMatcher::new(job.sampling.stop.clone()),
                prompt: job.prompt,
                prefilled: placement.reuse,
                cached_prompt_tokens: placement.reuse as u32,
                sampling: job.sampling,
                events: job.events,
                next_token: None,
                logits_at: None,
                generated: 0,
                utf8: Utf8Joiner::default(),
                admitted: self.step,
            });
        }
        let active = self.slots.iter().filter(|s| s.active.is_some()).count();
        metrics::gauge!("switchyard_local_active_sequences").set(active as f64);
    }

    fn step(&mut self, ctx: &mut LlamaContext<'_>) {
        // Cancelled requests (the client went away) give their slot back before any compute.
        for slot in &mut self.slots {
            if slot.active.as_ref().is_some_and(|a| a.events.is_closed()) {
                slot.active = None;
            }
        }
        let undo = self.fill_batch();
        if undo.is_empty() {
            return;
        }
        match ctx.decode(&mut self.batch) {
            Ok(()) => self.sample_all(ctx),
            Err(err) => {
                for (slot, cached_len, prefilled) in undo {
                    let s = &mut self.slots[slot];
                    s.cached.truncate(cached_len);
                    if let Some(a) = s.active.as_mut() {
                        a.prefilled = prefilled;
                        a.logits_at = None;
                    }
                    let _ =
                        ctx.clear_kv_cache_seq(Some(s.seq as u32), Some(cached_len as u32), None);
                }
                self.recover(ctx, err);
            }
        }
    }

    /// Puts one token per generating sequence, then prompt chunks, into the batch. Returns what
    /// to roll back if the decode fails: (slot, cached length, prefilled) before this step.
    fn fill_batch(&mut self) -> Vec<(usize, usize, usize)> {
        self.batch.clear();
        let mut undo = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.logits_at = None;
            let Some(token) = active.next_token.take() else {
                continue;
            };
            undo.push((i, slot.cached.len(), active.prefilled));
            let pos = slot.cached.len() as i32;
            if self.batch.add(token, pos, &[slot.seq], true).is_err() {
                active.next_token = Some(token);
                undo.pop();
                continue;
            }
            slot.cached.push(token);
            active.logits_at = Some(self.batch.n_tokens() - 1);
        }
        // Oldest admissions first, so a burst of new prompts is served in arrival order.
        let mut prefilling: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .active
                    .as_ref()
                    .is_some_and(Active::is_prefilling)
            })
            .collect();
        prefilling.sort_by_key(|&i| self.slots[i].active.as_ref().map_or(0, |a| a.admitted));
        for i in prefilling {
            let room = self
                .batch_size
                .saturating_sub(self.batch.n_tokens() as usize);
            if room == 0 {
                break;
            }
            let slot = &mut self.slots[i];
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            undo.push((i, slot.cached.len(), active.prefilled));
            let end = (active.prefilled + room).min(active.prompt.len());
            for k in active.prefilled..end {
                let last = k + 1 == active.prompt.len();
                let pos = slot.cached.len() as i32;
                if self
                    .batch
                    .add(active.prompt[k], pos, &[slot.seq], last)
                    .is_err()
                {
                    break;
                }
                slot.cached.push(active.prompt[k]);
                active.prefilled = k + 1;
                if last {
                    active.logits_at = Some(self.batch.n_tokens() - 1);
                }
            }
        }
        undo
    }

    fn sample_all(&mut self, ctx: &LlamaContext<'_>) {
        let vocab = self.model.vocab();
        let mut generated = 0u64;
        for slot in &mut self.slots {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            let Some(at) = active.logits_at.take() else {
                continue;
            };
            let token = active.sampler.sample(ctx, at);
            let outcome = if vocab.is_eog(token) {
                Some(FinishReason::Stop)
            } else {
                generated += 1;
                active.generated += 1;
                let piece = vocab.token_to_piece(token, false, None);
                let text = active.utf8.push(&piece);
                let (emit, stopped) = match active.stop.push(&text) {
                    StopScan::Emit(t) => (t, false),
                    StopScan::Stopped(t) => (t, true),
                };
                if !emit.is_empty() && active.events.send(EngineEvent::Text(emit)).is_err() {
                    slot.active = None;
                    continue;
                }
                if stopped {
                    Some(FinishReason::Stop)
                } else if active.generated >= active.sampling.max_tokens
                    || slot.cached.len() + 1 >= self.context_limit
                {
                    Some(FinishReason::Length)
                } else {
                    active.next_token = Some(token);
                    None
                }
            };
            if let Some(reason) = outcome {
                if let Some(mut done) = slot.active.take() {
                    if reason == FinishReason::Length {
                        let mut tail = done.utf8.finish();
                        tail.push_str(&done.stop.finish());
                        if !tail.is_empty() {
                            let _ = done.events.send(EngineEvent::Text(tail));
                        }
                    }
                    let _ = done.events.send(EngineEvent::Done(Finished {
                        reason,
                        prompt_tokens: done.prompt.len() as u32,
                        cached_prompt_tokens: done.cached_prompt_tokens,
                        completion_tokens: done.generated,
                    }));
                }
            }
        }
        metrics::counter!("switchyard_local_generated_tokens_total").increment(generated);
    }

    /// A failed decode: out of KV cells means an idle slot's cached prefix must go; if none is
    /// left to drop, the newest request gives way (with a retryable error) so the rest progress.
    fn recover(&mut self, ctx: &mut LlamaContext<'_>, err: DecodeError) {
        if err == DecodeError::NoKvCacheSlot {
            // One idle cache at a time, the least valuable first (never reused, then least
            // recently used): a shared system prompt survives while one-off prompts go.
            let victim = self
                .slots
                .iter_mut()
                .filter(|s| s.active.is_none() && !s.cached.is_empty())
                .min_by_key(|s| (s.reused, s.last_used));
            if let Some(slot) = victim {
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                slot.cached.clear();
                slot.reused = 0;
                return;
            }
        }
        let newest = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.active.as_ref().map(|a| (i, a.admitted)))
            .max_by_key(|&(_, admitted)| admitted)
            .map(|(i, _)| i);
        let Some(i) = newest else { return };
        let slot = &mut self.slots[i];
        if let Some(victim) = slot.active.take() {
            tracing::warn!(error = %err, "local engine decode failed; dropping the newest request");
            let _ = victim.events.send(EngineEvent::Failed(format!(
                "the local engine is out of capacity ({err}); retry later"
            )));
        }
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        slot.cached.clear();
    }
}

fn sampler_for(sampling: &Sampling) -> LlamaSampler {
    if sampling.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    // top_k first keeps the per-token cost independent of the vocabulary size, as llama-server
    // does by default.
    LlamaSampler::chain_simple([
        LlamaSampler::top_k(40),
        LlamaSampler::top_p(sampling.top_p, 1),
        LlamaSampler::temp(sampling.temperature),
        LlamaSampler::dist(sampling.seed),
    ])
}
