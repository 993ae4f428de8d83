//! Word lists: fixed vocabularies the tokenizer and the rules consult, and the hash they
//! are stored with.

mod entities;
mod function_words;
mod qualifiers;
mod quantities;
mod stem;
mod thesaurus;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub(super) use self::entities::ENTITIES;
pub(super) use self::function_words::{GENERIC, NEGATIONS, STOPWORDS};
pub(super) use self::qualifiers::{
    is_asymmetric, is_connective, is_symmetric, AUDIENCE, DIRECTIONAL, ORDER, SCOPE,
};
pub(super) use self::quantities::{date_word, number_word, roman, unit_of, unit_word, TIME_SPANS};
pub(super) use self::stem::canonical;
pub(super) use self::thesaurus::{antonyms_of, synonym, OPPOSITES};

/// FxHash (as in rustc): the tables are fixed words looked up once or twice per token, where
/// SipHash's flood resistance buys nothing and costs most of the parse time.
#[derive(Default, Clone, Copy)]
pub(super) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type FastSet<T> = HashSet<T, BuildHasherDefault<Fx>>;
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
