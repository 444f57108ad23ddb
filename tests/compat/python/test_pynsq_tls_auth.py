"""pynsq's negotiated features against sluiced: TLS, deflate, snappy and AUTH, unchanged.

Goal: pynsq's Writer and Reader, configured as their users do (tls_v1 with CA verification and a
client certificate, deflate, snappy, auth_secret), publish and consume through sluiced exactly
as through nsqd. Method: certificates are made here with the openssl command line (a CA, a
server certificate for 127.0.0.1, a client certificate); each test starts its own sluiced with
the flags it needs; an auth server (http.server on a thread) grants one topic and records its
queries. Snappy needs the python-snappy module; without it that test is skipped loudly. Every
wait is bounded.
"""

import asyncio
import collections
import http.server
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.parse

import nsq
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
LISTENING = re.compile(r"(?<![A-Za-z0-9])(TCP|HTTP|HTTPS): listening on (\S+)")
DEADLINE_S = 30


async def eventually(predicate, what, timeout_s=DEADLINE_S):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))
        await asyncio.sleep(0.02)


class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (CN pynsq-client)."""

    def __init__(self, directory):
        self.dir = directory

        def run(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=sluice pynsq CA", "-keyout", "ca.key", "-out", "ca.pem")
        for name, cn, san in (("server", "sluiced", "IP:127.0.0.1"),
                              ("client", "pynsq-client", "DNS:client.local")):
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                "-keyout", name + ".key", "-out", name + ".csr")
            with open(os.path.join(directory, name + ".ext"), "w") as ext:
                ext.write("subjectAltName=%s\n" % san)
            run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem")

    def path(self, name):
        return os.path.join(self.dir, name)

    def server_flags(self):
        return ["--tls-cert=" + self.path("server.pem"), "--tls-key=" + self.path("server.key")]

    def client_options(self, with_cert=False):
        options = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": self.path("ca.pem")}
        if with_cert:
            options["certfile"] = self.path("client.pem")
            options["keyfile"] = self.path("client.key")
        return options


class Broker:
    def __init__(self, flags):
        command = os.environ.get("SLUICED")
        argv = shlex.split(command) if command else [os.path.join(REPO, "target", "debug", "sluiced")]
        self.data_dir = tempfile.mkdtemp(prefix="sluice-pynsq-tls-")
        argv += ["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0",
                 "--https-address=127.0.0.1:0", "--data-path=" + self.data_dir] + flags
        self.log = collections.deque(maxlen=80)
        self.addresses = {}
        self.ready = threading.Event()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.ready.wait(10):
            self.stop()
            pytest.fail("sluiced did not start:\n" + "\n".join(self.log))
        self.tcp = self.addresses["TCP"]

    def _drain(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            match = LISTENING.search(line)
            if match:
                self.addresses[match.group(1)] = match.group(2)
                if "TCP" in self.addresses and "HTTP" in self.addresses:
                    self.ready.set()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class AuthServer:
    """Grants publish and subscribe on topic ^py_auth$ to secret "py-secret"; refuses others."""

    def __init__(self):
        self.queries = []
        queries = self.queries

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                queries.append((url.path, params))
                if params.get("secret") == "py-secret":
                    status, body = 200, {
                        "ttl": 3600, "identity": "py-user", "identity_url": "",
                        "authorizations": [{"topic": "^py_auth$", "channels": [".*"],
                                            "permissions": ["publish", "subscribe"]}],
                    }
                else:
                    status, body = 403, {"message": "FORBIDDEN"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pki():
    directory = tempfile.mkdtemp(prefix="sluice-pynsq-pki-")
    yield Pki(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_broker():
    brokers = []

    def start(flags):
        broker = Broker(flags)
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.stop()


def publish(writer, method, *args):
    future = asyncio.get_running_loop().create_future()

    def done(conn, data):
        if not future.done():
            future.set_result(data)

    getattr(writer, method)(*args, callback=done)
    return future


def close_writer(writer):
    for conn in list(writer.conns.values()):
        conn.close()


async def round_trip(broker, topic, **conn_options):
    """Publishes PUB and MPUB messages (one of them large) through a Writer and receives them
    all through a Reader, both with `conn_options`; returns the bodies received."""
    received = collections.Counter()

    def handler(message):
        received[message.body] += 1
        return True

    reader = nsq.Reader(topic, "ch", message_handler=handler, nsqd_tcp_addresses=[broker.tcp],
                        max_in_flight=100, **conn_options)
    writer = nsq.Writer([broker.tcp], **conn_options)
    try:
        await eventually(lambda: reader.conns and writer.conns, "the Reader and Writer to connect")
        bodies = [b"py-%s-%d" % (topic.encode(), i) for i in range(30)]
        bodies.append(b"L" * (512 * 1024))
        for body in bodies[:10] + bodies[-1:]:
            assert await publish(writer, "pub", topic, body) == b"OK"
        assert await publish(writer, "mpub", topic, bodies[10:-1]) == b"OK"
        await eventually(lambda: sum(received.values()) >= len(bodies),
                         "%d messages on %s" % (len(bodies), topic))
        assert received == collections.Counter(bodies)
    finally:
        reader.close()
        close_writer(writer)


def test_tls_with_a_verified_server_certificate(pki, start_broker):
    broker = start_broker(pki.server_flags())
    asyncio.run(round_trip(broker, "py_tls", tls_v1=True, tls_options=pki.client_options()))
    assert any("upgrading connection to TLS" in line for line in broker.log)


def test_tls_with_a_required_client_certificate(pki, start_broker):
    broker = start_broker(pki.server_flags() + [
        "--tls-client-auth-policy=require-verify", "--tls-root-ca-file=" + pki.path("ca.pem")])
    asyncio.run(round_trip(broker, "py_mtls", tls_v1=True,
                           tls_options=pki.client_options(with_cert=True)))


def test_deflate_alone_and_over_tls(pki, start_broker):
    broker = start_broker(pki.server_flags())
    asyncio.run(round_trip(broker, "py_deflate", deflate=True, deflate_level=6))
    asyncio.run(round_trip(broker, "py_tls_deflate", deflate=True, tls_v1=True,
                           tls_options=pki.client_options()))
    assert any("upgrading connection to deflate (level 6)" in line for line in broker.log)


def test_snappy_alone_and_over_tls(pki, start_broker):
    try:
        import snappy  # noqa: F401  (pynsq's snappy support needs python-snappy)
    except ImportError:
        pytest.skip("!!!!! python-snappy is not installed: pynsq cannot negotiate snappy !!!!!")
    broker = start_broker(pki.server_flags())
    asyncio.run(round_trip(broker, "py_snappy", snappy=True))
    asyncio.run(round_trip(broker, "py_tls_snappy", snappy=True, tls_v1=True,
                           tls_options=pki.client_options()))


def test_auth_secret_grants_its_topic_only(pki, start_broker):
    auth = AuthServer()
    try:
        broker = start_broker(pki.server_flags() + ["--auth-http-address=" + auth.address])
        asyncio.run(round_trip(broker, "py_auth", auth_secret="py-secret", tls_v1=True,
                               tls_options=pki.client_options()))
        path, params = auth.queries[0]
        assert path == "/auth"
        assert params["secret"] == "py-secret"
        assert params["tls"] == "true"
        assert params["remote_ip"] == "127.0.0.1"

        async def denied():
            writer = nsq.Writer([broker.tcp], auth_secret="py-secret")
            try:
                await eventually(lambda: writer.conns, "the Writer to connect")
                reply = await publish(writer, "pub", "py_other", b"x")
                assert isinstance(reply, nsq.Error), reply
                assert "E_UNAUTHORIZED" in str(reply), reply
            finally:
                close_writer(writer)

        asyncio.run(denied())
    finally:
        auth.stop()
