#!/usr/bin/python3
"""Raw-frame checks against our Provider, built on the client of Debian's
python3-autobahn (asyncio): autobahn's WebSocketClientProtocol.sendFrame
writes frames exactly as asked (reserved bits, reserved opcodes, oversized
or fragmented control frames, invalid UTF-8, bad close payloads), and its
frame parser reads what the Provider answers. Used by rawframes_test.go,
which holds the table of cases and the expected answers.

    /usr/bin/python3 ab_raw.py --url ws://127.0.0.1:<port>/connect --cases cases.json

cases.json is a list of cases, each run on a fresh connection:

    {"name": "...",
     "deflate": false,          # offer permessage-deflate (no context takeover)
     "frames": [                # sent right after the connection opens
        {"op": 1, "fin": true, "rsv": 0,      # rsv: RSV1=4, RSV2=2, RSV3=1
         "hex": "...",                        # payload (or "text": "...")
         "deflate": false,                    # compress the payload (raw deflate,
                                              # sync flush, tail removed)
         "zeros": 0,                          # payload of that many zero bytes
         "split": 0,                          # compress, then split into that many
                                              # frames (RSV1 on the first only)
         "unmasked": false,
         "raw": "hex"}],                      # bytes written as they are
     "wait_messages": 0, "wait_pongs": 0,   # answers to wait for, then...
     "close_after": 0}                      # ...send a close frame with this code

For each case it prints one line:

    RESULT {"name": ..., "close_code": <code of the Provider's close frame,
            1005 if empty, 1006 if none>, "close_reason": ..., "messages":
            [[binary, hex], ...], "pongs": [hex, ...], "clean": bool,
            "timeout": bool, "error": str}

Each case is bounded (10 s); the whole run by the number of cases.
"""

import argparse
import asyncio
import json
import sys
import urllib.parse
import zlib

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (PerMessageDeflateOffer,
                                         PerMessageDeflateResponse,
                                         PerMessageDeflateResponseAccept)

CASE_TIMEOUT = 10.0


def deflate(data):
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def expand(frames):
    """Turns the case's frame specs into (spec, payload) pairs."""
    res = []
    for f in frames:
        if "raw" in f:
            res.append((f, bytes.fromhex(f["raw"])))
            continue
        if "text" in f:
            p = f["text"].encode()
        elif "zeros" in f:
            p = bytes(f["zeros"])
        else:
            p = bytes.fromhex(f.get("hex", ""))
        if f.get("split"):
            z = deflate(p)
            n = f["split"]
            step = max(1, -(-len(z) // n))
            chunks = [z[i:i + step] for i in range(0, len(z), step)]
            for i, ch in enumerate(chunks):
                res.append(({"op": f.get("op", 1) if i == 0 else 0,
                             "fin": i == len(chunks) - 1,
                             "rsv": 4 if i == 0 else 0}, ch))
            continue
        if f.get("deflate"):
            p = deflate(p)
        res.append((f, p))
    return res


class Raw(WebSocketClientProtocol):
    def onConnect(self, response):
        self.res = {"name": self.factory.case["name"], "close_code": 1006, "close_reason": "",
                    "messages": [], "pongs": [], "clean": False, "timeout": False, "error": ""}
        self.got_close = False
        self.sent_close = False

    def onOpen(self):
        case = self.factory.case
        for spec, payload in expand(case.get("frames", [])):
            if "raw" in spec:
                self.transport.write(payload)
                continue
            if spec.get("unmasked"):
                self.maskClientFrames = False
            self.sendFrame(opcode=spec.get("op", 1), payload=payload, fin=spec.get("fin", True),
                           rsv=spec.get("rsv", 0))
            self.maskClientFrames = True
        self.maybe_close()

    def maybe_close(self):
        case = self.factory.case
        code = case.get("close_after", 0)
        if (code and not self.sent_close and not self.got_close
                and len(self.res["messages"]) >= case.get("wait_messages", 0)
                and len(self.res["pongs"]) >= case.get("wait_pongs", 0)):
            self.sent_close = True
            self.sendClose(code)

    def onMessage(self, payload, isBinary):
        self.res["messages"].append([isBinary, payload.hex()])
        self.maybe_close()

    def onPong(self, payload):
        self.res["pongs"].append(payload.hex())
        self.maybe_close()

    def onCloseFrame(self, code, reasonRaw):
        if not self.got_close:
            self.got_close = True
            self.res["close_code"] = 1005 if code is None else code
            self.res["close_reason"] = (reasonRaw or b"").decode("utf-8", "replace")
        return super().onCloseFrame(code, reasonRaw)

    def onClose(self, wasClean, code, reason):
        if not hasattr(self, "res"):
            self.factory.done.set_exception(RuntimeError("handshake failed: %s %s" % (code, reason)))
            return
        self.res["clean"] = wasClean
        if not self.factory.done.done():
            self.factory.done.set_result(self.res)


async def run_case(url, case):
    u = urllib.parse.urlparse(url)
    loop = asyncio.get_running_loop()
    factory = WebSocketClientFactory(url)
    factory.protocol = Raw
    factory.case = case
    factory.done = loop.create_future()
    opts = dict(openHandshakeTimeout=5, closeHandshakeTimeout=5, failByDrop=False)
    if case.get("deflate"):
        opts["perMessageCompressionOffers"] = [PerMessageDeflateOffer(accept_no_context_takeover=True,
                                                                      accept_max_window_bits=True)]
        opts["perMessageCompressionAccept"] = (
            lambda r: PerMessageDeflateResponseAccept(r) if isinstance(r, PerMessageDeflateResponse) else None)
    factory.setProtocolOptions(**opts)
    transport, proto = await loop.create_connection(factory, u.hostname, u.port)
    try:
        return await asyncio.wait_for(asyncio.shield(factory.done), CASE_TIMEOUT)
    except asyncio.TimeoutError:
        res = getattr(proto, "res", {"name": case["name"]})
        res["timeout"] = True
        transport.abort()
        return res


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--cases", required=True)
    a = ap.parse_args()
    with open(a.cases) as f:
        cases = json.load(f)
    for case in cases:
        try:
            res = await run_case(a.url, case)
        except Exception as e:  # noqa: BLE001 - reported per case
            res = {"name": case["name"], "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write("RESULT " + json.dumps(res) + "\n")
        sys.stdout.flush()
    sys.stdout.write("DONE\n")


if __name__ == "__main__":
    asyncio.run(main())
