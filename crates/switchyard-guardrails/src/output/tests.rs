use super::*;

fn scanner_with(pii: Action, secrets: Action, terms: &[&str], banned: Action) -> OutputScanner {
    let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
    match OutputScanner::new(pii, secrets, &terms, banned) {
        Ok(Some(s)) => s,
        Ok(None) => panic!("scanner unexpectedly disabled"),
        Err(e) => panic!("{e}"),
    }
}

fn scanner(pii: Action, secrets: Action, banned: Action) -> OutputScanner {
    scanner_with(pii, secrets, &["project titan"], banned)
}

const MIXED: &str = "Sure! Card 4111 1111 1111 1111, mail jane@example.com, SSN 123-45-6789, \
    call +44 20 7946 0958 or use key AKIAIOSFODNN7EXAMPLE. Project Titan ships soon. \
    Order 12345678 costs $1,299.00.";

const MIXED_REDACTED: &str = "Sure! Card [CREDIT_CARD], mail [EMAIL], SSN [US_SSN], \
    call [PHONE] or use key [API_KEY]. [BANNED] ships soon. Order 12345678 costs $1,299.00.";

const CLEAN: &str = "Your order 12345678 ships on 2024-03-15 for $1,299.00 — danke, Jürgen! \
    Version 1.2.3 of the app fixes it; your account [EMAIL_1] and card [CREDIT_CARD] stay \
    on file. Call us anytime 😀.";

struct Run {
    text: String,
    findings: Vec<OutputFinding>,
    blocked: Option<OutputFinding>,
}

fn run(stream: &mut OutputStream, parts: &[&str]) -> Run {
    let mut r = Run {
        text: String::new(),
        findings: Vec::new(),
        blocked: None,
    };
    let mut steps: Vec<OutputStep> = parts.iter().map(|p| stream.push(p)).collect();
    steps.push(stream.finish());
    for step in steps {
        r.text += &step.emit;
        r.findings.extend(step.findings);
        if r.blocked.is_none() {
            r.blocked = step.blocked;
        } else {
            assert!(step.emit.is_empty(), "emitted after block");
        }
    }
    r
}

/// Every split of `text` into three chunks (empty ones included, so also every two-way split).
fn splits(text: &str) -> impl Iterator<Item = [&str; 3]> + '_ {
    let cuts: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    let pairs: Vec<(usize, usize)> = cuts
        .iter()
        .flat_map(|&a| cuts.iter().filter(move |&&b| b >= a).map(move |&b| (a, b)))
        .collect();
    pairs
        .into_iter()
        .map(move |(a, b)| [&text[..a], &text[a..b], &text[b..]])
}

fn chars(text: &str) -> Vec<&str> {
    text.char_indices()
        .map(|(i, c)| &text[i..i + c.len_utf8()])
        .collect()
}

#[test]
fn nothing_to_do_gives_no_scanner() {
    let none = |pii, secrets, terms: &[&str], banned| {
        let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
        matches!(OutputScanner::new(pii, secrets, &terms, banned), Ok(None))
    };
    assert!(none(Action::Off, Action::Off, &[], Action::Block));
    assert!(none(Action::Off, Action::Off, &["titan"], Action::Off));
    assert!(none(Action::Off, Action::Off, &["", "  "], Action::Redact));
    assert!(!none(Action::Off, Action::Off, &["titan"], Action::Detect));
    assert!(!none(Action::Off, Action::Detect, &[], Action::Block));
}

#[test]
fn screen_redacts_with_unnumbered_placeholders() {
    let v = scanner(Action::Redact, Action::Redact, Action::Redact).screen(MIXED);
    assert_eq!(v.redacted.as_deref(), Some(MIXED_REDACTED));
    let kinds: Vec<&str> = v.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            "CREDIT_CARD",
            "EMAIL",
            "US_SSN",
            "PHONE",
            "API_KEY",
            "BANNED_TERM"
        ]
    );
    assert!(v.findings.iter().all(|f| f.action == Action::Redact));
    assert!(v.blocked.is_none());
    let dbg = format!("{:?}", v.findings);
    for raw in ["4111", "jane", "6789", "7946", "AKIA", "Titan"] {
        assert!(!dbg.contains(raw), "{raw} leaked into {dbg}");
    }
    // Redacting the redacted answer again finds nothing: placeholders are stable.
    let again = scanner(Action::Redact, Action::Redact, Action::Redact).screen(MIXED_REDACTED);
    assert!(again.findings.is_empty() && again.redacted.is_none());
}

