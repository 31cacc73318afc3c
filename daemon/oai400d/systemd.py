"""What the daemon says to systemd (sd_notify: ready, reloading, stopping, still alive) and the
signals it takes from it (SIGTERM stops, SIGHUP reloads)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("oai400d")


class SystemdNotify:
    """sd_notify on a datagram socket ($NOTIFY_SOCKET); silent when not under systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2  # ping at half the deadline

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto("\n".join(fields).encode(), target)
        except OSError as exc:  # systemd gone or socket full: never fatal for the daemon
            log.debug("sd_notify failed: %s", exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def take_signals(stop: Callable[[], None], reload: Callable[[], None]) -> None:
    """SIGTERM/SIGINT call `stop`, SIGHUP `reload`. The signals are blocked in every thread and
    taken by one thread with sigwait(): a Python-level handler would run in the main thread
    between two bytecodes, possibly while it holds the lock of the very Event the handler sets,
    and hang the daemon. Call this before any other thread starts."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)

    def take() -> None:
        while True:
            if signal.sigwait(HANDLED_SIGNALS) == signal.SIGHUP:
                reload()
            else:
                stop()

    threading.Thread(target=take, name="oai400d-signals", daemon=True).start()
