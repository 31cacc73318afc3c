"""One capture with a Python client library, logged the way applications log.

Run by tests/clientgen/run.py under /work/clientgen/py (openai, langchain-openai, litellm,
llama-index) or /work/clientgen/py028 (openai 0.28), never by the test suite. The job comes as
JSON in $CLIENTGEN_JOB; whatever the app and the library print goes to stdout/stderr (the same
file: the capture). The result (what happened, and the byte range of the error record in that
file) is written to job["result"].

Only the standard library is imported at the top: each library (and its logging set-up through
OPENAI_LOG and friends) is imported after the app has configured logging, as an app does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
from typing import Any

JOB: dict[str, Any] = json.loads(os.environ["CLIENTGEN_JOB"])
random.seed(0)  # openai-python's retry jitter: the same waits in every run

STEPS = (0.004, 0.213, 0.051, 0.377, 0.019, 0.142, 0.008, 0.266)


class Clock:
    """A fake wall clock: every log record a little later than the one before."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.i = 0

    def now(self) -> float:
        self.t += STEPS[self.i % len(STEPS)]
        self.i += 1
        return self.t

    def stamp(self, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        import time

        t = self.now()
        return time.strftime(fmt, time.gmtime(t)) + f",{int((t % 1) * 1000):03d}"

    def iso(self) -> str:
        import time

        t = self.now()
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


CLOCK = Clock(JOB.get("clock", 0.0))
_factory = logging.getLogRecordFactory()


def _record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _factory(*args, **kwargs)
    record.created = CLOCK.now()
    record.msecs = (record.created - int(record.created)) * 1000
    return record


logging.setLogRecordFactory(_record)


def size() -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    return os.fstat(1).st_size


# -- the app's logging ---------------------------------------------------------------------------


class App:
    """The app around the call: context lines before and after, and the error record."""

    ticket = JOB.get("ticket", 0)

    def setup(self) -> None: ...

    def info(self, message: str) -> None: ...

    def error(self, exc: BaseException) -> None: ...


class LoggingApp(App):
    FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"

    def __init__(self, mode: str, level: int = logging.INFO) -> None:
        self.mode, self.level = mode, level

    def setup(self) -> None:
        if self.mode == "plain":
            logging.basicConfig(level=self.level)
        else:
            logging.basicConfig(level=self.level, format=self.FORMAT)
        self.log = logging.getLogger("app.worker")

    def info(self, message: str) -> None:
        self.log.info(message)

    def error(self, exc: BaseException) -> None:
        if self.mode == "message":
            self.log.error("ticket %s: model call failed: %s", self.ticket, exc)
        else:
            self.log.exception("ticket %s: model call failed", self.ticket)


class JsonLoggerApp(App):
    """python-json-logger on the root logger: one JSON object a line, the traceback in exc_info."""

    def setup(self) -> None:
        from pythonjsonlogger.json import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        self.log = logging.getLogger("app.worker")

    def info(self, message: str) -> None:
        self.log.info(message, extra={"ticket": self.ticket})

    def error(self, exc: BaseException) -> None:
        self.log.exception("model call failed", extra={"ticket": self.ticket})


class StructlogApp(App):
    """structlog rendering JSON lines, exceptions as a formatted traceback string."""

    def setup(self) -> None:
        import structlog

        def stamp(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
            event["timestamp"] = CLOCK.iso()
            return event

        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                stamp,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        self.log = structlog.get_logger("app.worker")

    def info(self, message: str) -> None:
        self.log.info(message, ticket=self.ticket)

    def error(self, exc: BaseException) -> None:
        self.log.exception("model_call_failed", ticket=self.ticket)


class PrintApp(App):
    def __init__(self, use_repr: bool) -> None:
        self.use_repr = use_repr

    def info(self, message: str) -> None:
        print(f"[{CLOCK.stamp()}] {message}")

    def error(self, exc: BaseException) -> None:
        print(repr(exc) if self.use_repr else exc)


STYLES = {
    "logging_exception": lambda: LoggingApp("exception"),
    "logging_exception_plain": lambda: LoggingApp("plain"),
    "logging_message": lambda: LoggingApp("message"),
    "logging_debug": lambda: LoggingApp("exception", logging.DEBUG),
    "json_logger": JsonLoggerApp,
    "structlog_json": StructlogApp,
    "print_str": lambda: PrintApp(False),
    "print_repr": lambda: PrintApp(True),
}

# -- the calls -----------------------------------------------------------------------------------

SYSTEM = "You draft short, polite replies to customer support tickets."
PROMPT = "Customer asks: where is the refund for order 4211?"
TEXTS = ["refund policy for damaged items", "shipping times to Canada"]


def user_content(params: dict[str, Any]) -> Any:
    if "image_url" in params:
        return [
            {"type": "text", "text": "Read the total from this receipt."},
            {"type": "image_url", "image_url": {"url": params["image_url"]}},
        ]
    return PROMPT


def chat_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in ("max_tokens", "temperature")}


def call_openai(job: dict[str, Any]) -> None:
    from openai import OpenAI

    options: dict[str, Any] = {"api_key": job["api_key"], "base_url": job["base_url"]}
    if job["max_retries"] is not None:
        options["max_retries"] = job["max_retries"]
    if job["timeout"]:
        options["timeout"] = job["timeout"]
    client = OpenAI(**options)
    params, model = job["params"], job["model"]
    if job["endpoint"] == "embeddings":
        extra = {"dimensions": params["dimensions"]} if "dimensions" in params else {}
        client.embeddings.create(model=model, input=TEXTS, **extra)
    elif job["endpoint"] == "images":
        client.images.generate(model=model, prompt="a receipt", size="1024x1024")
    elif job["endpoint"] == "responses":
        client.responses.create(model=model, instructions=SYSTEM, input=PROMPT)
    else:
        client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_content(params)},
            ],
            **chat_kwargs(params),
        )


