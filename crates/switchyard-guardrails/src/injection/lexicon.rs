//! Word classes the features are built from. Entries are matched against the canonical text
//! (lower-case, accents folded, words joined by single spaces) at a word start; an entry is a
//! stem unless it ends in `$`, which demands the word end there too. Scripts without spaces
//! (CJK, kana, Hangul) match anywhere. Entries of one class are separated by `|`.
//!
//! Classes are deliberately semantic ("a verb meaning set aside", "a noun meaning the rules you
//! were given") rather than whole attack phrases, so new phrasings and other languages combine
//! from parts the model has weights for instead of needing to be listed.

/// Bit index of a word class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    /// Set aside: ignore, disregard, forget, override.
    Ignore,
    /// Earlier / above / original.
    Prior,
    /// All / everything / any.
    All,
    /// Instructions, rules, directions, guidelines, prompt.
    Instr,
    /// Second person possessive addressed to the model.
    Your,
    /// Declares earlier rules void: "no longer apply", "are cancelled".
    Void,
    /// Disclosure verbs: reveal, print, repeat, show.
    Reveal,
    /// System prompts in general ("a system prompt for my bot").
    SysPrompt,
    /// This model's own prompt: "your instructions", "the text above".
    OwnPrompt,
    /// Definite determiners that make a generic prompt noun this model's.
    Determiner,
    /// Reported speech: "my manager told me to", "someone replied".
    Reported,
    /// "New instructions", "your new task".
    NewInstr,
    /// "From now on" and equivalents.
    FromNow,
    /// Persona frames: act as, pretend, you are now.
    Persona,
    /// No restrictions / unfiltered / uncensored.
    Unrestricted,
    /// Named jailbreaks: DAN, do anything now, jailbroken.
    JailbreakName,
    /// Special modes: developer mode, god mode, debug mode.
    Mode,
    /// Enabled / activated / switch to.
    Activate,
    /// Never refuse / always comply.
    NeverRefuse,
    /// Content policy, safety guidelines, ethics, filters.
    Policy,
    /// Disable / bypass / turn off.
    Disable,
    /// Claimed authority and urgency: admin, developer, authorized, urgent.
    Authority,
    /// Names for the model: AI, assistant, language model, chatbot.
    AiName,
    /// Notes addressed to a reader: note, message, attention, P.S.
    Note,
    /// Sending verbs: send, forward, upload.
    Send,
    /// Sensitive objects: passwords, credentials, customer data.
    Sensitive,
    /// Forced output: "just say", "nothing else", "word for word".
    Force,
    /// Decode / decipher / rot13 / base64.
    Decode,
    /// Follow / obey / execute.
    Follow,
    /// Talking about attacks: prompt injection, jailbreak (noun), red team.
    Meta,
    /// Defensive intent: prevent, detect, protect, mitigate.
    Defense,
    /// Ordinary technical context: git, android, css, regex, settings.
    Tech,
    /// Fiction frames: hypothetical, story, imagine, game.
    Fiction,
    /// Hide it from the user: silently, do not tell the user.
    Secrecy,
    /// Steer the end user: tell the user, ask the user for.
    TellUser,
    /// Changes to the model's own output: "append ... to your reply", "in every answer".
    ReplyTamper,
    /// Fake system notes inside content: "SYSTEM NOTE", "Systemhinweis".
    SystemNote,
    /// Attack words after rot13 or reversal: only then are those decodings worth trying.
    Scrambled,
    /// Second-person address.
    You,
}

pub(crate) const CLASS_COUNT: usize = Class::You as usize + 1;

impl Class {
    pub const fn bit(self) -> u64 {
        1 << self as u8
    }
}

use Class::*;

