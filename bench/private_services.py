"""A PostgreSQL cluster and a Redis server of one's own, to stop, crash and restart at will.

The machine's shared PostgreSQL (5432) and Redis (6379) serve everyone else: outage tests and
bench/faults.py never touch them. PrivatePostgres runs initdb into a temporary directory (as the
`postgres` user when running as root: initdb refuses root) and starts the cluster on a port of its own;
PrivateRedis starts a redis-server with an append-only file, as a broker should run, so that a restart,
even a kill -9, keeps the queued tasks.

    with PrivatePostgres(workdir) as pg, PrivateRedis(workdir) as redis:
        pg.restart(mode="immediate")  # a crash: the server kills its backends, recovers from the WAL
        redis.restart()               # kill -9 and start again on the same append-only file

`missing()` says what is not installed (tests skip on it).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"]


def _pg_tool(name):
    for directory in PG_BIN_DIRS:
        path = Path(directory) / name
        if path.exists():
            return str(path)
    return shutil.which(name)


def missing():
    """What this machine lacks to run private servers (empty when it has everything)."""
    lacks = [name for name in ("initdb", "pg_ctl") if not _pg_tool(name)]
    if not shutil.which("redis-server"):
        lacks.append("redis-server")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        lacks.append("runuser (initdb refuses to run as root)")
    return lacks


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class PrivatePostgres:
    def __init__(self, workdir, port=None):
        # As root the cluster belongs to `postgres`, which may not enter a private working directory (pytest's
        # tmp_path is mode 0700): it then gets a directory of its own in the system's temporary directory.
        self.dir = Path(tempfile.mkdtemp(prefix="promo-pg-")) if os.geteuid() == 0 else Path(workdir) / "postgres"
        self.data = self.dir / "data"
        self.port = port or free_port()
        self.restarts = 0

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command):
        if os.geteuid() == 0:  # initdb and pg_ctl refuse root: the cluster belongs to `postgres`
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self):
        if not self.data.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres")
            self._run(_pg_tool("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w",
                  "start")  # fmt: skip
        wait_port(self.port)
        return self

    def stop(self, mode="fast"):
        """fast: backends are told to quit (a planned restart); immediate: killed, recovery at next start (a crash)."""
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode="fast", down_seconds=1.0):
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1

    def create_database(self, name):
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self, workdir, port=None):
        self.dir = Path(workdir) / "redis"
        self.port = port or free_port()
        self.process = None
        self.restarts = 0

    def url(self, db):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        log = open(self.dir / "server.log", "a")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_port(self.port)
        return self

    def stop(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def restart(self, sig=signal.SIGKILL, down_seconds=1.0):
        self.stop(sig)
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
