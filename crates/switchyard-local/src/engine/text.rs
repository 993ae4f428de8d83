//! Turning sampled tokens into text that is safe to stream: whole UTF-8 characters only, and
//! never a byte of a stop sequence.

/// Buffers the bytes of a character that a token split in two.
#[derive(Debug, Default)]
pub(crate) struct Utf8Joiner {
    pending: Vec<u8>,
}

impl Utf8Joiner {
    /// Appends a token's bytes; returns every complete character so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_owned();
                self.pending.clear();
                out
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // A sequence that can never complete is replaced rather than held forever.
                if e.error_len().is_some() {
                    let out = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return out;
                }
                let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                out
            }
        }
    }

    /// Whatever is left at the end of generation.
    pub(crate) fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// What to do with newly generated text, given the request's stop sequences.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StopScan {
    /// Text that can be sent now; the rest is held in case it starts a stop sequence.
    Emit(String),
    /// A stop sequence was found: send this text (everything before it) and finish.
    Stopped(String),
}

/// Holds back only as much text as could be the beginning of a stop sequence.
#[derive(Debug, Default)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> StopScan {
        if self.stops.is_empty() {
            return StopScan::Emit(text.to_owned());
        }
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let out = self.held[..at].to_owned();
            self.held.clear();
            return StopScan::Stopped(out);
        }
        let keep = self.partial_suffix_len();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        StopScan::Emit(out)
    }

    /// Text held back when generation ends for another reason.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop sequence.
    fn partial_suffix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start)
                    && stop.is_char_boundary(len)
                    && stop.as_bytes()[..len] == self.held.as_bytes()[start..]
                {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_characters_split_across_tokens() {
        let mut j = Utf8Joiner::default();
        let euro = "€".as_bytes();
        assert_eq!(j.push(b"a"), "a");
        assert_eq!(j.push(&euro[..1]), "");
        assert_eq!(j.push(&euro[1..]), "€");
        assert_eq!(j.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(j.push(&euro[..2]), "");
        assert_eq!(j.finish(), "\u{fffd}");
    }

    #[test]
    fn without_stops_everything_is_emitted() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("hello"), StopScan::Emit("hello".into()));
    }

    #[test]
    fn holds_back_only_a_possible_stop_prefix() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("the E"), StopScan::Emit("the ".into()));
        assert_eq!(m.push("x"), StopScan::Emit("Ex".into()));
        assert_eq!(m.push("done EN"), StopScan::Emit("done ".into()));
        assert_eq!(m.push("D tail"), StopScan::Stopped("".into()));
    }

    #[test]
    fn stops_at_the_earliest_stop_sequence() {
        let mut m = StopMatcher::new(vec!["\n\n".into(), "Q:".into()]);
        assert_eq!(
            m.push("A: Paris Q: next\n\n"),
            StopScan::Stopped("A: Paris ".into())
        );
    }

    #[test]
    fn held_text_is_released_at_the_end() {
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        assert_eq!(m.push("ST"), StopScan::Emit("".into()));
        assert_eq!(m.finish(), "ST");
    }

    #[test]
    fn multibyte_text_near_a_stop_is_safe() {
        let mut m = StopMatcher::new(vec!["é!".into()]);
        assert_eq!(m.push("café"), StopScan::Emit("caf".into()));
        assert_eq!(m.push("!"), StopScan::Stopped("".into()));
    }
}