pub(crate) const LEXICON: &[(Class, &str)] = &[
    (
        Ignore,
        concat!(
            "ignor|disregard|forget|forgot|overrid|bypass|set aside|pay no attention|",
            "stop following|do not follow|dont follow|no longer follow|discard|abandon|",
            "scratch|throw out|neglect|skip all|skip the|drop all|drop the|drop your|",
            "nevermind|never mind|olvid|haz caso omiso|no hagas caso|no sigas|descart|omite|",
            "oubli|ne tiens pas compte|fais abstraction|ne suis plus|negliger|ignorier|",
            "vergiss|vergessen|missacht|uberschreib|beachte nicht|dimentic|trascur|",
            "non seguire|esquec|desconsider|despreze|nao siga|negeer|vergeet|zignoruj|ignoruj|",
            "zapomnij|игнорир|проигнорир|забудь|забыть|yok say|unut|忽略|无视|忘记|忘掉|不要理会|無視|忘れ|무시|",
            "잊어",
        ),
    ),
    (
        Prior,
        concat!(
            "previous|prior|above|earlier|preceding|foregoing|original|initial|old$|existing|",
            "before$|default|current|so far|until now|up to now|given$|received|finora|",
            "hasta ahora|jusqu ici|bisher|ate agora|ricevut|recibid|recues|erhalten|anterior|",
            "previa|previo|de arriba|precedent|ci dessus|vorherig|bisherig|obig|vorangegangen|",
            "fruher|sopra|vorige|eerdere|poprzedni|предыдущ|прежн|önceki|onceki|之前|以上|先前|上面|",
            "以前|前の|これまで|이전",
        ),
    ),
    (
        All,
        concat!(
            "all$|any$|every$|everything|anything|todas|todos|todo$|toutes|tous|tout$|alle$|",
            "alles|tutte|tutti|tutto|tudo|wszystk|все$|всё|tum|所有|一切|すべて|全て|모든",
        ),
    ),
    (
        Instr,
        concat!(
            "instruction|rules$|rule$|direction|directive|guideline|prompt|command$|commands$|",
            "orders$|programming|constraint|restriction|polic|context$|task|assignment|said$|",
            "told$|the user$|the users|instrucc|indicacion|regla|consign|regle|anweisung|",
            "vorgabe|befehl|regeln|richtlinie|istruzion|regole|direttiv|instruc|regras|",
            "diretriz|instructie|regels|instrukcj|zasad|инструкци|правил|указани|talimat|指令|",
            "指示|规则|提示|ルール|命令|지시",
        ),
    ),
    (
        Your,
        concat!(
            "your$|yours$|you were|you have been|you received|tus$|tu$|te$|tes$|vos$|deine|",
            "dein$|dir$|tue$|tuoi|ti$|suas$|seu$|sua$|je$|swoje|swoich|свои|твои|你的|あなたの",
        ),
    ),
    (
        Void,
        concat!(
            "no longer apply|no longer valid|are cancelled|are canceled|are void|",
            "null and void|are outdated|are obsolete|are suspended|are revoked|",
            "have been lifted|are lifted|do not apply|dont apply|superseded|were a test|",
            "was a test|are invalid|is invalid",
        ),
    ),
    (
        Reveal,
        concat!(
            "reveal|show|print|display|output|repeat|tell me|leak|dump|expose|disclose|recite|",
            "spell out|write out|write down|copy|paste|echo|give me|share|what is your|",
            "what are your|what were|what instructions|which instructions|list them|quote|",
            "i need to see|let me see|can i see|translate your|encode your|summarize your|",
            "revela|muestra|dime|imprime|repite|revele|mostre|repita|diga|imprima|revel|",
            "montre|affiche|repete|dis moi|donne moi|zeig|verrat|gib|wiederhol|nenne|ausgeben|",
            "rivela|mostra|ripeti|dimmi|stampa|laat|pokaz|покажи|выведи|göster|goster|告诉我|显示|",
            "输出|表示|教えて|보여",
        ),
    ),
    (
        SysPrompt,
        concat!(
            "system prompt|systemprompt|system message|system instruction|pre prompt|",
            "preprompt|developer message|prompt del sistema|mensaje del sistema|",
            "prompt systeme|message systeme|systemanweisung|systemnachricht|prompt di sistema|",
            "messaggio di sistema|prompt do sistema|mensagem do sistema|systeemprompt|",
            "prompt systemowy|системный промпт|sistem istem|系统提示|システムプロンプト|시스템 프롬프트|",
            "configuration",
        ),
    ),
    (
        OwnPrompt,
        concat!(
            "initial prompt|initial instruction|hidden prompt|hidden instruction|",
            "secret instruction|original prompt|original instruction|instructions above|",
            "text above|everything above|words above|the above text|",
            "beginning of this conversation|start of this conversation|your configuration|",
            "your instructions|your prompt|your rules|your system|your initial|your hidden|",
            "your original|your guidelines|your directives|your programming|",
            "instructions you were|instructions you received|you were told|you were given|",
            "you were initialized|were you told|were you given|before my first message|",
            "start of this chat|beginning of this chat|start of the conversation|",
            "written before|context window|internal instruction|confidential instruction|",
            "secret prompt|tus instrucciones|tes instructions|deine anweisungen|",
            "le tue istruzioni|suas instrucoes",
        ),
    ),
    (Determiner, "the$|this$|full$|entire$|exact$|complete$|whole$|el$|le$|den$|il$|o$"),
    (
        Reported,
        concat!(
            "told me to|told us to|told them to|told the|said to|says to|asked me to|someone|",
            "somebody|replied|wrote|tweeted|posted|the email says|the document says|",
            "the page says|meme|became|mentioned|a customer|a user|users who|my manager|",
            "my boss|my teacher|the teacher|headline",
        ),
    ),
    (
        NewInstr,
        concat!(
            "new instruction|new task|new rule|new objective|new directive|new goal|",
            "new assignment|new role|updated instruction|real task|real instruction|",
            "actual instruction|actual task|nuevas instrucciones|nueva tarea|",
            "nouvelles instructions|nouvelle tache|neue anweisung|neue aufgabe|",
            "nuove istruzioni|nuovo compito|novas instrucoes|nova tarefa|nieuwe instructies|",
            "nowe instrukcje|новые инструкции|新的指令|新しい指示",
        ),
    ),
    (
        FromNow,
        concat!(
            "from now on|from this point|from here on|henceforth|for the rest of|",
            "going forward|a partir de ahora|desde ahora|desormais|a partir de maintenant|",
            "ab jetzt|von nun an|ab sofort|da ora in poi|d ora in poi|a partir de agora|",
            "vanaf nu|od teraz|теперь|отныне|从现在开始|从现在起|これから|今後",
        ),
    ),
    (
        Persona,
        concat!(
            "you are now|youre now|you are going to act|you will act|act as|acting as|pretend|",
            "roleplay|role play|simulate|imagine you are|imagine that you are|play the role|",
            "stay in character|break character|character named|persona|you will now be|",
            "respond as|answer as|speak as|actua como|finge|eres ahora|ahora eres|",
            "fais semblant|tu es maintenant|agis comme|du bist jetzt|tu so als|",
            "spiele die rolle|fingi|sei ora|ora sei|finja|voce e agora|aja como|ты теперь|",
            "притворись|扮演|假装|になりきって",
        ),
    ),
    (
        Unrestricted,
        concat!(
            "no restriction|no limit|no rules|no filter|no guideline|no ethic|no moral|",
            "no content polic|no safety|keine regeln|ninguna regla|sin reglas|aucune regle|",
            "sans regles|nessuna regola|senza regole|nenhuma regra|sem regras|no censorship|",
            "zero restriction|without restriction|without limit|without any restriction|",
            "without any limit|without filter|without any filter|without censorship|",
            "without rules|unrestricted|unfiltered|uncensored|unlimited|unbound|not bound|",
            "free from|freed from|break free|broken free|nonmoral|no longer bound|",
            "without ethic|without moral|sin restricciones|sin censura|sin filtro|sin limites|",
            "sans restriction|sans filtre|sans limite|non censur|plus aucune restriction|",
            "keine einschrankung|ohne filter|ohne einschrankung|keine grenzen|",
            "senza restrizioni|senza censura|senza filtri|senza limiti|sem restricoes|",
            "sem censura|sem filtro|sem limites|zonder beperking|bez ograniczen|bez zadnych|",
            "uneingeschrankt|без ограничений|没有任何限制|没有限制|不受限制|制限のない|制限なし|제한 없",
        ),
    ),
    (
        JailbreakName,
        concat!(
            "dan$|do anything now|jailbreak|jailbroken|jailbroke|betterdan|antidan|stan$|",
            "dude$|aim$|ucar$|unlocked|evil confidant|evilbot|freegpt|chaosgpt|wormgpt|",
            "dan mode",
        ),
    ),
    (
        Mode,
        concat!(
            "developer mode|dev mode|debug mode|god mode|admin mode|sudo mode|",
            "maintenance mode|unrestricted mode|jailbreak mode|raw mode|modo desarrollador|",
            "mode developpeur|entwicklermodus|modalita sviluppatore|modo desenvolvedor|",
            "ontwikkelaarsmodus|tryb dewelopera|режим разработчика|开发者模式|開発者モード",
        ),
    ),
    (
        Activate,
        concat!(
            "enabled|activated|engaged|initiated|turned on|is on$|now in|enter|switch to|",
            "switch into|unlock|enable|activate|activado|active|aktiviert|attivat|ativado",
        ),
    ),
    (
        NeverRefuse,
        concat!(
            "never refuse|not refuse|cannot refuse|cant refuse|wont refuse|never decline|",
            "always comply|must comply|always answer|answer anything|answer any question|",
            "answer every|anything i ask|never say no|never say you cant|never say i cant|",
            "no matter what|without refusal|without question|without any warning|",
            "no disclaimers|no warnings|never add disclaimers|never mention|",
            "never break character|nunca te niegas|nunca rechaz|ne refuse jamais|",
            "ne refuses jamais|lehnst niemals ab|niemals ablehnen|non rifiuta mai|",
            "nunca recusa|никогда не отказыва",
        ),
    ),
    (
        Policy,
        concat!(
            "content polic|usage polic|openai polic|openai guideline|openai rules|",
            "openai content|anthropic polic|safety guideline|safety protocol|safety training|",
            "safety filter|safety setting|content filter|guardrail|ethical guideline|",
            "moral guideline|censorship|safety measure|filtros de seguridad|richtlinien",
        ),
    ),
    (
        Disable,
        concat!(
            "disable|overrid|turn off|switch off|deactivate|circumvent|bypass|lift|suspend|",
            "remove your|get rid of|desactiva|desactive|deaktivier|disattiv|desativ|отключи",
        ),
    ),
    (
        Authority,
        concat!(
            "admin|administrator|your developer|your creator|i am your|this is your|",
            "openai employee|openai team|security team|authorized|authorised|authorization|",
            "root access|sudo$|system override|override$|highest priority|top priority|",
            "takes precedence|supersede|mandatory|urgent|critical|emergency|important|",
            "verified",
        ),
    ),
    (
        AiName,
        concat!(
            "ai$|ais$|assistant|language model|llm|chatbot|bot$|model$|gpt|chatgpt|agent|ki$|",
            "ia$|asistente|assistente|assistent|automated|ии$|人工智能|助手",
        ),
    ),
    (
        Note,
        concat!(
            "note to|note for|message to|message for|attention|instruction for|",
            "instructions for|instructions to|p s to|ps to|if you are an|",
            "if you are a language|any ai|ai reading|reading this|nota para|nota per|",
            "pour l ia|pour l assistant|hinweis an|hinweis fur|istruzioni per|instrucao",
        ),
    ),
    (
        Send,
        concat!(
            "send|forward|email|e mail|upload|transmit|exfiltrat|post$|post the|push the|",
            "envia|envoie|sende|leite|inoltra|invia",
        ),
    ),
    (
        Sensitive,
        concat!(
            "password|passwort|credential|api key|secret|token|customer|conversation|",
            "chat history|history|inbox|contacts|database|env var|environment variable|",
            "personal data|card details|credit card|one time code|private|confidential|",
            "internal|contrasena|historial|mot de passe|senha|geheim",
        ),
    ),
    (
        Force,
        concat!(
            "just say|just print|only say|only print|and say|and print|instead say|",
            "instead print|instead reply|just output|say exactly|print exactly|",
            "reply with the words|respond with the words",
        ),
    ),
    (
        Decode,
        concat!(
            "decode|decipher|decrypt|base64|base 64|rot13|rot 13|hex|binary|backwards|",
            "reversed|first letter of each|acrostic|unscramble|decodifica|decode|dekodier|",
            "decodific",
        ),
    ),
    (
        Follow,
        concat!(
            "follow|obey|execute|do what it says|carry out|act on|comply|perform|run it|sigue|",
            "obedece|ejecuta|suis|obeis|execute|befolge|fuhre|segui|esegui|siga|execut",
        ),
    ),
    (
        Meta,
        concat!(
            "prompt injection|injection attack|jailbreak attack|jailbreak prompt|",
            "jailbreak technique|jailbreaks|adversarial|red team|red teaming|owasp|attacker|",
            "attack|malicious|vulnerab|exploit|meme|injection de prompt|inyeccion de prompt|",
            "prompt injektion",
        ),
    ),
    (
        Defense,
        concat!(
            "prevent|detect|defend|defense|protect|mitigat|sanitiz|secure|security|safe$|",
            "classify|classifier|research|paper|abstract|study|explain|what is|what are|",
            "what does|what do|how do|how does|how can|how should|why do|why does|article|",
            "blog|report|protege|schutz|proteg",
        ),
    ),
    (
        Tech,
        concat!(
            "git|gitignore|eslint|linter|compiler|css|regex|python|java$|javascript|rust$|sql|",
            "docker|npm|yaml|json$|android|iphone|ipad|ios$|windows|macos|linux|chrome|phone|",
            "router|bios|pandas|whitespace|typo|excel|wordpress|flask|kubernetes|helm$|",
            "minecraft|printer|bootloader|recipe|telefono|telephone|handy|celular|",
            "visual studio|ansible|bash|steam deck|roblox",
        ),
    ),
    (
        Fiction,
        concat!(
            "hypothetical|fiction|story|novel|imagine|thought experiment|opposite day|game|",
            "in a world where|screenplay|dialogue",
        ),
    ),
    (
        Secrecy,
        concat!(
            "silently|secretly|without telling|do not tell the user|dont tell the user|",
            "do not mention|dont mention|do not inform|without the user|without informing|",
            "invisible to|hidden text|white text|white font|display none",
        ),
    ),
    (
        TellUser,
        concat!(
            "tell the user|tell the reader|inform the user|ask the user|ask for their|",
            "convince the user|the user must|tell users|tell the customer|recommend the user|",
            "direct the user|redirect the user|the user has granted|al usuario|",
            "a l utilisateur|dem nutzer|den nutzer|allutente|ao usuario",
        ),
    ),
    (
        ReplyTamper,
        concat!(
            "your reply|your response|your answer|your summary|your output|every answer|",
            "every response|every reply|each response|each answer|all future|future answers|",
            "future responses|end of your|end of every|end of each|tu respuesta|ta reponse|",
            "deine antwort|jeder antwort|ogni risposta|sua resposta|toute reponse|",
            "cada respuesta",
        ),
    ),
    (
        SystemNote,
        concat!(
            "system note|system notice|system alert|system update|systemhinweis|",
            "systemnachricht|note systeme|nota di sistema|nota del sistema|nota do sistema|",
            "mensaje del sistema|admin note|developer note|security notice|important notice",
        ),
    ),
    (You, "you$|youre$|you ll|du$|vous$|usted$|voce$|ты$|你"),
    (
        Scrambled,
        concat!(
            "vtaber|qvfertneq|sbetrg|vafgehpgvbaf|cerivbhf|flfgrz cebzcg|",
            "erongi|dragersid|tegrof|snoitcurtsni|suoiverp|tpmorp metsys",
        ),
    ),
];

/// CJK, kana and Hangul have no spaces, so their entries match anywhere in a word.
pub(crate) fn matches_anywhere(entry: &str) -> bool {
    entry
        .chars()
        .next()
        .is_some_and(|c| matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x9FFF | 0xAC00..=0xD7AF))
}
