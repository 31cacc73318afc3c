"""A throwaway PostgreSQL cluster on 127.0.0.1 for the fleet tests: initdb, pg_ctl start, stop.

The cluster lives in a fresh directory under the system temp dir and listens on a free port on
127.0.0.1 (and a Unix socket in the same directory, never the system's /var/run/postgresql).
PostgreSQL refuses to run as root, so as root the cluster is owned by, and the server run as,
an unprivileged user (`nobody`) through `runuser`. Anything that stops it from starting raises
PostgresUnavailable with a reason a person can act on; the fixture turns that into a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

BINDIR_ENV = "OAI400D_TEST_PG_BINDIR"  # overrides the search for the server binaries
RUN_AS = "nobody"  # the unprivileged user that owns the cluster when the tests run as root
START_TIMEOUT = 30  # seconds for pg_ctl -w; a cold start takes well under a second here
# Speed over durability against an OS crash only (the cluster is thrown away); commits still
# reach the WAL before they return, so a killed or stopped server loses nothing (outage tests).
FAST_SETTINGS = ("fsync=off", "full_page_writes=off")


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why and how to get one."""


def find_bindir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres: pg_config, Debian's layout, or PATH."""
    if os.environ.get(BINDIR_ENV):  # a chosen version, or a non-existent dir to test the skip
        chosen = Path(os.environ[BINDIR_ENV])
        return chosen if (chosen / "initdb").is_file() else None
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    # Debian ships the server in /usr/lib/postgresql/<major>/bin; pg_config may be the client's.
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running throwaway cluster; `dsn(dbname)` for a URI, `create_database()` per test."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="oai400d-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.user = "postgres"  # the cluster's superuser (initdb -U), trusted on 127.0.0.1 only
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(RUN_AS)
            except KeyError:
                self._cleanup()
                raise PostgresUnavailable(
                    f"running as root and there is no user {RUN_AS!r} to run PostgreSQL as "
                    "(it refuses root); create one or run the tests as a normal user"
                ) from None
            if shutil.which("runuser") is None:
                self._cleanup()
                raise PostgresUnavailable("running as root without runuser(1) to drop privileges")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._run_as = RUN_AS
        self.root.chmod(0o700)

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self._run_as, "--"] if self._run_as else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,  # runuser keeps the cwd; the unprivileged user must be able to enter it
        )

    def start(self) -> None:
        """initdb (trust auth, superuser `postgres`) and start on a free port; or raise why not."""
        init = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-sync",
        )
        if init.returncode != 0:
            self._cleanup()
            raise PostgresUnavailable(f"initdb failed: {_tail(init.stderr or init.stdout)}")
        last = ""
        for _ in range(3):  # the free port can be taken between probing and binding it
            self.port = free_port()
            started = self._pg_ctl_start()
            if started.returncode == 0:
                return
            last = self.log.read_text(errors="replace") if self.log.exists() else started.stderr
        self._cleanup()
        raise PostgresUnavailable(f"the server did not start: {_tail(last)}")

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = " ".join(
            [f"-k {self.root}", f"-p {self.port}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in FAST_SETTINGS]
        )
        return self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-o",
            options,
            "start",
            timeout=START_TIMEOUT + 10,
        )

    def halt(self) -> None:
        """Stop the server abruptly (an outage), keeping its data for `resume`."""
        stopped = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
        )
        assert stopped.returncode == 0, stopped.stderr

    def resume(self) -> None:
        """Start the halted server again on the same port (the outage is over)."""
        started = self._pg_ctl_start()
        assert started.returncode == 0, _tail(self.log.read_text(errors="replace"))

    def stop(self) -> None:
        """Stop the server (immediate: nothing in it is worth a checkpoint) and delete it all."""
        if self.data.exists():
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
                timeout=60,
            )
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        """A postgresql:// URI for a database of this server, as the superuser."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database (so tests never see each other's tables); its URI."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def start_postgres() -> PostgresServer:
    """A started throwaway server, or PostgresUnavailable saying why there cannot be one."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via "
            f"${BINDIR_ENV}, pg_config --bindir, /usr/lib/postgresql/*/bin or PATH; install "
            "Debian's `postgresql` package"
        )
    server = PostgresServer(bindir)
    server.start()
    return server


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
