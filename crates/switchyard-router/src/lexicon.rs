//! Cue families: broad groups of words and phrases, each counted as one feature.
//!
//! The lists are deliberately generic (the kind of vocabulary a whole class of requests uses) rather
//! than phrases lifted from the training prompts: the trained weights decide how much each family
//! matters, and generic families are what lets the model cope with prompts it has never seen.
//!
//! Pattern syntax: a trailing `*` matches any word ending (a crude stem, so `optimi*` covers
//! optimize, optimise, optimization); without it the pattern must end at a word boundary. Every
//! pattern must start at a word boundary. Matching is ASCII-case-insensitive, so patterns are
//! written in lowercase. Spanish, French and German cues sit next to the English ones where they
//! are cheap to add.

/// Index of each family inside [`FAMILIES`]; the feature vector keeps the same order.
pub(crate) const FAMILY_NAMES: [&str; FAMILY_COUNT] = [
    "code_terms",
    "error_terms",
    "math_terms",
    "proof_terms",
    "reasoning_verbs",
    "system_design_terms",
    "multi_part_connectives",
    "constraint_terms",
    "output_size_terms",
    "long_form_genres",
    "expert_domain_terms",
    "research_terms",
    "wh_question_cues",
    "greeting_cues",
    "translate_cues",
    "format_only_cues",
    "summarize_cues",
    "conversion_cues",
    "explain_cues",
    "write_verbs",
    "short_creative_cues",
    "artifact_terms",
];

pub(crate) const FAMILY_COUNT: usize = 22;

