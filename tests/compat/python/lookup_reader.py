"""A pynsq Reader that knows only lookupd HTTP addresses consumes a topic spread over brokers.

Goal: prove that an unchanged NSQ client finds every sluiced broker through sluice-lookupd
(`/lookup?topic=`) and consumes what was published to each. Method: the Rust suite
(tests/tests/lookup_cluster.rs) starts the brokers and lookupds and publishes; this script runs
one nsq.Reader with `lookupd_http_addresses` only, finishes every message, and checks that each
expected body arrived exactly once and that the Reader connected to every expected broker. It
is a script (not collected by pytest): it exits 0 on success and prints a one-line JSON summary
either way. Every wait is bounded.

usage: lookup_reader.py --lookupd-http HOST:PORT [...] --topic T --channel C
                        --expect FILE (one body per line) [--expect-producer HOST:PORT ...]
"""

import argparse
import asyncio
import collections
import json
import sys

import nsq

SETTLE_S = 0.5


async def consume(args, expected):
    received = collections.Counter()

    def handle(message):
        received[message.body] += 1
        return True

    reader = nsq.Reader(
        topic=args.topic,
        channel=args.channel,
        message_handler=handle,
        lookupd_http_addresses=["http://" + address for address in args.lookupd_http],
        lookupd_poll_interval=1,
        max_in_flight=20,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def done():
        return sum(received.values()) >= sum(expected.values()) and set(
            args.expect_producer
        ) <= set(reader.conns)

    try:
        while not done() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        # Anything delivered twice would arrive shortly after; give it a moment to show up.
        await asyncio.sleep(SETTLE_S)
        return received, sorted(reader.conns)
    finally:
        reader.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lookupd-http", action="append", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--expect-producer", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    with open(args.expect, "rb") as f:
        expected = collections.Counter(line for line in f.read().split(b"\n") if line)
    received, connected = asyncio.run(consume(args, expected))
    duplicates = sorted(b.decode() for b, n in received.items() if n > 1)
    missing = sorted(b.decode() for b in expected if b not in received)
    unexpected = sorted(b.decode() for b in received if b not in expected)
    absent = sorted(set(args.expect_producer) - set(connected))
    summary = {
        "received": sum(received.values()),
        "expected": sum(expected.values()),
        "connected": connected,
        "duplicates": duplicates[:20],
        "missing": missing[:20],
        "unexpected": unexpected[:20],
        "producers_not_connected": absent,
    }
    print(json.dumps(summary), flush=True)
    ok = not duplicates and not missing and not unexpected and not absent
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
