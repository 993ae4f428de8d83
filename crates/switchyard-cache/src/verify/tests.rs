use super::*;

/// Similarity high enough that only the words decide, as for real traps (0.95-0.99).
fn judge(a: &str, b: &str) -> Verdict {
    let forward = verify(a, b, 0.97);
    let backward = verify(b, a, 0.97);
    assert_eq!(
        forward.accept, backward.accept,
        "asymmetric verdict for {a:?} / {b:?}"
    );
    forward
}

fn accepted(a: &str, b: &str) {
    let v = judge(a, b);
    assert!(v.accept, "rejected ({}) {a:?} / {b:?}", v.reason);
}

fn rejected(a: &str, b: &str, reason: &str) {
    let v = judge(a, b);
    assert!(!v.accept, "accepted {a:?} / {b:?}");
    assert_eq!(v.reason, reason, "{a:?} / {b:?}");
}

#[test]
fn the_similarity_gate_comes_first() {
    let same = "How do I reset my password?";
    assert_eq!(verify(same, same, 0.5).reason, "below_threshold");
    assert_eq!(verify(same, same, f32::NAN).reason, "below_threshold");
    assert_eq!(verify(same, same, DEFAULT_MIN_SIMILARITY), Verdict::ACCEPT);
    assert_eq!(verify_at(same, same, 0.85, 0.9).reason, "below_threshold");
}

#[test]
fn rewordings_are_accepted() {
    accepted(
        "How do I reset my password?",
        "How can I reset my password?",
    );
    accepted(
        "How do I reset my password?",
        "What's the process for resetting my password?",
    );
    accepted(
        "What is the capital of Australia?",
        "Which city is the capital of Australia?",
    );
    accepted(
        "Do I need a visa to visit Canada?",
        "do i need a visa for canada",
    );
    accepted(
        "Is there a fee for transfers over £50?",
        "Do transfers over £50 have a fee?",
    );
    accepted(
        "Is there a fee for transfers over £50?",
        "Do you charge a fee on transfers above £50?",
    );
    accepted(
        "Hi! Quick question: how do I reset my router?",
        "How do I reset my router?",
    );
    accepted(
        "When does the new semester start?",
        "When does the new semester begin?",
    );
    accepted(
        "How do I connect my printer to Wi-Fi?",
        "How can I connect my printer to wifi?",
    );
    accepted(
        "Where can I buy a used car?",
        "Where can I purchase a second-hand car?",
    );
    accepted("I can't log in to the app", "I cannot log into the app");
    accepted(
        "Why won't my laptop turn on?",
        "Why does my laptop not turn on?",
    );
}

#[test]
fn numbers_are_normalised_before_comparing() {
    accepted(
        "Is there a fee for transfers over $1,000?",
        "Is there a fee for transfers over $1000?",
    );
    accepted("Book a table for two people", "Book a table for 2 people");
    accepted("Set an alarm for 7am", "Set an alarm for 7:00 am");
    accepted("Move my meeting to 3pm", "Move my meeting to 3 pm");
    accepted("Set an alarm for 7pm", "Set an alarm for 19:00");
    accepted("What's 15% of 80?", "What is 15 percent of 80?");
    accepted(
        "How much is 50 dollars in euros?",
        "How much is $50 in euros?",
    );
    accepted(
        "When did World War II end?",
        "When did the Second World War end?",
    );
    accepted("Can I use 1,5 litres?", "Can I use 1.5 litres?");
}

#[test]
fn different_numbers_are_rejected() {
    rejected(
        "Is there a fee for transfers over £50?",
        "Is there a fee for transfers over £500?",
        "numbers_differ",
    );
    rejected(
        "Set an alarm for 7am",
        "Set an alarm for 7pm",
        "numbers_differ",
    );
    rejected(
        "Book a table for two at 7pm",
        "Book a table for four at 7pm",
        "numbers_differ",
    );
    rejected(
        "Who was the first president of the United States?",
        "Who was the second president of the United States?",
        "numbers_differ",
    );
    rejected(
        "Who won the World Cup in 2018?",
        "Who won the World Cup in 2022?",
        "numbers_differ",
    );
    rejected(
        "What does HTTP 401 mean?",
        "What does HTTP 403 mean?",
        "numbers_differ",
    );
}