#[rustfmt::skip] // a word list reads better packed than one entry per line
pub(crate) const FAMILIES: [&[&str]; FAMILY_COUNT] = [
    // code_terms
    &[
        "python*", "javascript*", "typescript*", "java", "rust", "golang", "c++", "c#", "sql*",
        "function*", "method", "methods", "class", "classes", "api*", "endpoint*", "regex*",
        "compil*", "script*", "variable*", "loop*", "array*", "linked list*", "hash map*",
        "hashmap*", "dictionar*", "json", "yaml", "docker*", "kubernetes", "k8s", "git", "github",
        "bash", "shell", "react", "django", "flask", "numpy", "pandas", "async*", "thread*",
        "mutex*", "database*", "query", "queries", "unit test*", "library", "libraries", "code",
        "coding", "program*", "algorithm*", "data structure*", "recursi*", "pointer*", "struct",
        "structs", "lambda*", "iterator*", "html", "css", "npm", "pip", "cargo", "linux",
        "parser*", "binary search*", "string*", "boolean*", "tokio", "spring boot", "node.js",
        "nodejs", "frontend", "repo", "repository", "codebase", "función*", "fonction*",
        "funktion*", "código", "klasse*",
    ],
    // error_terms
    &[
        "traceback*", "exception*", "stack trace*", "stacktrace*", "segfault*",
        "segmentation fault", "panick*", "null pointer*", "nullpointer*", "typeerror*",
        "valueerror*", "keyerror*", "attributeerror*", "indexerror*", "undefined is not",
        "cannot read propert*", "errno*", "core dumped", "exit code", "exit status", "crash*",
        "memory leak*", "leak*", "deadlock*", "race condition*", "doesn't work", "does not work",
        "not working", "fails", "failing", "flaky", "hangs", "debug*", "stack overflow",
        "out of memory", "undefined reference", "error", "errors", "bug", "bugs", "buggy",
        "intermittent*", "timeout*", "fehler*",
    ],
    // math_terms
    &[
        "equation*", "integral*", "derivative*", "differentia*", "matrix", "matrices", "eigen*",
        "vector*", "probabilit*", "theorem*", "lemma*", "polynomial*", "logarithm*", "calculus",
        "algebra*", "geometr*", "triangle*", "prime", "primes", "infinitely", "converge*",
        "series", "modulo", "factorial*", "combinator*", "permutation*", "expected value",
        "variance", "bayes*", "topolog*", "group theory", "isomorph*", "induction", "real number*",
        "irrational*", "rational", "inequalit*", "integer*", "divisible", "sqrt", "square root*",
        "exponent*", "fraction*", "percent*", "ratio", "ratios", "solve", "solving", "function f",
        "ecuaci*", "équation*", "gleichung*", "wahrscheinlich*", "probabilidad*", "probabilité*",
        "mathemat*", "matemátic*",
    ],
    // proof_terms
    &[
        "prove", "proof", "proofs", "proving", "show that", "derive", "deriving", "derivation*",
        "demonstrate that", "rigorous*", "formally", "formal proof", "by contradiction",
        "counterexample*", "demuestra*", "demostr*", "démontre*", "démonstration*", "montrer que",
        "beweis*", "zeige, dass", "zeigen sie",
    ],
    // reasoning_verbs
    &[
        "design*", "architect*", "analyz*", "analysis", "analyses", "analyse", "analysing",
        "analysed", "analytic*", "compar*", "evaluat*", "trade-off*", "tradeoff*", "trade off*",
        "plan", "planning", "strateg*", "optimi*", "refactor*", "justif*", "step by step",
        "step-by-step", "assess*", "critique*", "investigat*", "diagnos*", "implement*",
        "pros and cons", "weigh", "weighing", "recommend*", "root cause*", "benchmark*", "reason",
        "reasoning", "think through", "prioriti*", "migrat*", "model the", "simulat*", "diseñ*",
        "analiz*", "evalú*", "estrategi*", "conçoi*", "concev*", "stratégi*", "entwirf",
        "entwerf*", "vergleich*", "bewert*", "planifi*", "planen",
    ],
    // system_design_terms
    &[
        "distributed", "scalab*", "scale to", "at scale", "fault toleran*", "fault-toleran*",
        "high availability", "highly available", "microservice*", "load balanc*", "shard*",
        "replicat*", "consisten*", "throughput", "latency", "rate limit*", "message queue*",
        "kafka", "cach*", "event sourcing", "consensus", "raft", "paxos", "multi-region",
        "multi-tenant", "failover", "idempoten*", "cap theorem", "backpressure", "back-pressure",
        "horizontal*", "requests per second", "rps", "qps", "zero downtime", "zero-downtime",
        "disaster recovery", "observability", "service mesh", "pipeline*", "infrastructure*",
        "concurren*", "lock-free", "schema*", "partition*", "real-time", "streaming", "sla", "slo",
        "slos", "p99", "million*", "billion*", "escalab*", "distribuid*", "distribué*",
        "verteilt*", "skalierbar*",
    ],
    // multi_part_connectives
    &[
        "firstly", "secondly", "thirdly", "finally", "lastly", "additionally", "furthermore",
        "moreover", "in addition", "as well as", "and also", "along with", "then", "also",
        "besides", "afterwards", "after that", "next,", "además", "también", "luego", "ensuite",
        "également", "de plus", "enfin", "außerdem", "zusätzlich", "danach", "anschließend",
    ],
    // constraint_terms
    &[
        "must", "must not", "should", "shouldn't", "at least", "at most", "no more than",
        "no less than", "not exceed", "exactly", "ensure*", "make sure", "requirement*",
        "constraint*", "without using", "do not", "don't", "avoid*", "edge case*", "handle*",
        "has to", "needs to", "required", "mandatory", "guarantee*", "budget of", "deadline*",
        "debe", "deben", "al menos", "como máximo", "sin usar", "doit", "doivent", "au moins",
        "sans utiliser", "muss", "müssen", "mindestens", "höchstens", "ohne",
    ],
    // output_size_terms
    &[
        "detailed", "in detail", "comprehensive*", "thorough*", "in depth", "in-depth",
        "deep dive", "extensive*", "exhaustive*", "full implementation", "complete implementation",
        "fully working", "fully functional", "production-ready", "production ready",
        "production-grade", "end-to-end", "end to end", "from scratch", "lengthy", "elaborate",
        "complete", "entire", "full", "all the", "every", "each", "detallad*", "exhaustiv*",
        "completo", "completa", "complet", "complète", "détaillé*", "ausführlich*", "umfassend*",
        "vollständig*", "a fondo", "en profondeur",
    ],
    // long_form_genres
    &[
        "essay*", "article*", "blog post*", "report", "reports", "whitepaper*", "white paper",
        "proposal*", "chapter*", "story", "stories", "novel*", "screenplay*", "speech*",
        "business plan*", "cover letter*", "press release*", "research paper*", "case study",
        "case studies", "curriculum*", "syllabus*", "lesson plan*", "marketing plan*",
        "pitch deck*", "memo", "newsletter*", "design doc*", "rfc", "technical spec*",
        "specification*", "documentation", "tutorial*", "guide", "playbook*", "roadmap*",
        "outline", "dissertation*", "thesis", "ensayo*", "informe*", "artículo*", "rapport*",
        "aufsatz*", "bericht*", "mémoire",
    ],
    // expert_domain_terms
    &[
        "market*", "revenue*", "go-to-market", "competitor*", "competitiv*", "financial*",
        "valuation*", "unit economics", "cash flow", "investor*", "due diligence",
        "business model*", "pricing", "churn", "customer acquisition", "supply chain*",
        "forecast*", "kpi*", "okr*", "stakeholder*", "acquisition*", "contract*", "liabilit*",
        "intellectual property", "patent*", "gdpr", "hipaa", "complian*", "regulat*",
        "jurisdiction*", "litigation*", "statute*", "case law", "tort", "torts", "clause*",
        "clinical*", "dosage*", "pharmac*", "pathophysiolog*", "epidemiolog*", "quantum*",
        "thermodynam*", "entropy", "relativit*", "molecul*", "protein*", "enzyme*", "genom*",
        "neural*", "machine learning", "deep learning", "transformer*", "gradient*",
        "reinforcement learning", "econom*", "monetary", "inflation", "macroeconom*", "portfolio*",
        "hedge", "hedging", "actuarial", "fiscal", "geopolitic*", "security", "threat model*",
        "cryptograph*", "encryption", "mercado*", "marché*", "wettbewerb*",
    ],
    // research_terms
    &[
        "research*", "literature", "evidence*", "hypothes*", "experiment*", "methodolog*",
        "statistic*", "sample size*", "p-value*", "regression*", "confidence interval*",
        "control group*", "dataset*", "peer-review*", "peer review*", "citation*", "cite",
        "meta-analys*", "causal*", "confound*", "survey*", "a/b test*", "ab test*", "study design",
        "power analysis", "empirical*", "investigación", "recherche*", "forschung*", "studie",
        "studien",
    ],
    // wh_question_cues
    &[
        "what is", "what's", "what\u{2019}s", "what are", "what was", "what does", "what do",
        "who is", "who was", "who wrote", "who invented", "who discovered", "who won",
        "who painted", "when did", "when was", "when is", "where is", "where was", "where are",
        "where can", "how many", "how much", "how old", "how tall", "how far", "how long",
        "capital of", "meaning of", "definition of", "define", "stand for", "stands for",
        "synonym*", "antonym*", "is it", "is there", "qué es", "que es", "quién", "cuándo",
        "dónde", "cuántos", "cuántas", "cuánto", "qu'est-ce", "c'est quoi", "qui est", "qui a",
        "quand", "où", "combien", "was ist", "was sind", "wer ist", "wer war", "wer hat", "wann",
        "wo ist", "wie viele", "wie viel", "wie alt", "welche", "welcher",
    ],
    // greeting_cues
    &[
        "hi", "hello", "hey", "hiya", "thanks", "thx", "thank you", "good morning",
        "good afternoon", "good evening", "good night", "how are you", "how's it going",
        "what's up", "bye", "goodbye", "see you", "nice to meet", "hola", "gracias", "buenos días",
        "buenas noches", "buenas tardes", "qué tal", "bonjour", "bonsoir", "salut", "merci",
        "ça va", "hallo", "guten morgen", "guten tag", "guten abend", "danke", "tschüss", "servus",
        "ciao", "wie geht",
    ],
    // translate_cues
    &[
        "translat*", "how do you say", "how to say", "how would you say", "in french",
        "in spanish", "in german", "in english", "in italian", "in japanese", "in chinese",
        "in portuguese", "into french", "into spanish", "into german", "into english", "to french",
        "to spanish", "to german", "to english", "traduc*", "tradui*", "traduz*", "übersetz*",
        "auf deutsch", "auf englisch", "en español", "en inglés", "en français", "en anglais",
        "al inglés", "al español", "en alemán", "en allemand",
    ],
    // format_only_cues
    &[
        "grammar*", "grammatical*", "typo*", "spelling", "misspell*", "proofread*", "rephrase*",
        "reword*", "paraphrase*", "more formal", "more polite", "more casual", "more professional",
        "less formal", "shorter", "shorten", "simplify this", "capitaliz*", "uppercase",
        "lowercase", "title case", "alphabetiz*", "alphabetical*", "sort these", "sort this",
        "bullet point*", "as a list", "as a table", "into a table", "reformat*", "format this",
        "punctuation", "corrige*", "corrija*", "correg*", "korrigier*", "reformul*",
        "umformulier*", "ortograf*", "orthograph*", "rechtschreib*", "grammaire", "gramática",
        "grammatik",
    ],
    // summarize_cues
    &[
        "summar*", "tldr", "tl;dr", "key points", "main points", "main idea", "gist", "condense*",
        "boil down", "in one sentence", "in a sentence", "in two sentences", "in a few words",
        "resum*", "résum*", "zusammenfass*",
    ],
    // conversion_cues
    &[
        "convert*", "conversion*", "celsius", "fahrenheit", "kelvin", "km", "kilomet*",
        "kilogram*", "kg", "miles", "mile", "mph", "meters", "metres", "feet", "foot", "inches",
        "inch", "pounds", "lbs", "ounce*", "oz", "grams", "gram", "liters", "litres", "gallon*",
        "cups", "tablespoon*", "teaspoon*", "km/h", "usd", "eur", "euro*", "dollar*", "yen",
        "exchange rate", "time zone*", "timezone*", "what time", "how many days", "grados",
        "degrés",
    ],
    // explain_cues
    &[
        "explain*", "why do", "why does", "why is", "why are", "why did", "how does", "how do",
        "how did", "how can", "describe*", "what happens", "difference between",
        "differences between", "tell me about", "overview", "introduction to", "intro to",
        "walk me through", "teach*", "help me understand", "explica*", "explique*", "erklär*",
        "por qué", "pourquoi", "warum", "cómo funciona", "comment fonctionne", "wie funktioniert",
        "diferencia*", "différence*", "unterschied*",
    ],
    // write_verbs
    &[
        "write*", "writing", "draft*", "compose*", "create*", "generate*", "build*", "develop*",
        "craft*", "produce*", "come up with", "put together", "escrib*", "redact*", "écri*",
        "rédig*", "schreib*", "verfass*", "erstell*", "crea", "crear", "créer", "construi*",
    ],
    // short_creative_cues
    &[
        "poem*", "haiku*", "limerick*", "joke*", "slogan*", "tagline*", "pun", "puns", "riddle*",
        "caption*", "tweet*", "name for", "names for", "title for", "titles for", "nickname*",
        "one-liner*", "rhyme*", "quote*", "poema*", "poème*", "gedicht*", "chiste*", "blague*",
        "witz*",
    ],
    // artifact_terms: things that take real engineering to build
    &[
        "engine*", "compiler*", "interpreter*", "allocator*", "emulator*", "kernel*",
        "operating system*", "virtual machine*", "key-value store*", "web server*", "http server*",
        "server*", "framework*", "game", "games", "simulator*", "application*", "app", "apps",
        "platform*", "system", "systems", "service*", "backend*", "protocol*", "scheduler*",
        "garbage collector*", "file system*", "filesystem*", "sdk*", "cli", "plugin*",
        "full-stack", "fullstack", "website*", "web app*", "mobile app*", "bot", "chatbot*", "orm",
        "runtime*", "sistema*", "système*", "plateforme*", "plataforma*", "anwendung*",
        "aplicación*",
    ],
];
