"""Real client libraries against a scripted loopback OpenAI: their errors, logged as apps log them.

    .venv/bin/python -m tests.clientgen.run             # everything (about 10 minutes)
    .venv/bin/python -m tests.clientgen.run --lib litellm --scenario timeout --keep /tmp/x

Installs what is missing (venvs in /work/clientgen/py and /work/clientgen/py028, node_modules
in /work/clientgen/node; --upgrade takes the newest releases), starts the servers of server.py
on 127.0.0.1, runs one driver subprocess per capture (drivers/py_driver.py,
drivers/node_driver.cjs), and writes the captures as corpus cases: tests/data/clients.<library>/
(.log files and expected.toml), every fifth capture instead into /work/heldout/clients/<library>/.
The expected findings are the ground truth of what the server sent (scenarios.py), never what
the classifier says. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS, Scenario
from .server import BadGatewayProxy, ScriptedOpenAI, SelfSignedTLS, port_is_closed, serve

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = REPO / "tests" / "data"
WORK = Path(os.environ.get("CLIENTGEN_HOME", "/work/clientgen"))
HELDOUT = Path(os.environ.get("CLIENTGEN_HELDOUT", "/work/heldout/clients"))
PY = WORK / "py" / "bin" / "python"
PY028 = WORK / "py028" / "bin" / "python"
NODE_DIR = WORK / "node"

PY_PACKAGES = [
    "openai",
    "langchain-openai",
    "litellm",
    "llama-index-llms-openai",
    "llama-index-embeddings-openai",
    "python-json-logger",
    "structlog",
]
PY028_PACKAGES = ["openai==0.28.1", "python-json-logger", "structlog"]
NODE_PACKAGES = [
    "openai",
    "openai4@npm:openai@4",
    "ai",
    "@ai-sdk/openai",
    "@langchain/openai",
    "@langchain/core",
    "pino",
    "undici",
    "https-proxy-agent",
]

API_KEY = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE0000"
CLOCK_START = 1772442000.0  # 2026-03-02T09:00:00Z; each capture 7 minutes after the one before

PY_STYLES = (
    "logging_exception",
    "json_logger",
    "print_str",
    "logging_exception_plain",
    "structlog_json",
    "print_repr",
    "logging_message",
)
NODE_STYLES = ("console_error", "console_message", "pino")
# Styles that log the error's text alone (no traceback, no stack, no class path): they must stay
# one line, and they need the text itself to show that the error is OpenAI's (message_ok).
MESSAGE_ONLY = {"print_str", "logging_message", "console_message", "print_repr"}
# The library's own retry notices go to stdlib logging: a retries capture uses a style that
# configures it, so that they show.
RETRY_STYLES = {"logging_exception", "logging_exception_plain", "logging_message", "json_logger"}

STYLE_TEXT = {
    "logging_exception": "logging.basicConfig(level=INFO, format with asctime) + logger.exception()",
    "logging_exception_plain": "logging.basicConfig(level=logging.INFO) (default format) + logger.exception()",
    "logging_message": "logger.error('...: %s', e) with a timestamped logging format",
    "logging_debug": "logging.basicConfig(level=DEBUG) (httpx/httpcore DEBUG lines)",
    "json_logger": "python-json-logger JsonFormatter on the root logger, logger.exception()",
    "structlog_json": "structlog JSONRenderer + format_exc_info, log.exception()",
    "print_str": "print(e)",
    "print_repr": "print(repr(e))",
    "console_error": "console.error(err)",
    "console_message": "console.error('chat failed:', err.message)",
    "pino": "pino JSON logger, log.error({ err }, ...)",
}


@dataclass(frozen=True)
class Library:
    name: str  # the folder: tests/data/clients.<name>
    title: str
    lang: str  # py | node
    key: str  # the driver's name for it
    packages: tuple[str, ...]  # versions recorded; the first is the `source`
    registry_name: str  # the first package's name on its registry
    styles: tuple[str, ...]
    trace_format: str  # `format` of a traceback / dump
    message_format: str  # `format` of a bare message (print, logger.error, err.message)
    # a bare message names OpenAI: "body" when it carries the error body, "always" when it
    # carries an OpenAI class name, "text" when only OpenAI's own wording can
    message_attribution: str
    skip: frozenset[str] = frozenset()
    debug_env: dict[str, str] = field(default_factory=dict)
    retry_env: dict[str, str] = field(default_factory=dict)
    style_offset: int = 0
    negative_format: str = ""  # `format` of a successful call's logs; default trace_format

    @property
    def interpreter(self) -> Path:
        return PY028 if self.key == "openai028" else PY

    def source(self, versions: dict[str, str]) -> str:
        version = versions[self.packages[0]]
        if self.lang == "py":
            return f"https://pypi.org/project/{self.registry_name}/{version}/"
        return f"https://www.npmjs.com/package/{self.registry_name}/v/{version}"

    def version_text(self, versions: dict[str, str]) -> str:
        first, *rest = self.packages
        text = f"{self.registry_name} {versions[first]}"
        extra = [f"{p} {versions[p]}" for p in rest if p in versions]
        return text + (f" (with {', '.join(extra)})" if extra else "")

    def format_for(self, style: str, scenario: Scenario, text: bytes) -> str:
        """The corpus `format` (tests/test_corpus.py FORMATS, tests/corpus_table.py FAMILIES)."""
        if style in ("json_logger", "structlog_json", "pino"):
            return "JSON-lines log"
        if scenario.negative and not scenario.debug:  # a success at INFO
            if self.lang == "node":
                return self.negative_format or self.message_format
            return "httpx request line" if b"HTTP Request:" in text else "Python logging"
        if scenario.negative:
            return self.negative_format or self.trace_format
        if style == "print_repr":
            return "exception repr"
        if style == "print_str":
            return self.message_format if self.message_format == "LiteLLM" else "Python print"
        if style in MESSAGE_ONLY:
            return self.message_format
        return self.trace_format


NO_RETRIES = frozenset({"retries_rate_limit", "retries_server_error"})
# A 500 on every attempt only for the two openai SDKs; the others retry a 429 (one is enough).
ONE_RETRY = frozenset({"retries_server_error"})
NODE4_ONLY = frozenset(
    {
        "context_length",
        "invalid_api_key",
        "unsupported_region",
        "model_not_found",
        "rate_limit_tpm",
        "insufficient_quota",
        "bad_gateway_502",
        "connection_refused",
        "tls_self_signed",
        "timeout",
        "proxy_bad_gateway",
        "retries_rate_limit",
        "ok_debug",
    }
)

LIBRARIES: tuple[Library, ...] = (
    Library(
        "openai-python",
        "openai-python",
        "py",
        "openai",
        ("openai",),
        "openai",
        PY_STYLES,
        "openai-python v1 traceback",
        "Python logging",
        "body",
        debug_env={"OPENAI_LOG": "debug"},
        negative_format="openai-python v1",
    ),
    Library(
        "openai-python-0.28",
        "openai-python 0.28",
        "py",
        "openai028",
        ("openai",),
        "openai",
        PY_STYLES,
        "openai-python 0.x",
        "Python logging",
        "text",
        skip=NO_RETRIES | {"responses_context_window", "ok_debug_embeddings"},
        debug_env={"OPENAI_LOG": "debug"},
        style_offset=1,
        negative_format="openai-python 0.x logfmt",
    ),
    Library(
        "langchain-py",
        "LangChain (langchain-openai)",
        "py",
        "langchain",
        ("langchain-openai", "langchain-core", "openai"),
        "langchain-openai",
        PY_STYLES,
        "LangChain",
        "Python logging",
        "body",
        skip=ONE_RETRY | {"images_content_policy"},
        debug_env={"OPENAI_LOG": "debug"},
        style_offset=2,
    ),
    Library(
        "litellm",
        "LiteLLM",
        "py",
        "litellm",
        ("litellm", "openai"),
        "litellm",
        PY_STYLES,
        "LiteLLM",
        "LiteLLM",
        "always",
        skip=ONE_RETRY,
        style_offset=3,
    ),
    Library(
        "llamaindex",
        "LlamaIndex (llama-index-llms-openai)",
        "py",
        "llamaindex",
        ("llama-index-llms-openai", "llama-index-core", "llama-index-embeddings-openai", "openai"),
        "llama-index-llms-openai",
        PY_STYLES,
        "LlamaIndex",
        "Python logging",
        "body",
        skip=ONE_RETRY | {"images_content_policy", "ok_debug_embeddings"},
        debug_env={"OPENAI_LOG": "debug"},
        style_offset=4,
    ),
    Library(
        "openai-node",
        "openai-node",
        "node",
        "openai-node",
        ("openai",),
        "openai",
        NODE_STYLES,
        "openai-node stack",
        "openai-node",
        "text",
        debug_env={"OPENAI_LOG": "debug"},
        retry_env={"OPENAI_LOG": "info"},
        negative_format="openai-node",
    ),
    Library(
        "openai-node-4",
        "openai-node 4.x",
        "node",
        "openai-node-4",
        ("openai4",),
        "openai",
        NODE_STYLES,
        "openai-node stack",
        "openai-node",
        "text",
        skip=frozenset(s.name for s in SCENARIOS) - NODE4_ONLY,
        debug_env={"DEBUG": "true"},
        retry_env={"DEBUG": "true"},
        style_offset=1,
        negative_format="openai-node",
    ),
    Library(
        "vercel-ai",
        "Vercel AI SDK",
        "node",
        "vercel",
        ("ai", "@ai-sdk/openai"),
        "ai",
        NODE_STYLES,
        "Vercel AI SDK",
        "Vercel AI SDK",
        "text",
        skip=ONE_RETRY | {"ok_debug", "ok_debug_embeddings"},
        style_offset=2,
    ),
    Library(
        "langchain-js",
        "LangChain JS (@langchain/openai)",
        "node",
        "langchain-js",
        ("@langchain/openai", "@langchain/core", "openai"),
        "@langchain/openai",
        NODE_STYLES,
        "LangChain JS",
        "LangChain JS",
        "text",
        skip=NO_RETRIES | {"ok_debug_embeddings"},
    ),
)


# -- installing ----------------------------------------------------------------------------------


def ensure_installed(upgrade: bool) -> None:
    """Create the venvs and node_modules outside the repository when missing."""
    for venv, packages in ((WORK / "py", PY_PACKAGES), (WORK / "py028", PY028_PACKAGES)):
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            upgrade = True
        if upgrade:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", *packages], check=True)
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    if not (NODE_DIR / "package.json").exists():
        (NODE_DIR / "package.json").write_text('{"name": "clientgen-node", "private": true}\n')
    if upgrade or not (NODE_DIR / "node_modules" / "ai").exists():
        names = [p if upgrade is False else _latest(p) for p in NODE_PACKAGES]
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", *names], cwd=NODE_DIR, check=True
        )


def _latest(spec: str) -> str:
    if "@npm:" in spec:
        return spec
    return spec + "@latest"


# -- one capture ---------------------------------------------------------------------------------


@dataclass
class Ports:
    api: int
    closed: int
    tls: int
    proxy: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api}/v1"


@dataclass
class Capture:
    library: Library
    scenario: Scenario
    style: str
    name: str
    text: bytes
    span: tuple[int, int] | None
    exception: str
    requests: int
    fallback_from: str | None = None


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        {
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            # No fetches to the outside world (they would fail here anyway).
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HF_HUB_OFFLINE": "1",
            "TIKTOKEN_CACHE_DIR": str(WORK / "tiktoken-cache"),
            "CLIENTGEN_NODE_DIR": str(NODE_DIR),
        }
    )
    return env


def job_for(
    library: Library, scenario: Scenario, style: str, ports: Ports, index: int
) -> tuple[dict[str, Any], dict[str, str]]:
    env = base_env()
    job: dict[str, Any] = {
        "lib": library.key,
        "style": style,
        "endpoint": scenario.endpoint,
        "model": scenario.model,
        "params": scenario.params,
        "api_key": API_KEY,
        "base_url": ports.api_url,
        "timeout": None,
        "max_retries": None if scenario.retries else 0,
        "proxy": None,
        "debug": scenario.debug,
        "ticket": 4211 + 2 * index,
        "workers": 4,
        "clock": CLOCK_START + 420 * index,
    }
    transport = scenario.transport
    if transport == "conn_refused":
        job["base_url"] = f"http://127.0.0.1:{ports.closed}/v1"
    elif transport == "tls_plain":
        job["base_url"] = f"https://127.0.0.1:{ports.api}/v1"
    elif transport == "tls_self_signed":
        job["base_url"] = f"https://127.0.0.1:{ports.tls}/v1"
    elif transport == "timeout":
        job["timeout"] = 1.0
    elif transport in ("proxy_refused", "proxy_502"):
        job["base_url"] = f"https://127.0.0.1:{ports.tls}/v1"
        port = ports.closed if transport == "proxy_refused" else ports.proxy
        job["proxy"] = f"http://127.0.0.1:{port}"
        if library.lang == "py":
            env["HTTPS_PROXY"] = env["https_proxy"] = job["proxy"]
    if scenario.debug:
        env.update(library.debug_env)
    if scenario.retries:
        env.update(library.retry_env)
    return job, env


def run_driver(
    library: Library, job: dict[str, Any], env: dict[str, str], out: Path
) -> dict[str, Any]:
    result = out.with_suffix(".result.json")
    job = {**job, "result": str(result)}
    env = {**env, "CLIENTGEN_JOB": json.dumps(job)}
    if library.lang == "py":
        argv = [str(library.interpreter), str(HERE / "drivers" / "py_driver.py")]
    else:
        argv = ["node", str(HERE / "drivers" / "node_driver.cjs")]
    with out.open("wb") as log:
        done = subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=WORK, timeout=180, check=False
        )
    if done.returncode != 0 or not result.exists():
        raise RuntimeError(
            f"driver failed ({done.returncode}): {out.read_text(errors='replace')[-3000:]}"
        )
    return dict(json.loads(result.read_text()))


def line_span(text: bytes, start: int, end: int) -> tuple[int, int]:
    record = text[start:end].rstrip()
    first = text[:start].count(b"\n") + 1
    return first, first + record.count(b"\n")


def capture(
    library: Library,
    scenario: Scenario,
    style: str,
    ports: Ports,
    server: ScriptedOpenAI,
    index: int,
    tmp: Path,
) -> Capture:
    name = f"{scenario.name}__{style}"
    job, env = job_for(library, scenario, style, ports, index)
    server.begin(f"{library.name}/{name}", scenario, job["clock"])
    out = tmp / f"{library.name}__{name}.log"
    result = run_driver(library, job, env, out)
    text = out.read_bytes()
    requests = len(server.requests())
    if scenario.negative:
        if result["outcome"] != "ok":
            raise RuntimeError(
                f"{library.name}/{name}: expected success:\n{text.decode(errors='replace')}"
            )
        return Capture(library, scenario, style, name, text, None, "", requests)
    if result["outcome"] != "error":
        raise RuntimeError(f"{library.name}/{name}: no error:\n{text.decode(errors='replace')}")
    if scenario.status is not None and requests == 0:
        raise RuntimeError(
            f"{library.name}/{name}: the server got no request (a client-side error?):\n"
            + text.decode(errors="replace")
        )
    span = line_span(text, *result["span"])
    return Capture(library, scenario, style, name, text, span, result["exception"], requests)


# -- the matrix ----------------------------------------------------------------------------------


def message_ok(library: Library, scenario: Scenario, style: str) -> bool:
    """May this capture log only the error's text (print(e), repr(e), err.message)?

    Only when that text still shows whose error it is: the body in it (openai-python's
    "Error code: 400 - {...}"), an OpenAI class name in it (LiteLLM's OpenAIException;
    openai-python's APIConnectionError / APITimeoutError in a repr), or OpenAI's own wording
    (the taxonomy's evidence) for libraries whose message is the text alone. A bare status
    ("Error code: 409", "409 status code (no body)") from an unnamed client is not enough.
    """
    if scenario.negative or style not in MESSAGE_ONLY:
        return True
    if library.message_attribution == "always":
        return True
    if library.message_attribution == "body":
        if style == "print_repr" and scenario.transport:
            return True
        return scenario.json_body
    return scenario.distinctive


def styles_for(library: Library, scenario: Scenario, turn: int) -> list[str]:
    """The styles to try for this capture, first choice first (rotation, then fallbacks)."""
    styles = list(library.styles)
    if scenario.debug and library.lang == "node":
        return ["console_error"]
    if scenario.debug:  # the library's debug switch; for embeddings also the root logger at DEBUG
        return ["logging_debug" if scenario.endpoint == "embeddings" else "logging_exception"]
    start = (turn + library.style_offset) % len(styles)
    order = styles[start:] + styles[:start]
    if scenario.retries and library.lang == "py":
        order = [s for s in order if s in RETRY_STYLES]
    return [s for s in order if message_ok(library, scenario, s)]


def plan(
    libraries: Iterable[Library], scenarios: Iterable[Scenario]
) -> list[tuple[Library, Scenario, int]]:
    chosen = list(scenarios)
    jobs = []
    for library in libraries:
        turn = 0
        for scenario in chosen:
            if scenario.name in library.skip:
                continue
            jobs.append((library, scenario, turn))
            turn += 1
    return jobs


# -- writing the cases ---------------------------------------------------------------------------


def toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def note_for(c: Capture, versions: dict[str, str]) -> str:
    s = c.scenario
    text = (
        f"generated by tests/clientgen: {c.library.version_text(versions)}, scenario {s.name} "
        f"({s.summary}), logged with {STYLE_TEXT[c.style]}"
    )
    if c.fallback_from:
        text += f"; {STYLE_TEXT[c.fallback_from]} gave a multi-line message, so this style instead"
    if s.negative:
        return text + "; NEGATIVE: a successful call, nothing failed"
    if s.retries:
        text += (
            f"; the library retried on its own ({c.requests} requests reached the server, each "
            "answered the same): one failed call as the app sees it, so ONE finding, at the "
            "app's error record"
        )
    before = library_lines(c)
    if before:
        first, last, kinds = before
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        text += (
            f"; {where}: what the library and its HTTP client logged on their own about this same "
            f"call ({', '.join(kinds)}): not findings of their own"
        )
    if s.transport:
        text += f"; client exception {c.exception}"
    if s.transport == "proxy_502" and b"The proxy could not connect upstream" in c.text:
        text += (
            " (the proxy agent hands the proxy's 502 answer to CONNECT to the client as if it "
            "were the API's response; the page is the proxy's, the cause is the proxy: network)"
        )
    return text


LIBRARY_LINES = (
    (r"HTTP Request: (POST|GET)", "httpx's INFO status line"),
    (r"Retrying request to", "openai-python's INFO 'Retrying request' notices"),
    (r"Retrying \(Retry\(", "urllib3's retry warnings"),
    (r"Retrying llama_index", "LlamaIndex's tenacity retry warnings, each quoting the error"),
    (r"OpenAI API error received", "openai 0.28's INFO record of the error (logger openai)"),
    (r"Give Feedback / Get Help", "LiteLLM's 'Give Feedback / Get Help' banner"),
    (r"LiteLLM completion\(\) model=|LiteLLM:INFO", "LiteLLM's INFO call lines"),
    (r"attempts remaining|no more retries left|not retryable", "the SDK's per-attempt retry lines"),
)


def library_lines(c: Capture) -> tuple[int, int, list[str]] | None:
    """The lines between the app's last context line and its error record: the library's own."""
    if c.span is None:
        return None
    lines = c.text.decode(errors="replace").split("\n")
    start = next(
        (i + 1 for i, line in enumerate(lines) if "drafting reply with" in line), 0
    )  # 0-based index of the line after the context line
    chunk = [(n + 1, line) for n, line in enumerate(lines[start : c.span[0] - 1], start)]
    chunk = [(n, line) for n, line in chunk if line.strip()]
    if not chunk:
        return None
    kinds = []
    for pattern, kind in LIBRARY_LINES:
        if any(re.search(pattern, line) for _, line in chunk) and kind not in kinds:
            kinds.append(kind)
    return chunk[0][0], chunk[-1][0], kinds or ["its own log lines"]


def event_text(c: Capture) -> str:
    assert c.span is not None
    lines = c.text.decode(errors="replace").split("\n")
    return "\n".join(lines[c.span[0] - 1 : c.span[1]])


def case_toml(c: Capture, versions: dict[str, str]) -> str:
    s = c.scenario
    lines = [
        "[[case]]",
        f"file = {toml_str(c.name + '.log')}",
        f"format = {toml_str(c.library.format_for(c.style, s, c.text))}",
        f"source = {toml_str(c.library.source(versions))}",
        f"note = {toml_str(note_for(c, versions))}",
    ]
    if c.span is None:
        lines.append("findings = []")
    else:
        # The code as the server sent it, where the logged event shows it; a bare message
        # ("401 Incorrect API key provided: ...") carries none (tests/data/README.md).
        code = f", code = {toml_str(s.code)}" if s.code and s.code in event_text(c) else ""
        lines += [
            "findings = [",
            f"  {{ category = {toml_str(s.category or '')}{code}, lines = [{c.span[0]}, {c.span[1]}] }},",
            "]",
        ]
    return "\n".join(lines) + "\n"


def write_cases(
    folder: Path, library: Library, captures: list[Capture], versions: dict[str, str]
) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    header = (
        f"# clients.{library.name}: {library.title} {library.version_text(versions)} against a "
        "scripted loopback OpenAI server.\n"
        "# Written by tests/clientgen/run.py (do not edit by hand: rerun it). The findings are "
        "what the server sent\n# (tests/clientgen/scenarios.py), not what the classifier says.\n"
    )
    blocks = [header]
    for c in captures:
        (folder / f"{c.name}.log").write_bytes(c.text)
        blocks.append(case_toml(c, versions))
    (folder / "expected.toml").write_text("\n".join(blocks), encoding="utf-8")


# -- main ----------------------------------------------------------------------------------------


def collect_versions(tmp: Path, libraries: list[Library]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for library in libraries:
        job = {"versions": list(library.packages), "lib": library.key}
        out = tmp / f"versions-{library.name}.log"
        found[library.name] = run_driver(library, job, base_env(), out)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lib", action="append", help="only these libraries (folder names)")
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    parser.add_argument("--upgrade", action="store_true", help="install the newest releases first")
    parser.add_argument("--keep", type=Path, help="write captures here, not into tests/data")
    parser.add_argument("--port-base", type=int, default=39170)
    args = parser.parse_args(argv)
    if args.scenario and not args.keep:
        parser.error("--scenario writes only some cases of a library: use it with --keep DIR")

    ensure_installed(args.upgrade)
    ports = Ports(args.port_base, args.port_base + 1, args.port_base + 2, args.port_base + 3)
    if not port_is_closed(ports.closed):
        raise SystemExit(f"port {ports.closed} must be closed (connection refused)")
    # The whole matrix fixes each capture's number (its clock, its ticket, held out or not),
    # so that a run of some libraries or scenarios writes what the full run writes for them.
    jobs = [
        (index, library, scenario, turn)
        for index, (library, scenario, turn) in enumerate(plan(LIBRARIES, SCENARIOS))
        if (not args.lib or library.name in args.lib)
        and (not args.scenario or scenario.name in args.scenario)
    ]
    libraries = [lib for lib in LIBRARIES if any(job[1] is lib for job in jobs)]

    server = ScriptedOpenAI(ports.api, API_KEY)
    tls = SelfSignedTLS(ports.tls, WORK / "tls")
    proxy = BadGatewayProxy(ports.proxy)
    serve(tls)
    serve(proxy)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="clientgen-"))
    try:
        versions = collect_versions(tmp, libraries)
        print("versions:", json.dumps(versions, indent=1), flush=True)
        written: dict[str, list[Capture]] = {lib.name: [] for lib in libraries}
        heldout: dict[str, list[Capture]] = {lib.name: [] for lib in libraries}
        failed: list[str] = []
        for done, (index, library, scenario, turn) in enumerate(jobs, 1):
            got: Capture | None = None
            tried: str | None = None
            for style in styles_for(library, scenario, turn):
                got = None
                for attempt in range(3):  # a driver that crashed or hung gets two more tries
                    try:
                        got = capture(library, scenario, style, ports, server, index, tmp)
                        break
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        error = f"{library.name}/{scenario.name}__{style}: {exc}"
                        print(f"[{done}/{len(jobs)}] try {attempt + 1} FAILED {error[:3000]}")
                if got is None:
                    failed.append(error)
                    break
                if style in MESSAGE_ONLY and got.span and got.span[0] != got.span[1]:
                    tried = tried or style
                    continue  # the message spans lines: take the next style
                break
            if got is None:
                continue
            got.fallback_from = tried
            held = index % 5 == 4  # every fifth capture of the matrix is held out
            (heldout if held else written)[library.name].append(got)
            print(
                f"[{done}/{len(jobs)}] {library.name} {got.name} -> {got.exception or 'ok'} "
                f"{got.span or ''}{' (held out)' if held else ''}",
                flush=True,
            )
        root = args.keep or DATA
        hold = (args.keep / "heldout") if args.keep else HELDOUT
        for library in libraries:
            lib_versions = versions[library.name]
            write_cases(
                root / f"clients.{library.name}", library, written[library.name], lib_versions
            )
            write_cases(hold / library.name, library, heldout[library.name], lib_versions)
        kept = sum(map(len, written.values()))
        held = sum(map(len, heldout.values()))
        print(f"{kept + held} captures: {kept} in {root}, {held} held out in {hold}")
        if failed:
            print(f"{len(failed)} FAILED (not written):\n  " + "\n  ".join(f[:200] for f in failed))
            return 1
    finally:
        server.stop()
        tls.shutdown()
        proxy.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
