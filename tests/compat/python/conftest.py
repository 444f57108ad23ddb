"""Starts one sluiced for the pynsq suite, on loopback port 0, and parses its listening lines.

The binary is target/debug/sluiced (built by `cargo build --bins`); SLUICED overrides it with a
command line (for example a release build). The daemon's output is drained in a thread so its
pipe never fills, and its last lines are shown when a test fails.
"""

import collections
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LISTENING = re.compile(r"(?<![A-Za-z0-9])(TCP|HTTP): listening on (\S+)")
STARTUP_TIMEOUT_S = 10


class Broker:
    def __init__(self):
        command = os.environ.get("SLUICED")
        argv = shlex.split(command) if command else [os.path.join(REPO, "target", "debug", "sluiced")]
        if not command and not os.path.exists(argv[0]):
            pytest.fail("sluiced is not built: run `cargo build --bins` (scripts/test.sh does)")
        self.data_dir = tempfile.mkdtemp(prefix="sluice-pynsq-")
        argv += [
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            "--data-path=" + self.data_dir,
        ]
        self.log = collections.deque(maxlen=60)
        self.addresses = {}
        self.ready = threading.Event()
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(STARTUP_TIMEOUT_S):
            self.stop()
            pytest.fail("sluiced did not log both listening lines:\n" + self.tail())
        self.tcp = self.addresses["TCP"]
        self.http = self.addresses["HTTP"]

    def _drain(self):
        for raw in self.proc.stdout:
            line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", raw.decode("utf-8", "replace").rstrip())
            self.log.append(line)
            match = LISTENING.search(line)
            if match:
                self.addresses[match.group(1)] = match.group(2)
                if len(self.addresses) == 2:
                    self.ready.set()

    def tail(self):
        return "\n".join("  | " + line for line in self.log) or "  (no output)"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def broker():
    broker = Broker()
    yield broker
    broker.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    broker = item.funcargs.get("broker") if hasattr(item, "funcargs") else None
    if report.failed and broker is not None:
        report.sections.append(("sluiced output", broker.tail()))

