// The demo, in a real browser: sign in to the wiki, see what the app receives, open the
// second app of the pool without a prompt, sign out of both.
//
// Runs Debian's chromium headless through playwright-core. Needs the poolgate binary
// (POOLGATE_BIN, default target/debug/poolgate) and /usr/bin/chromium; .ci/run provides both.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '../..');
const bin = process.env.POOLGATE_BIN ?? join(root, 'target/debug/poolgate');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitReady(url, child, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`poolgate demo exited (${child.exitCode}):\n${log()}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`poolgate demo not ready in 60 s:\n${log()}`);
}

let demo, browser, http;
let output = '';

before(async () => {
  assert.ok(existsSync(bin), `no poolgate binary at ${bin}: run cargo build first`);
  assert.ok(existsSync(chromiumPath), `no chromium at ${chromiumPath}`);
  // The demo's own config, on free ports, with its state in a fresh directory.
  const dir = mkdtempSync(join(tmpdir(), 'poolgate-browser-'));
  const [httpPort, adminPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const config = readFileSync(join(root, 'config/demo.toml'), 'utf8')
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${httpPort}`)
    .replaceAll('127.0.0.1:9090', `127.0.0.1:${adminPort}`)
    .replaceAll('127.0.0.1:9001', `127.0.0.1:${upstreamPort}`)
    .replaceAll('../data/', 'data/')
    .replaceAll('../certs', 'certs');
  writeFileSync(join(dir, 'demo.toml'), config);
  demo = spawn(bin, ['demo', '--config', join(dir, 'demo.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  demo.stdout.on('data', (d) => { output += d; });
  demo.stderr.on('data', (d) => { output += d; });
  await waitReady(`http://127.0.0.1:${adminPort}/readyz`, demo, () => output);
  http = (host, path = '/') => `http://${host}:${httpPort}${path}`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  demo?.kill('SIGKILL');
});

/// The identity headers on whoami's page, by name.
async function identityHeaders(page) {
  const rows = await page.locator('tr.identity').all();
  const headers = {};
  for (const row of rows) {
    headers[await row.locator('th').innerText()] = await row.locator('td').innerText();
  }
  return headers;
}

test('sign in, single sign-on to the second app, sign out of both', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();

  await page.goto(http('wiki.employees.localhost', '/welcome'));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.match(page.url(), /^http:\/\/login\.employees\.localhost:\d+\/oidc\/authorize/);
  assert.match(await page.locator('main').innerText(), /Employees/);

  // A wrong password first: the page says so without saying which part was wrong.
  await page.getByLabel('Username or email').fill('alice');
  await page.getByLabel('Password').fill('not-her-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /not right/);

  await page.getByLabel('Password').fill('wonderland');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();
  assert.equal(page.url(), http('wiki.employees.localhost', '/welcome'));
  const wiki = await identityHeaders(page);
  assert.equal(wiki['x-poolgate-username'], 'alice');
  assert.equal(wiki['x-poolgate-pool'], 'employees');
  assert.equal(wiki['x-poolgate-email'], 'alice@employees.example');
  assert.equal(wiki['x-poolgate-groups'], 'staff');
  assert.equal(wiki['x-poolgate-assertion'].split('.').length, 3, 'a signed assertion');
  const cookies = await context.cookies(http('wiki.employees.localhost'));
  const session = cookies.find((c) => c.name === 'poolgate');
  assert.ok(session && session.httpOnly && session.sameSite === 'Lax' && !session.domain.startsWith('.'));
  await page.screenshot({ path: join(tmpdir(), 'poolgate-wiki.png') });

  // The second app of the pool: no prompt.
  await page.goto(http('docs.employees.localhost', '/'));
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();
  const docs = await identityHeaders(page);
  assert.equal(docs['x-poolgate-user'], wiki['x-poolgate-user']);

  // Sign out from the wiki: the page asks first (a link alone signs no one out), and
  // its button signs out of both apps.
  await page.goto(http('wiki.employees.localhost', '/.poolgate/logout'));
  await page.getByRole('heading', { name: 'Sign out of Employees?' }).waitFor();
  await page.goto(http('docs.employees.localhost', '/'));
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();
  await page.goto(http('wiki.employees.localhost', '/.poolgate/logout'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
  for (const host of ['docs.employees.localhost', 'wiki.employees.localhost']) {
    await page.goto(http(host, '/'));
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  }
  await context.close();
});