#[test]
fn different_units_are_rejected() {
    rejected(
        "How much is 50 dollars in euros?",
        "How much is 50 pounds in euros?",
        "units_differ",
    );
    rejected(
        "Can I give ibuprofen to a 6-month-old baby?",
        "Can I give ibuprofen to a 6-year-old baby?",
        "units_differ",
    );
    rejected(
        "How many miles is a marathon?",
        "How many kilometers is a marathon?",
        "units_differ",
    );
}

#[test]
fn negation_must_agree() {
    rejected(
        "Is Pluto a planet?",
        "Is Pluto not a planet?",
        "negation_differs",
    );
    rejected(
        "Why don't cats like water?",
        "Why do cats like water?",
        "negation_differs",
    );
    rejected(
        "Can I return an item without a receipt?",
        "Can I return an item with a receipt?",
        "negation_differs",
    );
    rejected(
        "Ist das Museum geöffnet?",
        "Ist das Museum nicht geöffnet?",
        "negation_differs",
    );
}

#[test]
fn swapped_directions_are_rejected() {
    rejected(
        "How do I transfer money from savings to current account?",
        "How do I transfer money from current to savings account?",
        "direction_swapped",
    );
    rejected(
        "How do I convert a string to an integer in JavaScript?",
        "How do I convert an integer to a string in JavaScript?",
        "direction_swapped",
    );
    rejected(
        "Is Rust faster than Go?",
        "Is Go faster than Rust?",
        "direction_swapped",
    );
    rejected(
        "Did Alice send the money to Bob?",
        "Did Bob send the money to Alice?",
        "direction_swapped",
    );
    rejected(
        "What is 2 to the power of 10?",
        "What is 10 to the power of 2?",
        "direction_swapped",
    );
    rejected(
        "Does China export more than it imports?",
        "Does China import more than it exports?",
        "direction_swapped",
    );
    rejected(
        "Wie viel kostet ein Ticket von Berlin nach München?",
        "Wie viel kostet ein Ticket von München nach Berlin?",
        "direction_swapped",
    );
    rejected(
        "Transfer 500 euros to my sister",
        "Transfer 500 euros from my sister",
        "direction_differs",
    );
}

#[test]
fn reordering_that_keeps_the_roles_is_accepted() {
    accepted(
        "How do I get to NYC from Boston?",
        "How do I get from Boston to NYC?",
    );
    accepted(
        "What is the distance between Paris and Lyon?",
        "What is the distance between Lyon and Paris?",
    );
}

#[test]
fn antonyms_are_rejected() {
    rejected(
        "How do I enable two-factor authentication?",
        "How do I disable two-factor authentication?",
        "antonym",
    );
    rejected(
        "How do I turn on email notifications?",
        "How do I turn off email notifications?",
        "antonym",
    );
    rejected(
        "Is the museum open on Mondays?",
        "Is the museum closed on Mondays?",
        "antonym",
    );
    rejected(
        "How do I lock my account?",
        "How do I unlock my account?",
        "antonym",
    );
    rejected(
        "What is the check-in time?",
        "What is the check-out time?",
        "antonym",
    );
    rejected(
        "Is the fee for transfers over £50?",
        "Is the fee for transfers under £50?",
        "antonym",
    );
    rejected(
        "How do I check if a number is even in C?",
        "How do I check if a number is odd in C?",
        "antonym",
    );
}

#[test]
fn dates_must_match() {
    rejected(
        "Is the office open on Saturday?",
        "Is the office open on Sunday?",
        "date_differs",
    );
    rejected(
        "What's the weather in Rome in October?",
        "What's the weather in Rome in April?",
        "date_differs",
    );
    rejected(
        "Cancel my 9am meeting tomorrow",
        "Cancel my 9am meeting today",
        "date_differs",
    );
    rejected(
        "Book a dentist appointment in May",
        "Book a dentist appointment in March",
        "date_differs",
    );
    // "may" the verb is no month.
    accepted(
        "May I bring my dog to the office?",
        "Can I bring my dog to the office?",
    );
}

