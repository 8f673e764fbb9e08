#!/usr/bin/python3
"""Autobahn|Python (Debian's python3-autobahn, asyncio) WebSocket server for
the interop tests of network-cluster: our Consumer connects to it
(autobahn_test.go).

    /usr/bin/python3 ab_server.py [--deflate off|on|<json PerMessageDeflateOfferAccept kwargs>]
                                  [--fragment SIZE]

With --deflate on (the default) it accepts the client's permessage-deflate
offer as autobahn does by default: context takeover kept in both directions
unless the client asks otherwise. With --fragment, autobahn splits every
message larger than SIZE into frames. It prints
`PEER autobahn pid=<pid> addr=127.0.0.1:<port>` once listening, then:

    OPEN <path?query>          a connection opened
    EXT <json>                 the permessage-deflate parameters in use, or {}
    CLOSE <clean> <code> <reason>
    PONG <payload>

Every data message is echoed with its type unless it is a command:

    cmd:close:<code>:<reason>  close with that code
    cmd:big:<n>                send a binary message of n bytes (i % 251)
    cmd:bigtext:<n>            send a text message of n UTF-8 bytes
    cmd:ping:<payload>         send a ping
    cmd:ext                    reply "ext:" + the EXT json

It exits on SIGTERM or when its standard input closes.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

from autobahn.asyncio.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def patterned(n):
    return bytes(i % 251 for i in range(n))


def text_of(n):
    unit = "abcdefgh\u00e9"  # 10 bytes in UTF-8
    return (unit * (n // 10) + "x" * (n % 10)).encode()


class Server(WebSocketServerProtocol):
    def onConnect(self, request):
        self.path = request.path + ("?" + "&".join(
            "%s=%s" % (k, v) for k, vs in sorted(request.params.items()) for v in vs) if request.params else "")

    def onOpen(self):
        self.ext = {}
        for e in self.websocket_extensions_in_use:
            j = e.__json__()
            self.ext = {k: j[k] for k in ("server_no_context_takeover", "client_no_context_takeover",
                                           "server_max_window_bits", "client_max_window_bits")}
        out("OPEN " + self.path)
        out("EXT " + json.dumps(self.ext, sort_keys=True))

    def onMessage(self, payload, isBinary):
        if not isBinary and payload.startswith(b"cmd:"):
            name, _, arg = payload[4:].decode().partition(":")
            if name == "close":
                code, _, reason = arg.partition(":")
                self.sendClose(int(code), reason)
            elif name == "big":
                self.sendMessage(patterned(int(arg)), isBinary=True)
            elif name == "bigtext":
                self.sendMessage(text_of(int(arg)))
            elif name == "ping":
                self.sendPing(arg.encode())
            elif name == "ext":
                self.sendMessage(("ext:" + json.dumps(self.ext, sort_keys=True)).encode())
            else:
                self.sendMessage(("unknown command " + name).encode())
            return
        self.sendMessage(payload, isBinary=isBinary)

    def onPong(self, payload):
        out("PONG " + payload.decode("utf-8", "replace"))

    def onClose(self, wasClean, code, reason):
        out("CLOSE %s %s %s" % (wasClean, code, reason or ""))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deflate", default="on")
    ap.add_argument("--fragment", type=int, default=0)
    a = ap.parse_args()

    loop = asyncio.get_running_loop()
    factory = WebSocketServerFactory("ws://127.0.0.1")
    factory.protocol = Server
    opts = dict(openHandshakeTimeout=10, closeHandshakeTimeout=5, maxMessagePayloadSize=0)
    if a.fragment:
        opts["autoFragmentSize"] = a.fragment
    if a.deflate != "off":
        kw = {} if a.deflate == "on" else json.loads(a.deflate)

        def accept(offers):
            for offer in offers:
                if isinstance(offer, PerMessageDeflateOffer):
                    return PerMessageDeflateOfferAccept(offer, **kw)
            return None
        opts["perMessageCompressionAccept"] = accept
    factory.setProtocolOptions(**opts)
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    out("PEER autobahn pid=%d addr=127.0.0.1:%d" % (os.getpid(), port))

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.buffer.read1(4096) or (stop.done() or stop.set_result(None))))
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
