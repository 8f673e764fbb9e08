#!/usr/bin/python3
"""Autobahn|Python (Debian's python3-autobahn, asyncio) WebSocket client
against our Provider, for the interop tests of network-cluster
(autobahn_test.go).

    /usr/bin/python3 ab_client.py --url ws://127.0.0.1:<port>/connect
        [--offer none|<json PerMessageDeflateOffer kwargs>]
        [--messages N] [--fragment SIZE] [--seed S]

It offers permessage-deflate (by default with context takeover in both
directions: accept_no_context_takeover=False), echoes N messages of mixed
types and sizes through the Provider (sent pipelined, checked in order,
compressed by autobahn when negotiated; with --fragment, autobahn splits
every message larger than SIZE into frames), asks the Provider for large
messages, pings, and closes with 1000. Output, one line each:

    EXT <json of the negotiated permessage-deflate parameters, or {}>
    CASE <name> ok | CASE <name> FAIL <why>
    DONE pass=<n> fail=<n>

The run is bounded (60 s per phase); the exit status is 0 when no case failed.
"""

import argparse
import asyncio
import json
import random
import sys
import urllib.parse

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (PerMessageDeflateOffer,
                                         PerMessageDeflateResponse,
                                         PerMessageDeflateResponseAccept)

PHASE_TIMEOUT = 60.0

results = {"pass": 0, "fail": 0}


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def case(name, err=None):
    if err is None:
        out("CASE %s ok" % name)
        results["pass"] += 1
    else:
        out("CASE %s FAIL %s" % (name, str(err).replace("\n", " ")))
        results["fail"] += 1


def patterned(n):
    return bytes(i % 251 for i in range(n))


def make_messages(n, seed):
    """n messages (binary flag, payload bytes) of mixed kinds and sizes."""
    rnd = random.Random(seed)
    sizes = [0, 1, 10, 125, 126, 1000, 4096, 20000, 65535, 65536, 100000]
    words = ["network", "cluster", "provider", "consumer", "réseau", "grappe", "😀", "ž"]
    msgs = []
    for i in range(n):
        size = rnd.choice(sizes)
        kind = i % 4
        if kind == 0:  # compressible text with non-ASCII characters
            parts, n = [], 0
            while n < size:
                w = rnd.choice(words) + " "
                parts.append(w)
                n += len(w.encode())
            msgs.append((False, ("%d:" % i + "".join(parts)).encode()))
        elif kind == 1:  # incompressible binary
            msgs.append((True, rnd.randbytes(size)))
        elif kind == 2:  # very compressible binary
            msgs.append((True, bytes([i % 256]) * size))
        else:  # text that repeats the previous messages (context takeover helps)
            msgs.append((False, ("%d:" % i + "lorem ipsum dolor sit amet " * (size // 27 + 1)).encode()))
    return msgs


class Client(WebSocketClientProtocol):
    def onConnect(self, response):
        self.ext = {}
        for e in self.websocket_extensions_in_use:
            j = e.__json__()
            self.ext = {k: j[k] for k in ("server_no_context_takeover", "client_no_context_takeover",
                                           "server_max_window_bits", "client_max_window_bits")}
        self.inbox = asyncio.Queue()
        self.pongs = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def onOpen(self):
        self.factory.opened.set_result(self)

    def onMessage(self, payload, isBinary):
        self.inbox.put_nowait((isBinary, payload))

    def onPong(self, payload):
        self.pongs.put_nowait(payload)

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.done():
            self.factory.opened.set_exception(RuntimeError("closed before open: %s %s" % (code, reason)))
        if hasattr(self, "closed") and not self.closed.done():
            self.closed.set_result((wasClean, code, reason))


async def phase(name, coro):
    try:
        await asyncio.wait_for(coro, PHASE_TIMEOUT)
        case(name)
        return True
    except Exception as e:  # noqa: BLE001 - every failure is reported
        case(name, "%s: %s" % (type(e).__name__, e))
        return False


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--offer", default="{}")
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--fragment", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    u = urllib.parse.urlparse(a.url)
    loop = asyncio.get_running_loop()
    factory = WebSocketClientFactory(a.url)
    factory.protocol = Client
    factory.opened = loop.create_future()
    opts = dict(openHandshakeTimeout=10, closeHandshakeTimeout=10, maxMessagePayloadSize=0)
    if a.fragment:
        opts["autoFragmentSize"] = a.fragment
    if a.offer != "none":
        kw = dict(accept_no_context_takeover=False, accept_max_window_bits=True)
        kw.update(json.loads(a.offer))
        opts["perMessageCompressionOffers"] = [PerMessageDeflateOffer(**kw)]

        def accept(response):
            if isinstance(response, PerMessageDeflateResponse):
                return PerMessageDeflateResponseAccept(response)
            return None
        opts["perMessageCompressionAccept"] = accept
    factory.setProtocolOptions(**opts)

    c = None

    async def connect():
        nonlocal c
        await loop.create_connection(factory, u.hostname, u.port)
        c = await factory.opened
    if not await phase("connect", connect()):
        return
    out("EXT " + json.dumps(c.ext, sort_keys=True))

    msgs = make_messages(a.messages, a.seed)

    async def echo_all():
        for binary, data in msgs:
            c.sendMessage(data, isBinary=binary)
        for i, (binary, data) in enumerate(msgs):
            gb, gd = await c.inbox.get()
            if gb != binary or gd != data:
                raise AssertionError("message %d: got binary=%s %d bytes, want binary=%s %d bytes"
                                     % (i, gb, len(gd), binary, len(data)))
    await phase("echo %d pipelined messages" % len(msgs), echo_all())

    async def one_by_one():
        for binary, data in msgs[:20]:
            c.sendMessage(data, isBinary=binary)
            gb, gd = await c.inbox.get()
            if gb != binary or gd != data:
                raise AssertionError("got binary=%s %d bytes, want binary=%s %d bytes" % (gb, len(gd), binary, len(data)))
    await phase("echo 20 messages one by one", one_by_one())

    async def server_big():
        c.sendMessage(b"cmd:big:1000000")
        gb, gd = await c.inbox.get()
        if not gb or gd != patterned(1000000):
            raise AssertionError("got binary=%s %d bytes" % (gb, len(gd)))
        c.sendMessage(b"cmd:bigtext:300000")
        gb, gd = await c.inbox.get()
        if gb or len(gd) != 300000:
            raise AssertionError("got binary=%s %d bytes" % (gb, len(gd)))
        gd.decode("utf-8")
    await phase("provider sends 1 MB binary and 300 kB text", server_big())

    async def ping():
        c.sendPing(b"autobahn")
        p = await c.pongs.get()
        if p != b"autobahn":
            raise AssertionError("pong %r" % p)
    await phase("ping answered with its payload", ping())

    async def close():
        c.sendClose(1000, "done")
        clean, code, reason = await c.closed
        if not clean or code != 1000:
            raise AssertionError("closed clean=%s code=%s reason=%r" % (clean, code, reason))
    await phase("close 1000", close())


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 5 * PHASE_TIMEOUT))
    except Exception as e:  # noqa: BLE001
        case("run", "%s: %s" % (type(e).__name__, e))
    out("DONE pass=%d fail=%d" % (results["pass"], results["fail"]))
    sys.exit(0 if results["fail"] == 0 else 1)