#[test]
fn names_must_match() {
    rejected(
        "What is the capital of Australia?",
        "What is the capital of Austria?",
        "entity_differs",
    );
    rejected(
        "do i need a visa for canada",
        "do i need a visa for mexico",
        "entity_differs",
    );
    rejected(
        "How do I export my data as CSV?",
        "How do I export my data as JSON?",
        "entity_differs",
    );
    rejected(
        "Is this jacket available in size M?",
        "Is this jacket available in size L?",
        "entity_differs",
    );
    rejected(
        "Schedule a call with Anna on Tuesday",
        "Schedule a call with Maria on Tuesday",
        "entity_differs",
    );
    accepted(
        "What's the weather in paris tomorrow?",
        "What's the weather in Paris tomorrow?",
    );
    accepted(
        "How do I get to NYC from Boston?",
        "How do I get to New York City from Boston?",
    );
    accepted(
        "Do I need a visa for the UK?",
        "Do I need a visa for the United Kingdom?",
    );
    accepted(
        "How do I enable 2FA?",
        "How do I enable two-factor authentication?",
    );
}

#[test]
fn scope_and_order_words_must_match() {
    rejected(
        "Is the discount valid on all items?",
        "Is the discount valid on sale items?",
        "scope_differs",
    );
    rejected(
        "What is a normal resting heart rate?",
        "What is a normal resting heart rate for a child?",
        "scope_differs",
    );
    rejected(
        "Play the next episode",
        "Play the previous episode",
        "antonym",
    );
    rejected("Show my last order", "Show my order", "order_differs");
    rejected(
        "Are dogs allowed in the park?",
        "Are dogs allowed off-leash in the park?",
        "direction_differs",
    );
}

#[test]
fn swapped_content_words_are_rejected() {
    rejected(
        "Does my insurance cover dental work?",
        "Does my insurance cover vision work?",
        "content_words_differ",
    );
    rejected(
        "How do I reverse a list in Python?",
        "How do I sort a list in Python?",
        "content_words_differ",
    );
    rejected(
        "user: Book a table at the pizzeria.\nassistant: Done, booked for 8pm.\nuser: cancel it",
        "user: Order a taxi to the airport.\nassistant: Done, the taxi comes at 8pm.\nuser: cancel it",
        "content_words_differ",
    );
}

#[test]
fn the_last_turn_of_a_conversation_is_compared_on_its_own() {
    let history = "user: I ordered a blue lamp and a desk.\nassistant: I see both orders.\n";
    rejected(
        &format!("{history}user: Cancel the lamp."),
        &format!("{history}user: Cancel the desk."),
        "content_words_differ",
    );
    accepted(
        &format!("{history}user: Can you cancel the lamp?"),
        &format!("{history}user: Please cancel the lamp."),
    );
}

#[test]
fn odd_input_never_panics() {
    let odd = [
        "",
        " ",
        "?!.,",
        "1,,2 3..4 12:99 99:00 0 00 007 1e9 99999999999999999999999999 ½",
        "ñ ü ß 東京 🎉 ‼ ' '' `x` n' ’s",
        "$ € £ % ° + $$ 5$ %5",
        "II III IV one two three hundred thousand million billion",
        "A. B. C. I I I",
        "from to from to than than",
        "\n\n\nuser:\nassistant:\n",
        "l'Australie d'accord qu'il n'est pas",
    ];
    for a in odd {
        for b in odd {
            let _ = verify(a, b, 0.99);
        }
    }
}

#[test]
fn long_input_is_bounded() {
    let turn = "user: I ordered a blue lamp and a walnut desk from the Berlin store on Monday, \
                order 12345, and paid 250 euros.\nassistant: Both items are on order 12345; \
                the lamp ships Tuesday and the desk next week.\n";
    let history = turn.repeat(6000 / turn.len() + 1);
    let a = format!("{history}user: Please cancel the lamp and refund $49.99.");
    let b = format!("{history}user: Please cancel the desk and refund $49.99.");
    let started = std::time::Instant::now();
    let v = verify(&a, &b, 0.99);
    // Generous: unoptimised test builds on a loaded machine; the release build takes well
    // under a millisecond.
    assert!(started.elapsed() < std::time::Duration::from_millis(200));
    assert!(!v.accept);
    let huge = "word ".repeat(MAX_CHARS);
    assert_eq!(verify(&huge, &huge, 1.0).reason, "too_long");
}
