use super::*;

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(Role::User, text)]
}

fn feature(f: &Features, name: &str) -> f32 {
    let i = FEATURE_NAMES.iter().position(|n| *n == name).unwrap();
    f[i]
}

#[test]
fn names_are_unique() {
    let mut names = FEATURE_NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FEATURE_COUNT);
}

#[test]
fn all_features_in_unit_range() {
    let ex = Extractor::new().unwrap();
    let long = "Design a distributed rate limiter. It must handle 1M rps. ".repeat(400);
    for text in [
        "",
        "hi",
        long.as_str(),
        "```\nfn main() {}\n```",
        "¿Qué hora es?",
    ] {
        for v in ex.extract(&user(text)) {
            assert!((0.0..=1.0).contains(&v), "{v} for {text:?}");
        }
    }
}

#[test]
fn cues_respect_word_boundaries() {
    let ex = Extractor::new().unwrap();
    let f = ex.extract(&user("The explanation of this"));
    assert_eq!(
        feature(&f, "reasoning_verbs"),
        0.0,
        "plan inside explanation"
    );
    let f = ex.extract(&user("Optimization plan for the cache"));
    assert!(feature(&f, "reasoning_verbs") > 0.5);
}

#[test]
fn pasted_text_is_payload() {
    let ex = Extractor::new().unwrap();
    let para = "our distributed architecture must analyze throughput and latency ".repeat(6);
    let inline = ex.extract(&user(&format!("Fix the typos: {para}")));
    let asked = ex.extract(&user(&para));
    assert!(feature(&inline, "instruction_tokens") < feature(&asked, "instruction_tokens"));
    assert!(feature(&inline, "system_design_terms") < feature(&asked, "system_design_terms"));
}

#[test]
fn requested_length_and_lists() {
    let ex = Extractor::new().unwrap();
    let f = ex.extract(&user("Write a 2,000-word essay.\n1. intro\n2. body\n- end"));
    assert!(feature(&f, "requested_length") > 0.5);
    assert!(feature(&f, "list_items") > 0.4);
    let f = ex.extract(&user("Answer in 50 words"));
    assert_eq!(feature(&f, "requested_length"), 0.0);
}

#[test]
fn simple_question_form() {
    let ex = Extractor::new().unwrap();
    let f = ex.extract(&user("¿Qué hora es en Madrid?"));
    assert_eq!(feature(&f, "simple_question_form"), 1.0);
    let f = ex.extract(&user("Write me a story about a cat"));
    assert_eq!(feature(&f, "simple_question_form"), 0.0);
}
