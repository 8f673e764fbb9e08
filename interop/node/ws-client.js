#!/usr/bin/env node
// An independent WebSocket client for the interop tests of network-cluster:
// Node's `ws` package (v8) against our Provider. It runs a fixed list of
// cases, one after the other, each bounded in time, and prints one line per
// case; the Go test (wsclient_test.go) turns each line into a subtest and
// checks, on its side, the close codes the Provider saw and the frames that
// went over the wire.
//
//   node ws-client.js --url ws://127.0.0.1:<port>/connect
//                     [--deflate on|off|<json perMessageDeflate options>]
//                     [--max-payload <the Provider's MaxPayloadLength>]
//                     [--server-pings]      expect heartbeat ping frames
//
// Output:
//   OPEN <case> <ws.extensions>   each connection, once open
//   CASE <name> ok                a case passed
//   CASE <name> FAIL <why>        a case failed
//   DONE pass=<n> fail=<n>        at the end (exit status 0 if fail=0)
//
// The Provider must echo every data message with its type and obey
// cmd:close:<code>:<reason>, cmd:big:<n> and cmd:bigtext:<n> (see
// harness_test.go).
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const url = opt('url');
const deflateArg = opt('deflate', 'on');
const maxPayload = Number(opt('max-payload', String(1 << 20)));
const serverPings = args.includes('--server-pings');

let perMessageDeflate = true; // ws's default offer: permessage-deflate; client_max_window_bits
if (deflateArg === 'off') perMessageDeflate = false;
else if (deflateArg !== 'on') perMessageDeflate = JSON.parse(deflateArg);

const out = (line) => process.stdout.write(line + '\n');
const CASE_MS = 15000;

// Everything is bounded: the whole run ends within 120 s.
setTimeout(() => {
  out('CASE run FAIL overall timeout');
  process.exit(2);
}, 120000).unref();

// conn wraps a WebSocket with queues of messages, pongs and pings, and a
// promise of its close.
function connect(name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate, maxPayload: 64 << 20 });
    const c = { ws, msgs: [], waiters: [], pongs: [], pings: 0, closed: null };
    c.closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        c.closeInfo = { code, reason: reason.toString() };
        // Whoever waits for a message learns at once that none will come.
        for (const w of c.waiters.splice(0)) w(null);
        res(c.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      if (c.waiters.length) c.waiters.shift()(m);
      else c.msgs.push(m);
    });
    ws.on('pong', (d) => c.pongs.push(d.toString()));
    ws.on('ping', () => c.pings++);
    ws.on('error', (err) => {
      c.error = err.message;
      reject(err);
    });
    ws.on('open', () => {
      out(`OPEN ${name} ${ws.extensions || '-'}`);
      resolve(c);
    });
  });
}

function within(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error('timeout: ' + what)), ms); }),
  ]).finally(() => clearTimeout(t));
}

async function next(c) {
  if (c.msgs.length) return c.msgs.shift();
  const gone = () => new Error(`connection closed (${c.closeInfo.code} "${c.closeInfo.reason}")`);
  if (c.closeInfo) throw gone();
  const m = await within(new Promise((res) => c.waiters.push(res)), CASE_MS, 'no message');
  if (m === null) throw gone();
  return m;
}

