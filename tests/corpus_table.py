"""The per-format and per-category tables of tests/data/README.md, rendered from the corpus.

    python -m tests.corpus_table          # rewrite the tables in tests/data/README.md

tests/test_corpus.py fails when the README's tables differ from what this renders.
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict

from .support import DATA, load_corpus

README = DATA / "README.md"
BEGIN = "<!-- corpus-table:begin (python -m tests.corpus_table) -->"
END = "<!-- corpus-table:end -->"

# Format names (the `format` key) grouped into the families that apps log in.
FAMILIES: dict[str, tuple[str, ...]] = {
    "Python (openai-python v1/0.x, logging, print, reprs)": (
        "openai-python v1",
        "openai-python v1 traceback",
        "openai-python 0.x",
        "openai-python 0.x logfmt",
        "Python logging",
        "Python print",
        "exception repr",
        "httpx request line",
    ),
    "Node (openai-node, axios)": ("openai-node", "openai-node stack", "axios"),
    "Vercel AI SDK": ("Vercel AI SDK",),
    "LangChain (Python and JS)": ("LangChain", "LangChain JS"),
    "LiteLLM": ("LiteLLM",),
    "LlamaIndex": ("LlamaIndex",),
    "Semantic Kernel and .NET": ("Semantic Kernel", ".NET SDK"),
    "Go (go-openai, openai-go)": ("go-openai", "openai-go"),
    "Java (openai-java, Spring AI, LangChain4j)": ("openai-java", "Spring AI", "LangChain4j"),
    "Rust (async-openai and Rust CLIs)": ("async-openai",),
    "curl": ("curl",),
    "Azure OpenAI": ("Azure OpenAI",),
    "OpenAI-compatible servers (vLLM, Ollama, relays)": ("OpenAI-compatible server",),
    "JSON-lines logs": ("JSON-lines log",),
    "Network (urllib3/requests, httpx tracebacks)": ("urllib3/requests", "network traceback"),
    "JSON bodies (raw, pretty)": ("raw JSON body", "pretty JSON body"),
    "Responses, Realtime and Batch APIs, Agents SDK, Codex": (
        "Responses API stream",
        "Realtime API",
        "Batch API",
        "Agents SDK",
        "Codex CLI",
    ),
    "Self-hosted apps and agent frameworks": ("self-hosted app", "agent framework"),
    "PHP, Ruby, Elixir, Dart, Deno, Swift, Kotlin": (
        "PHP",
        "Ruby",
        "Elixir",
        "Dart",
        "Deno",
        "Swift",
        "Kotlin",
    ),
    "Containers, platforms and syslog": (
        "docker compose",
        "docker json-file",
        "Kubernetes CRI",
        "kubectl logs",
        "journalctl",
        "syslog",
        "platform log",
    ),
}
OTHER = "Described negatives (round 1)"


def family_of(format_name: str) -> str:
    for family, formats in FAMILIES.items():
        if format_name in formats:
            return family
    return OTHER


def sources_by_case() -> dict[str, str]:
    """Case id → its `source`, where the case records one."""
    found = {}
    for table in DATA.glob("*/expected.toml"):
        for raw in tomllib.loads(table.read_text(encoding="utf-8")).get("case", []):
            found[f"{table.parent.name}/{raw['file']}"] = raw.get("source", "")
    return found


def render() -> str:
    cases = load_corpus()
    sources = sources_by_case()
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        row = rows[family_of(case.format)]
        row["cases"] += 1
        row["positives" if case.findings else "negatives"] += 1
        row["public"] += sources.get(case.id, "").startswith("https://")
    lines = [
        "| format family | cases | positives | negatives | with a public source address |",
        "|---|---:|---:|---:|---:|",
    ]
    for family in [*FAMILIES, OTHER]:
        row = rows[family]
        lines.append(
            f"| {family} | {row['cases']} | {row['positives']} | {row['negatives']} "
            f"| {row['public']} |"
        )
    total = Counter[str]()
    for row in rows.values():
        total.update(row)
    lines.append(
        f"| **all** | {total['cases']} | {total['positives']} | {total['negatives']} "
        f"| {total['public']} |"
    )
    per_category: Counter[str] = Counter()
    cases_per_category: Counter[str] = Counter()
    for case in cases:
        categories = {finding.category for finding in case.findings}
        per_category.update(finding.category for finding in case.findings)
        cases_per_category.update(categories)
    lines += ["", "| category | findings | cases |", "|---|---:|---:|"]
    for category in sorted(per_category):
        lines.append(f"| {category} | {per_category[category]} | {cases_per_category[category]} |")
    return "\n".join(lines)


def rewrite() -> None:
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{render()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    rewrite()
