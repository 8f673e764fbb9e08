#!/usr/bin/env node
// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// opening WebSockets to our Provider from a page, for the interop tests of
// network-cluster (chromium_test.go).
//
//   node browser.js --page http://127.0.0.1:<port>/ --ws <name>=<ws url> [--ws ...]
//
// It starts Chromium once, with a fresh profile (--user-data-dir in a new
// temporary directory, removed at the end), opens the page (served by the
// Go test; it defines runInterop, see ../web/page.html) and runs
// runInterop(url) for each --ws in turn. Output:
//   BROWSER <version>
//   CASE <name>/<case> ok | CASE <name>/<case> FAIL <why>
//   DONE pass=<n> fail=<n>
// Everything is bounded: 150 s for the whole run.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const args = process.argv.slice(2);
const pageURL = args[args.indexOf('--page') + 1];
const targets = [];
args.forEach((a, i) => {
  if (a === '--ws') {
    const v = args[i + 1];
    const eq = v.indexOf('=');
    targets.push([v.slice(0, eq), v.slice(eq + 1)]);
  }
});
const out = (line) => process.stdout.write(line + '\n');

let ctx = null;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nc-chromium-'));
async function cleanup() {
  if (ctx) await ctx.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
setTimeout(async () => {
  out('CASE run FAIL overall timeout');
  await cleanup();
  process.exit(2);
}, 150000).unref();
process.on('SIGTERM', async () => { await cleanup(); process.exit(3); });

async function main() {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true, // playwright adds --headless
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  });
  out(`BROWSER ${ctx.browser() ? ctx.browser().version() : 'chromium'}`);
  const page = await ctx.newPage();
  page.on('console', (m) => out(`CONSOLE ${m.text()}`));
  page.on('pageerror', (e) => out(`PAGEERROR ${e.message}`));
  await page.goto(pageURL, { timeout: 30000 });
  let pass = 0;
  let fail = 0;
  for (const [name, url] of targets) {
    const rows = await page.evaluate((u) => runInterop(u), url);
    for (const [c, ok, detail] of rows) {
      if (ok) { out(`CASE ${name}/${c} ok`); pass++; if (detail) out(`INFO ${name}/${c} ${detail}`); } else { out(`CASE ${name}/${c} FAIL ${detail}`); fail++; }
    }
  }
  out(`DONE pass=${pass} fail=${fail}`);
  return fail;
}

main().then(async (fail) => {
  await cleanup();
  process.exit(fail === 0 ? 0 : 1);
}, async (err) => {
  out(`CASE run FAIL ${String(err.stack || err).replace(/\n/g, ' | ')}`);
  await cleanup();
  process.exit(2);
});