#[test]
fn pii_and_secret_actions_are_separate() {
    let v = scanner(Action::Detect, Action::Block, Action::Off).screen(MIXED);
    assert_eq!(v.redacted, None);
    assert_eq!(v.findings.len(), 5);
    assert_eq!(
        v.blocked,
        Some(OutputFinding {
            kind: "API_KEY",
            action: Action::Block,
            score: 0.97
        })
    );

    let v = scanner(Action::Off, Action::Redact, Action::Detect).screen(MIXED);
    let got: Vec<_> = v.findings.iter().map(|f| (f.kind, f.action)).collect();
    assert_eq!(
        got,
        [("API_KEY", Action::Redact), ("BANNED_TERM", Action::Detect)]
    );
    let red = v.redacted.unwrap_or_default();
    assert!(red.contains("4111 1111") && red.contains("[API_KEY]") && red.contains("Titan"));
}

#[test]
fn placeholders_are_never_flagged() {
    let s = scanner_with(
        Action::Redact,
        Action::Redact,
        &["email", "banned", "password", "api"],
        Action::Block,
    );
    let text = "Contact [EMAIL_1] or [EMAIL], see [BANNED], [PASSWORD_2] and [API_KEY].";
    let v = s.screen(text);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(v.redacted.is_none() && v.blocked.is_none());
    // The same words outside brackets are still banned.
    assert!(s.screen("please email me").blocked.is_some());
    assert!(s.screen("[email] is lower case").blocked.is_some());
}

#[test]
fn ordinary_numbers_and_clean_text_pass() {
    let v = scanner(Action::Block, Action::Block, Action::Block).screen(CLEAN);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(v.redacted.is_none());
}

#[test]
fn clean_answer_streams_byte_for_byte_for_every_split() {
    let s = scanner(Action::Block, Action::Block, Action::Block);
    for parts in splits(CLEAN) {
        let r = run(&mut s.stream(), &parts);
        assert_eq!(r.text, CLEAN, "split {parts:?}");
        assert!(r.findings.is_empty() && r.blocked.is_none());
    }
    let r = run(&mut s.stream(), &chars(CLEAN));
    assert_eq!(r.text, CLEAN);
}

#[test]
fn stream_matches_screen_for_every_split() {
    for action in [Action::Redact, Action::Detect] {
        let s = scanner(action, action, action);
        let whole = s.screen(MIXED);
        let expected = whole.redacted.as_deref().unwrap_or(MIXED);
        for parts in splits(MIXED) {
            let r = run(&mut s.stream(), &parts);
            assert_eq!(r.text, expected, "split {parts:?}");
            assert_eq!(r.findings, whole.findings, "split {parts:?}");
            assert!(r.blocked.is_none());
        }
        let r = run(&mut s.stream(), &chars(MIXED));
        assert_eq!((r.text.as_str(), &r.findings), (expected, &whole.findings));
    }
}

#[test]
fn stream_block_never_emits_the_value() {
    let s = scanner(Action::Redact, Action::Block, Action::Redact);
    let whole = s.screen(MIXED);
    let before_block =
        "Sure! Card [CREDIT_CARD], mail [EMAIL], SSN [US_SSN], call [PHONE] or use key ";
    let key = "AKIAIOSFODNN7EXAMPLE";
    for parts in splits(MIXED) {
        let mut stream = s.stream();
        let r = run(&mut stream, &parts);
        assert_eq!(r.blocked, whole.blocked, "split {parts:?}");
        assert!(!r.text.contains("AKIA"), "split {parts:?}: {}", r.text);
        assert!(
            before_block.starts_with(&r.text),
            "split {parts:?}: {}",
            r.text
        );
        assert_eq!(r.findings[..], whole.findings[..r.findings.len()]);
        assert!(stream.is_blocked());
        assert_eq!(stream.push(key), OutputStep::default());
    }
}

