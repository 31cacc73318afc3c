#!/usr/bin/env python3
"""Time from an error line to the Slack request arriving: `oai400d run` with a bot token,
against the tests' Slack Web API server on 127.0.0.1 (tests/fakes/slack.py).

Each trial appends one error line naming a new model (a new alert), with group_wait 0s, and
measures from the write() to the moment the Slack server receives the chat.postMessage that
carries that model. `slack.max_messages_per_second` is raised to 20 so that the measure is the
pipeline, not the one-message-per-second pacing (trials are spaced anyway).

    python bench/slack_latency.py --trials 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.fakes.slack import FakeSlack  # noqa: E402

from benchlib import resolve_command  # noqa: E402
from daemon_latency import CONFIG_TEMPLATE, error_line, percentile  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--cmd", default=None, help="the oai400d command (default: see benchlib)")
    args = ap.parse_args()
    cmd = resolve_command(args.cmd)
    with tempfile.TemporaryDirectory(prefix="oai400d-slack-bench-") as tmp, FakeSlack() as slack:
        work = Path(tmp)
        (work / "logs").mkdir()
        config = work / "config.toml"
        config.write_text(
            CONFIG_TEMPLATE.format(logs=work / "logs", state=work / "state.db")
            + f'\n[slack]\nbase_url = "{slack.base_url}"\nchannel = "#openai-alerts"\n'
            "max_messages_per_second = 20\n"
        )
        env = {**os.environ, "SLACK_BOT_TOKEN": slack.token}
        proc = subprocess.Popen(
            [*cmd, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 60
            for raw in iter(proc.stderr.readline, b""):
                if b"watching" in raw or time.monotonic() > deadline:
                    break
            log = work / "logs" / "app.log"
            latencies: list[float] = []
            missed = 0
            for trial in range(args.trials):
                model = f"gpt-slack-{trial}"
                with log.open("a") as handle:
                    written = time.time()
                    handle.write(error_line(model))
                    handle.flush()
                try:
                    arrived = slack.wait_for(
                        lambda m=model: next(
                            (
                                r.received_at
                                for r in slack.requests("chat.postMessage")
                                if m in json.dumps(r.params)
                            ),
                            None,
                        ),
                        timeout=10,
                    )
                except AssertionError:
                    missed += 1
                    continue
                latencies.append((arrived - written) * 1000)
                time.sleep(random.uniform(0.0, 0.02))  # not synchronisation: desynchronise trials
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    latencies.sort()
    p50, p90, p99 = (percentile(latencies, q) for q in (0.5, 0.9, 0.99))
    print(f"trials: {args.trials}, delivered: {len(latencies)}, missed: {missed}")
    print(
        f"error line → Slack request, ms: p50 {p50:.0f}  p90 {p90:.0f}  p99 {p99:.0f}  "
        f"max {latencies[-1]:.0f}"
    )
    print(
        f"\nMarkdown: error line → chat.postMessage received, {len(latencies)} trials: "
        f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms"
    )
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
