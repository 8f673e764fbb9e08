#!/usr/bin/env node
// A client on `ws` 7 (npm alias ws7) that behaves on the wire as the Consumer
// of the Node package network-cluster 1.0.4 does (that package is not served
// by npm here; its documented behaviour is summed up in the README): it connects to
// ws://host:port/path?<parameters>, learns the heartbeat interval from the
// text "PROVIDER_HEARTBEAT|<ms>", answers each "PING" with "PONG" (both are
// swallowed, never delivered as messages), and drops and reconnects the
// connection when no PING came within 2 x the interval (heartbeat_cutoff).
// It reconnects at a fixed interval up to max attempts; a 403 is final.
// Used by nodeconsumer_test.go.
//
//   node nc-consumer.js --url ws://127.0.0.1:<port>/connect
//                       [--param key=value ...] [--reconnect-ms 1000] [--max-attempts 10]
//
// Output, one line per event:
//   OPEN <n>                         connection n is open
//   HEARTBEAT <ms> <cutoff ms>       the announcement arrived
//   PING                             a PING arrived (answered with PONG)
//   MESSAGE <text>                   a message for the user
//   CUTOFF <ms since last ping>      no PING within the cutoff: dropping
//   DISCONNECT <code> <reason>       a connection closed
//   REJECTED <status> <body>         the upgrade was refused
//   RECONNECT <attempt>              trying again
//   CLOSE <code> <reason>            given up or exited; once
//   SENT <true|false>                the result of a send command
// Standard input, one command per line: "send <text>" or "exit".
'use strict';

const WebSocket = require('ws7');
const readline = require('readline');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const base = opt('url');
const reconnectMs = Number(opt('reconnect-ms', '1000'));
const maxAttempts = Number(opt('max-attempts', '10'));
const parameters = {};
args.forEach((a, i) => {
  if (a === '--param') {
    const v = args[i + 1];
    const eq = v.indexOf('=');
    parameters[v.slice(0, eq)] = v.slice(eq + 1);
  }
});
const out = (line) => process.stdout.write(line + '\n');

// As the 1.0.4 Consumer: parameters as URL query parameters.
const query = Object.keys(parameters)
  .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(parameters[k])}`).join('&');
const url = query ? `${base}?${query}` : base;

let ws = null;
let opens = 0;
let attempts = 0;
let closed = false;
let heartbeatDuration = 0;
let heartbeatCutoff = 0;
let lastHeartbeat = 0;
let cutoffTimer = null;

function finish(code, reason) {
  if (closed) return;
  closed = true;
  clearInterval(cutoffTimer);
  out(`CLOSE ${code} ${reason}`);
  setTimeout(() => process.exit(0), 50);
}

function connect() {
  let rejected = false;
  ws = new WebSocket(url); // ws 7 offers permessage-deflate by default, as 1.0.4 does
  ws.on('unexpected-response', (req, res) => {
    rejected = true;
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => {
      req.destroy();
      out(`REJECTED ${res.statusCode} ${body}`);
      if (res.statusCode === 403) finish(res.statusCode, body); // final, as in 1.0.4
      else retry();
    });
  });
  ws.on('open', () => {
    attempts = 0; // reset on each successful open
    opens++;
    // A fresh heartbeat state per connection (1.0.4 leaked it; the wire is the same).
    heartbeatDuration = 0;
    lastHeartbeat = Date.now();
    out(`OPEN ${opens}`);
  });
  ws.on('message', (data) => {
    const msg = data.toString();
    if (msg.startsWith('PROVIDER_HEARTBEAT|')) {
      heartbeatDuration = Number(msg.slice('PROVIDER_HEARTBEAT|'.length));
      heartbeatCutoff = 2 * heartbeatDuration;
      lastHeartbeat = Date.now();
      out(`HEARTBEAT ${heartbeatDuration} ${heartbeatCutoff}`);
      clearInterval(cutoffTimer);
      cutoffTimer = setInterval(() => {
        const since = Date.now() - lastHeartbeat;
        if (ws && ws.readyState === WebSocket.OPEN && since > heartbeatCutoff) {
          out(`CUTOFF ${since}`);
          ws.terminate();
        }
      }, Math.max(10, Math.floor(heartbeatDuration / 4)));
      return;
    }
    if (msg === 'PING') {
      lastHeartbeat = Date.now();
      out('PING');
      ws.send('PONG');
      return;
    }
    out(`MESSAGE ${msg}`);
  });
  ws.on('error', (err) => { if (!rejected) out(`ERROR ${err.message}`); });
  ws.on('close', (code, reason) => {
    if (rejected) return;
    clearInterval(cutoffTimer);
    out(`DISCONNECT ${code} ${reason}`);
    retry();
  });
}

function retry() {
  if (closed) return;
  if (++attempts > maxAttempts) {
    finish(1006, 'max attempts reached');
    return;
  }
  setTimeout(() => {
    if (closed) return;
    out(`RECONNECT ${attempts}`);
    connect();
  }, reconnectMs);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.startsWith('send ')) {
    // As 1.0.4: send returns false when not connected.
    const ok = !!ws && ws.readyState === WebSocket.OPEN;
    if (ok) ws.send(line.slice(5));
    out(`SENT ${ok}`);
  } else if (line === 'exit') {
    if (ws) ws.close(1000, 'bye');
    finish(1000, 'exit');
  }
}).on('close', () => finish(1000, 'stdin closed'));

// Bounded: a forgotten process ends by itself.
setTimeout(() => finish(1006, 'overall timeout'), 120000).unref();
connect();