#[test]
fn stream_forwards_all_but_a_short_tail() {
    let s = scanner(Action::Redact, Action::Redact, Action::Redact);
    let prose = "The quick brown fox jumps over the lazy dog again and again. ".repeat(40);
    let mut stream = s.stream();
    let step = stream.push(&prose);
    assert!(step.findings.is_empty());
    // Trailing space, so only the fixed hold (rounded back to a word start) is kept.
    assert!(
        stream.held_bytes() <= HOLD + 8,
        "held {}",
        stream.held_bytes()
    );
    assert_eq!(step.emit.len() + stream.held_bytes(), prose.len());
    assert!(prose.starts_with(&step.emit));
    // A long token keeps everything from its start.
    let token = "x".repeat(500);
    let held_before = stream.held_bytes();
    let step = stream.push(&token);
    assert!(stream.held_bytes() >= token.len() + HOLD);
    assert_eq!(
        step.emit.len() + stream.held_bytes(),
        held_before + token.len()
    );
}

#[test]
fn context_words_survive_emission() {
    // The date is judged after "born on" has already been forwarded; the lookbehind keeps it.
    let s = scanner(Action::Redact, Action::Off, Action::Off);
    let text = format!(
        "Notes: I was born on 12 March 1985, and {} the end.",
        "we talked about many unrelated things ".repeat(5)
    );
    let whole = s.screen(&text);
    assert_eq!(whole.findings.len(), 1);
    let r = run(&mut s.stream(), &chars(&text));
    assert_eq!(Some(r.text), whole.redacted);
    assert_eq!(r.findings, whole.findings);
}

#[test]
fn private_key_is_held_until_its_end_line() {
    let s = scanner(Action::Off, Action::Redact, Action::Off);
    // Encryption headers end the truncated-key pattern early, so only the explicit hold keeps
    // the body back until the END line arrives.
    let body = format!(
        "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F2A\n\n{}",
        "MIIEowIBAAKCAQEA7abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU\n".repeat(6)
    );
    let text = format!(
        "Here it is:\n-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\nDone, \
         keep it safe and never share it with anyone at all please."
    );
    let mut stream = s.stream();
    let mut out = String::new();
    for piece in text.as_bytes().chunks(7) {
        let step = stream.push(std::str::from_utf8(piece).unwrap_or(""));
        assert!(!step.emit.contains("MIIE") && !step.emit.contains("BEGIN"));
        out += &step.emit;
    }
    out += &stream.finish().emit;
    assert_eq!(
        out,
        "Here it is:\n[PRIVATE_KEY]\nDone, keep it safe and never share it with anyone at all please."
    );
    assert_eq!(Some(out), s.screen(&text).redacted);
}

#[test]
fn held_text_is_capped() {
    let s = scanner(Action::Redact, Action::Redact, Action::Redact);
    let text = "a".repeat(40 * 1024);
    let mut stream = s.stream();
    let mut out = String::new();
    for piece in text.as_bytes().chunks(100) {
        out += &stream.push(std::str::from_utf8(piece).unwrap_or("")).emit;
        assert!(stream.held_bytes() <= MAX_HELD + 100);
    }
    assert!(out.len() >= text.len() - MAX_HELD - 100);
    out += &stream.finish().emit;
    assert_eq!(out, text);
}

#[test]
fn handles_are_shareable_and_streams_owned() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    fn owned<T: Send + Sync + 'static>() {}
    shared::<OutputScanner>();
    owned::<OutputStream>();
    let s = scanner(Action::Redact, Action::Redact, Action::Redact);
    let mut stream = s.clone().stream();
    drop(s);
    let step = stream.push("mail jane@example.com ");
    let done = stream.finish();
    assert_eq!(step.emit + &done.emit, "mail [EMAIL] ");
    assert!(!format!("{stream:?}").contains("jane"));
}

#[test]
fn forced_release_judges_a_match_it_would_cut_through() {
    let s = scanner(Action::Redact, Action::Redact, Action::Redact);
    let pad = "=".repeat(MAX_HELD - 84);
    let text = format!("{pad}AKIAIOSFODNN7EXAMPLE{}", "=".repeat(200));
    let mut stream = s.stream();
    let pieces: Vec<&str> = text
        .as_bytes()
        .chunks(50)
        .map(|p| std::str::from_utf8(p).unwrap_or(""))
        .collect();
    let r = run(&mut stream, &pieces);
    let whole = s.screen(&text);
    assert_eq!(Some(r.text), whole.redacted);
    assert_eq!(r.findings, whole.findings);
    assert_eq!(r.findings.len(), 1);
}