async function until(cond, what, c) {
  const deadline = Date.now() + CASE_MS;
  while (!cond()) {
    if (c && c.closeInfo) throw new Error(`connection closed (${c.closeInfo.code}) before ${what}`);
    if (Date.now() > deadline) throw new Error('timeout: ' + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function expectEcho(m, binary, data) {
  if (m.isBinary !== binary) throw new Error(`binary=${m.isBinary}, want ${binary}`);
  const got = Buffer.from(m.data);
  const want = Buffer.from(data);
  if (!got.equals(want)) throw new Error(`echo of ${want.length} bytes came back as ${got.length} different bytes`);
}

async function echo(c, data, binary) {
  c.ws.send(data, { binary });
  expectEcho(await next(c), binary, data);
}

async function expectClose(c, code, reason) {
  const cl = await within(c.closed, CASE_MS, 'no close');
  if (cl.code !== code || (reason !== undefined && cl.reason !== reason)) {
    throw new Error(`closed with ${cl.code} "${cl.reason}", want ${code}${reason !== undefined ? ` "${reason}"` : ''}`);
  }
}

let pass = 0;
let fail = 0;
async function run(name, fn) {
  try {
    await within(Promise.resolve().then(fn), CASE_MS * 2, name);
    out(`CASE ${name} ok`);
    pass++;
  } catch (err) {
    out(`CASE ${name} FAIL ${String(err.message).replace(/\n/g, ' ')}`);
    fail++;
  }
}

function patterned(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

async function main() {
  let c;
  await run('connect', async () => { c = await connect('main'); });
  if (!c) return;

  // A case that kills the main connection (a Provider bug) fails; the next
  // ones run on a new connection rather than all failing after it.
  const runMain = async (name, fn) => {
    if (c.closeInfo) {
      try { c = await connect('main again'); } catch (e) { /* the case fails below */ }
    }
    await run(name, fn);
  };
  await runMain('text small', async () => {
    for (const s of ['héllo', '', 'x', '€𝄞 emoji 🎉']) await echo(c, s, false);
  });
  await runMain('text 2000 bytes', () => echo(c, 'a'.repeat(2000), false));
  await runMain('binary 256 bytes', () => echo(c, Buffer.from([...Array(256).keys()]), true));
  await runMain('binary 16 kB random', () => echo(c, crypto.randomBytes(16 << 10), true));
  await runMain('text 320 kB', () => echo(c, 'réseau '.repeat(40000), false));
  await runMain('binary of exactly max payload, compressible', () => echo(c, patterned(maxPayload), true));
  await runMain('binary of exactly max payload, random', () => echo(c, crypto.randomBytes(maxPayload), true));
  await runMain('fragmented text, code point split across fragments', async () => {
    c.ws.send(Buffer.from('frag'), { binary: false, fin: false });
    c.ws.send(Buffer.from([0x6d, 0x65, 0x6e, 0x74, 0xc3]), { fin: false });
    c.ws.send(Buffer.from([0xa9, 0x64]), { fin: true });
    expectEcho(await next(c), false, Buffer.from('fragmentéd'));
  });
  await runMain('fragmented binary, 3 x 100 kB', async () => {
    const parts = [crypto.randomBytes(100000), patterned(100000), crypto.randomBytes(100000)];
    parts.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === 2 }));
    expectEcho(await next(c), true, Buffer.concat(parts));
  });
  await runMain('fragmented text with empty fragments', async () => {
    c.ws.send('', { binary: false, fin: false });
    c.ws.send('abc', { fin: false });
    c.ws.send('', { fin: true });
    expectEcho(await next(c), false, Buffer.from('abc'));
  });
  await runMain('1000 pipelined messages', async () => {
    const sent = [];
    for (let i = 0; i < 1000; i++) {
      const n = (i * 37) % 5000;
      const binary = i % 3 === 0;
      const data = binary ? crypto.randomBytes(n) : Buffer.from(`${i}:` + 'ab'.repeat(n >> 1));
      sent.push({ binary, data });
      c.ws.send(data, { binary });
    }
    for (const s of sent) expectEcho(await next(c), s.binary, s.data);
  });
  await runMain('server sends 2 MB binary', async () => {
    c.ws.send('cmd:big:2000000');
    const m = await next(c);
    expectEcho(m, true, patterned(2000000));
  });
  await runMain('server sends 200 kB text', async () => {
    c.ws.send('cmd:bigtext:200000');
    const m = await next(c);
    if (m.isBinary || m.data.length !== 200000) throw new Error(`binary=${m.isBinary} len ${m.data.length}`);
  });
  await runMain('ping with payload', async () => {
    c.ws.ping('beat');
    await until(() => c.pongs.includes('beat'), 'pong beat', c);
  });
  await runMain('ping with 125-byte payload', async () => {
    const p = 'p'.repeat(125);
    c.ws.ping(p);
    await until(() => c.pongs.includes(p), 'pong of 125 bytes', c);
  });
  await runMain('empty ping', async () => {
    const n = c.pongs.length;
    c.ws.ping();
    await until(() => c.pongs.length > n && c.pongs[n] === '', 'empty pong', c);
  });
  if (serverPings) {
    await runMain('heartbeat pings from the server answered', () => until(() => c.pings >= 3, '3 server pings', c));
  }
  await runMain('echo after everything', () => echo(c, 'still here', false));
  await runMain('client closes 4001 "bye"', async () => {
    c.ws.close(4001, 'bye');
    await expectClose(c, 4001);
  });

  const closing = [
    ['server closes 4002 "server bye"', (d) => d.ws.send('cmd:close:4002:server bye'), 4002, 'server bye'],
    ['client closes 1000', (d) => d.ws.close(1000, 'done'), 1000],
    ['client closes without a code', (d) => d.ws.close(), 1005],
    ['message over max payload (random) gets 1009', (d) => d.ws.send(crypto.randomBytes(maxPayload + 1)), 1009],
    ['message over max payload (compressible) gets 1009', (d) => d.ws.send(Buffer.alloc(maxPayload + 1)), 1009],
    ['invalid UTF-8 text gets 1007', (d) => d.ws.send(Buffer.from([0x61, 0xff, 0x62]), { binary: false }), 1007],
    ['invalid UTF-8 in a long text (compressed if negotiated) gets 1007', (d) => {
      const b = Buffer.from('z'.repeat(3000));
      b[2500] = 0xfe;
      d.ws.send(b, { binary: false });
    }, 1007],
    // Uncompressed: the Provider must fail fast, before the message ends.
    ['invalid UTF-8 in the second fragment of an unfinished message gets 1007', (d) => {
      d.ws.send(Buffer.from('ok '), { binary: false, fin: false, compress: false });
      d.ws.send(Buffer.from([0xc3, 0x28]), { fin: false, compress: false });
    }, 1007],
    // Compressed when negotiated (ws compresses every message under
    // context takeover): invalid once inflated.
    ['invalid UTF-8 in the second of three fragments gets 1007', (d) => {
      d.ws.send(Buffer.from('ok '), { binary: false, fin: false });
      d.ws.send(Buffer.from([0xc3, 0x28]), { fin: false });
      d.ws.send(Buffer.from('end'), { fin: true });
    }, 1007],
  ];
  for (const [name, act, code, reason] of closing) {
    await run(name, async () => {
      const d = await connect(name);
      await echo(d, 'hello', false);
      act(d);
      await expectClose(d, code, reason);
    });
  }
}

main().then(() => {
  out(`DONE pass=${pass} fail=${fail}`);
  process.exit(fail === 0 ? 0 : 1);
}, (err) => {
  out(`CASE run FAIL ${err.stack}`);
  process.exit(2);
});
