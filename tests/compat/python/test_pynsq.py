"""pynsq (the official Python client) against sluiced, unchanged.

Goal: prove an existing NSQ client library works with sluiced in place of nsqd. Method: publish
through nsq.Writer (PUB, MPUB, DPUB) and through the HTTP API (/pub, /mpub, with defer), consume
with nsq.Reader on two channels (three Readers sharing one channel, one Reader alone on the
other), and check that every message is finished exactly once per channel, that a REQ'd message
comes back with attempts 2, and that /stats agrees afterwards. Every wait is bounded.
"""

import asyncio
import collections
import json
import urllib.request

import nsq
import tornado.httpclient

DEADLINE_S = 30
READERS_SHARING = 3
SHARED_MAX_IN_FLIGHT = 5
# The shared channel's handler holds messages (no FIN) until this many have arrived. One Reader
# holds at most SHARED_MAX_IN_FLIGHT, so reaching this count proves all three Readers got some.
HOLD_UNTIL = SHARED_MAX_IN_FLIGHT * (READERS_SHARING - 1) + 1
REQUEUE_BODY = b"requeue-me"


async def eventually(predicate, what, timeout_s=DEADLINE_S):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))
        await asyncio.sleep(0.02)


class ChannelLog:
    """What one channel's Readers saw."""

    def __init__(self, name, hold_until=0):
        self.name = name
        self.hold_until = hold_until
        self.held = []
        self.received = 0
        self.finished = collections.Counter()
        self.by_reader = collections.Counter()
        self.requeue_attempts = []

    def handler(self, reader_index):
        def handle(message):
            self.received += 1
            self.by_reader[reader_index] += 1
            message.enable_async()
            if message.body == REQUEUE_BODY and message.attempts == 1:
                self.requeue_attempts.append(message.attempts)
                message.requeue(backoff=False, delay=0)
                return None
            if message.body == REQUEUE_BODY:
                self.requeue_attempts.append(message.attempts)
            if self.received < self.hold_until:
                self.held.append(message)
                return None
            for held in self.held:
                self.finished[held.body] += 1
                held.finish()
            self.held.clear()
            self.finished[message.body] += 1
            message.finish()
            return None

        return handle


def publish(writer, method, *args):
    """Calls Writer.pub/mpub/dpub and returns a future for the broker's reply."""
    future = asyncio.get_running_loop().create_future()

    def done(conn, data):
        if not future.done():
            future.set_result(data)

    getattr(writer, method)(*args, callback=done)
    return future


async def http_post(broker, path, body):
    client = tornado.httpclient.AsyncHTTPClient()
    response = await client.fetch(
        "http://%s%s" % (broker.http, path), method="POST", body=body, request_timeout=10
    )
    return response.code, response.body


def stats(broker, topic):
    url = "http://%s/stats?format=json&topic=%s" % (broker.http, topic)
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


async def connected_writer(broker):
    writer = nsq.Writer([broker.tcp])
    await eventually(lambda: writer.conns, "the Writer to connect", 10)
    return writer


async def publish_everything(broker, writer, topic):
    """Publishes by every route; returns the bodies published."""
    bodies = []
    for i in range(10):
        body = b"py-pub-%d" % i
        assert await publish(writer, "pub", topic, body) == b"OK"
        bodies.append(body)
    batch = [b"py-mpub-%d" % i for i in range(20)]
    assert await publish(writer, "mpub", topic, batch) == b"OK"
    bodies += batch
    for i in range(5):
        body = b"py-dpub-%d" % i
        assert await publish(writer, "dpub", topic, 300, body) == b"OK"
        bodies.append(body)
    assert await publish(writer, "pub", topic, REQUEUE_BODY) == b"OK"
    bodies.append(REQUEUE_BODY)
    for i in range(5):
        body = b"py-http-pub-%d" % i
        query = "/pub?topic=%s" % topic + ("&defer=200" if i == 0 else "")
        assert await http_post(broker, query, body) == (200, b"OK")
        bodies.append(body)
    lines = [b"py-http-mpub-%d" % i for i in range(5)]
    assert await http_post(broker, "/mpub?topic=%s" % topic, b"\n".join(lines)) == (200, b"OK")
    bodies += lines
    return bodies


async def roundtrip(broker):
    topic = "pynsq_roundtrip"
    shared = ChannelLog("shared", hold_until=HOLD_UNTIL)
    alone = ChannelLog("alone")
    readers = [
        nsq.Reader(
            topic,
            shared.name,
            message_handler=shared.handler(i),
            nsqd_tcp_addresses=[broker.tcp],
            max_in_flight=SHARED_MAX_IN_FLIGHT,
        )
        for i in range(READERS_SHARING)
    ]
    readers.append(
        nsq.Reader(
            topic,
            alone.name,
            message_handler=alone.handler(0),
            nsqd_tcp_addresses=[broker.tcp],
            max_in_flight=50,
        )
    )
    try:
        await eventually(lambda: all(r.conns for r in readers), "every Reader to connect", 10)
        writer = await connected_writer(broker)
        bodies = await publish_everything(broker, writer, topic)
        expected = collections.Counter(bodies)
        for log in (shared, alone):
            await eventually(
                lambda log=log: sum(log.finished.values()) >= len(bodies),
                "channel %s to finish %d messages" % (log.name, len(bodies)),
            )
        # Anything delivered twice would arrive shortly after; give it a moment to show up.
        await asyncio.sleep(0.5)
        return topic, bodies, expected, shared, alone
    finally:
        for reader in readers:
            reader.close()


def test_writer_and_http_publish_reach_every_channel_exactly_once(broker):
    topic, bodies, expected, shared, alone = asyncio.run(roundtrip(broker))
    assert len(set(bodies)) == len(bodies) == 46
    for log in (shared, alone):
        duplicates = {b: n for b, n in log.finished.items() if n != 1}
        missing = set(expected) - set(log.finished)
        assert not duplicates and not missing, (log.name, duplicates, missing)
        assert log.requeue_attempts == [1, 2], (log.name, log.requeue_attempts)
    assert len([r for r, n in shared.by_reader.items() if n > 0]) == READERS_SHARING, shared.by_reader

    async def drained():
        def settled():
            topic_stats = stats(broker, topic)["topics"]
            channels = {c["channel_name"]: c for c in topic_stats[0]["channels"]}
            return all(
                channels[name]["depth"] == 0
                and channels[name]["in_flight_count"] == 0
                and channels[name]["deferred_count"] == 0
                for name in ("shared", "alone")
            )

        await eventually(settled, "/stats to show both channels drained", 10)

    asyncio.run(drained())


def test_writer_sees_errors_for_a_bad_topic(broker):
    async def scenario():
        writer = await connected_writer(broker)
        reply = await publish(writer, "pub", "bad$topic", b"x")
        assert isinstance(reply, nsq.Error), reply
        assert "E_BAD_TOPIC" in str(reply), str(reply)

    asyncio.run(scenario())