def call_openai028(job: dict[str, Any]) -> None:
    import openai

    openai.api_key = job["api_key"]
    openai.api_base = job["base_url"]
    params, model = job["params"], job["model"]
    timeout = job["timeout"] or 600
    if job["endpoint"] == "embeddings":
        openai.Embedding.create(model=model, input=TEXTS, request_timeout=timeout)
    elif job["endpoint"] == "images":
        openai.Image.create(prompt="a receipt", n=1, size="1024x1024", request_timeout=timeout)
    else:
        openai.ChatCompletion.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_content(params)},
            ],
            request_timeout=timeout,
            **chat_kwargs(params),
        )


def client_options(job: dict[str, Any], base_url_key: str) -> dict[str, Any]:
    """The key, the server's URL (under the library's own name for it), retries and timeout."""
    options: dict[str, Any] = {"api_key": job["api_key"], base_url_key: job["base_url"]}
    if job["max_retries"] is not None:
        options["max_retries"] = job["max_retries"]
    if job["timeout"]:
        options["timeout"] = job["timeout"]
    return options


def call_langchain(job: dict[str, Any]) -> None:
    params, model = job["params"], job["model"]
    common = client_options(job, "base_url")
    if job["endpoint"] == "embeddings":
        from langchain_openai import OpenAIEmbeddings

        extra = {"dimensions": params["dimensions"]} if "dimensions" in params else {}
        embeddings = OpenAIEmbeddings(
            model=model, check_embedding_ctx_length=False, **common, **extra
        )
        embeddings.embed_documents(TEXTS)
        return
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    if job["endpoint"] == "responses":
        common["use_responses_api"] = True
    llm = ChatOpenAI(model=model, **common, **chat_kwargs(params))
    llm.invoke([SystemMessage(SYSTEM), HumanMessage(user_content(params))])


def call_litellm(job: dict[str, Any]) -> None:
    import litellm

    if job["debug"]:
        litellm._turn_on_debug()
    params, model = job["params"], "openai/" + job["model"]
    common = client_options(job, "api_base")
    if job["max_retries"] is not None:
        common["num_retries"] = job["max_retries"]
    if job["endpoint"] == "embeddings":
        extra = {"dimensions": params["dimensions"]} if "dimensions" in params else {}
        litellm.embedding(model=model, input=TEXTS, **common, **extra)
    elif job["endpoint"] == "images":
        litellm.image_generation(model=model, prompt="a receipt", size="1024x1024", **common)
    elif job["endpoint"] == "responses":
        litellm.responses(model=model, input=PROMPT, instructions=SYSTEM, **common)
    else:
        litellm.completion(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_content(params)},
            ],
            **common,
            **chat_kwargs(params),
        )


def call_llamaindex(job: dict[str, Any]) -> None:
    params, model = job["params"], job["model"]
    common = client_options(job, "api_base")
    if job["endpoint"] == "embeddings":
        from llama_index.embeddings.openai import OpenAIEmbedding

        extra = {"dimensions": params["dimensions"]} if "dimensions" in params else {}
        OpenAIEmbedding(model=model, **common, **extra).get_text_embedding_batch(TEXTS)
        return
    from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock

    if "image_url" in params:
        blocks = [
            TextBlock(text="Read the total from this receipt."),
            ImageBlock(url=params["image_url"]),
        ]
        user = ChatMessage(role="user", blocks=blocks)
    else:
        user = ChatMessage(role="user", content=PROMPT)
    messages = [ChatMessage(role="system", content=SYSTEM), user]
    if job["endpoint"] == "responses":
        from llama_index.llms.openai import OpenAIResponses

        OpenAIResponses(model=model, **common).chat(messages)
        return
    from llama_index.llms.openai import OpenAI

    OpenAI(model=model, **common, **chat_kwargs(params)).chat(messages)


CALLS = {
    "openai": call_openai,
    "openai028": call_openai028,
    "langchain": call_langchain,
    "litellm": call_litellm,
    "llamaindex": call_llamaindex,
}


def versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def main() -> None:
    if JOB.get("versions"):
        with open(JOB["result"], "w") as out:
            json.dump(versions(JOB["versions"]), out)
        return
    app = STYLES[JOB["style"]]()
    app.setup()
    ticket = JOB.get("ticket", 0)
    app.info(f"worker started (queue=support-replies, concurrency={JOB['workers']})")
    app.info(f"ticket {ticket}: drafting reply with {JOB['model']}")
    result: dict[str, Any] = {"outcome": "ok"}
    try:
        CALLS[JOB["lib"]](JOB)
    except Exception as exc:
        start = size()
        app.error(exc)
        end = size()
        kind = type(exc)
        result = {
            "outcome": "error",
            "exception": f"{kind.__module__}.{kind.__qualname__}",
            "span": [start, end],
        }
        app.info(f"ticket {ticket}: requeued (attempt 1 of 3)")
    else:
        app.info(f"ticket {ticket}: reply drafted, waiting for agent review")
    app.info(f"ticket {ticket + 1}: skipped (customer closed it)")
    with open(JOB["result"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
