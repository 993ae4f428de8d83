//! Canonical word forms: British/American spelling and a light English stemmer.

use std::sync::LazyLock;

use super::FastMap;

/// English light stemmer plus British/American spelling, so "resetting" = "reset",
/// "cancelled" = "canceled", "centre" = "center".
pub(in crate::verify) fn canonical(word: &str) -> String {
    let word = SPELLING.get(word).copied().unwrap_or(word);
    stem(word)
}

fn stem(word: &str) -> String {
    let w = word;
    let n = w.chars().count();
    if n <= 3 || !w.is_ascii() {
        return w.to_owned();
    }
    let mut s: &str = w;
    let owned;
    if let Some(x) = s.strip_suffix("ies").filter(|_| n > 4) {
        owned = format!("{x}y");
        s = &owned;
    } else if s.ends_with("sses") {
        s = &s[..s.len() - 2];
    } else if let Some(x) = ["xes", "ches", "shes", "zes"]
        .iter()
        .find_map(|suf| s.strip_suffix(suf).map(|x| (x, *suf)))
    {
        s = &s[..x.0.len() + x.1.len() - 2];
    } else if s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s = &s[..s.len() - 1];
    }
    let mut out = s.to_owned();
    // Superlatives ask the same as the plain adjective with "most": "cheapest" / "most cheaply".
    if let Some(x) = out.strip_suffix("est").filter(|x| x.len() >= 4) {
        let mut x = x.to_owned();
        let bytes = x.as_bytes();
        let l = bytes.len();
        if bytes[l - 1] == bytes[l - 2] && !b"lsz".contains(&bytes[l - 1]) {
            x.pop();
        }
        out = x;
    }
    for suffix in ["ing", "ed"] {
        if let Some(x) = out.strip_suffix(suffix) {
            if x.len() >= 3 && x.chars().any(|c| "aeiouy".contains(c)) {
                let mut x = x.to_owned();
                let bytes = x.as_bytes();
                let l = bytes.len();
                if l >= 2
                    && bytes[l - 1] == bytes[l - 2]
                    && !b"lsz".contains(&bytes[l - 1])
                    && !b"aeiou".contains(&bytes[l - 1])
                {
                    x.pop();
                }
                out = x;
                break;
            }
        }
    }
    if out.len() >= 6 {
        if let Some(x) = out.strip_suffix("ly") {
            out = x.to_owned();
        }
    }
    if out.len() > 3 && out.ends_with('e') {
        out.pop();
    }
    out
}

static SPELLING: LazyLock<FastMap<&'static str, &'static str>> = LazyLock::new(|| {
    [
        ("centre", "center"),
        ("centres", "centers"),
        ("licence", "license"),
        ("licences", "licenses"),
        ("colour", "color"),
        ("colours", "colors"),
        ("favourite", "favorite"),
        ("cheque", "check"),
        ("chequebook", "checkbook"),
        ("organise", "organize"),
        ("labour", "labor"),
        ("metre", "meter"),
        ("travelling", "traveling"),
        ("travelled", "traveled"),
        ("cancelled", "canceled"),
        ("cancelling", "canceling"),
        ("programme", "program"),
        ("jewellery", "jewelry"),
        ("aluminium", "aluminum"),
        ("catalogue", "catalog"),
        ("defence", "defense"),
        ("grey", "gray"),
        ("tyre", "tire"),
        ("tyres", "tires"),
        ("mum", "mom"),
        ("analyse", "analyze"),
        ("summarise", "summarize"),
        ("realise", "realize"),
        ("behaviour", "behavior"),
        ("neighbour", "neighbor"),
        ("honour", "honor"),
        ("driving", "driver"),
        ("e-mail", "email"),
        ("ok", "okay"),
    ]
    .into_iter()
    .collect()
});
