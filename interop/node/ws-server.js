#!/usr/bin/env node
// An independent WebSocket server for the interop tests of network-cluster:
// Node's `ws` package (v8), configured from the command line, driven by the
// Go tests through text commands. See ../README.md.
//
//   node ws-server.js [--port 0] [--path /connect] [--deflate off|on|<json>]
//                     [--heartbeat-header <ms>] [--text-heartbeat <ms>]
//                     [--max-payload <bytes>]
//
// It prints `PEER ws pid=<pid> addr=127.0.0.1:<port>` once listening, then
// one line per event the tests check:
//   RESPONSE-EXT <value>           the Sec-WebSocket-Extensions of a response
//   OPEN <url>                     a connection was upgraded (path and query)
//   HEADER <name>: <value>         each request header, after OPEN
//   CLOSE <code> <reason>          a connection closed (code and reason received)
//   PONG <payload>                 a pong control frame arrived
//   TEXTPONG                       the text "PONG" arrived (text heartbeat)
//   ERROR <message>                a ws error on a connection
// Every data message is echoed with its type unless it is a command:
//   cmd:close:<code>:<reason>      close the connection with that code
//   cmd:terminate                  drop TCP without a close frame
//   cmd:big:<n>                    send a binary message of n bytes (i % 251)
//   cmd:bigtext:<n>                send a text message of n UTF-8 bytes
//   cmd:frag                       send a text message in three fragments
//   cmd:ping:<payload>             send a ping control frame
//   cmd:ext                        reply with the negotiated extensions
//   cmd:badutf8                    send a text frame that is not UTF-8
// It exits on SIGTERM, SIGINT or when its standard input closes.
'use strict';

const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}

const port = Number(opt('port', '0'));
const path = opt('path', '/connect');
const deflateArg = opt('deflate', 'off');
const headerMs = Number(opt('heartbeat-header', '0'));
const textMs = Number(opt('text-heartbeat', '0'));
const maxPayload = Number(opt('max-payload', String(64 << 20)));

let perMessageDeflate = false;
if (deflateArg === 'on') {
  // Compress every message, however small, so that both directions of the
  // extension are exercised.
  perMessageDeflate = { threshold: 0 };
} else if (deflateArg !== 'off') {
  perMessageDeflate = JSON.parse(deflateArg);
}

const out = (line) => process.stdout.write(line + '\n');

const wss = new WebSocketServer({ host: '127.0.0.1', port, path, perMessageDeflate, maxPayload });

wss.on('headers', (headers) => {
  if (headerMs > 0) headers.push(`X-Network-Cluster-Heartbeat: ${headerMs}`);
  for (const h of headers) {
    if (h.toLowerCase().startsWith('sec-websocket-extensions:')) out(`RESPONSE-EXT ${h.slice(25).trim()}`);
  }
});

function textOf(n) {
  // ASCII with a two-byte character every 10 bytes, exactly n bytes long.
  const unit = 'abcdefgh\u00e9'; // 10 bytes in UTF-8
  return unit.repeat(Math.floor(n / 10)) + 'x'.repeat(n % 10);
}

wss.on('connection', (ws, req) => {
  out(`OPEN ${req.url}`);
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    out(`HEADER ${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  }
  let timer = null;
  if (textMs > 0) {
    ws.send(`PROVIDER_HEARTBEAT|${textMs}`);
    timer = setInterval(() => ws.send('PING'), textMs);
  } else if (headerMs > 0) {
    timer = setInterval(() => ws.ping(), headerMs);
  }
  ws.on('close', (code, reason) => {
    if (timer) clearInterval(timer);
    out(`CLOSE ${code} ${reason.toString()}`);
  });
  ws.on('error', (err) => out(`ERROR ${err.message}`));
  ws.on('pong', (data) => out(`PONG ${data.toString()}`));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const s = data.toString();
      if (s === 'PONG' && textMs > 0) {
        out('TEXTPONG');
        return;
      }
      if (s.startsWith('cmd:')) {
        command(ws, s.slice(4));
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
});

function command(ws, cmd) {
  const [name, ...rest] = cmd.split(':');
  const arg = rest.join(':');
  switch (name) {
    case 'close': {
      const [code, ...reason] = arg.split(':');
      ws.close(Number(code), reason.join(':'));
      break;
    }
    case 'terminate':
      ws.terminate();
      break;
    case 'big': {
      const b = Buffer.alloc(Number(arg));
      for (let i = 0; i < b.length; i++) b[i] = i % 251;
      ws.send(b, { binary: true });
      break;
    }
    case 'bigtext':
      ws.send(textOf(Number(arg)));
      break;
    case 'frag':
      ws.send('frag', { fin: false });
      ws.send('ment\u00e9', { fin: false });
      ws.send('d', { fin: true });
      break;
    case 'ping':
      ws.ping(arg);
      break;
    case 'ext':
      ws.send('ext:' + ws.extensions);
      break;
    case 'badutf8':
      ws.send(Buffer.from([0x61, 0xff, 0x62]), { binary: false });
      break;
    default:
      ws.send('unknown command ' + name);
  }
}

wss.on('listening', () => {
  out(`PEER ws pid=${process.pid} addr=127.0.0.1:${wss.address().port}`);
});

function shutdown() {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
