// What the interop suites share: the demo on free ports (with extra config), the admin
// API, headless chromium, and *.localhost resolving to loopback in Node as in browsers.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, setGlobalDispatcher } from 'undici';
import { chromium } from 'playwright-core';

export const root = resolve(import.meta.dirname, '../..');
const bin = process.env.POOLGATE_BIN ?? join(root, 'target/debug/poolgate');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

// *.localhost is loopback (RFC 6761), as browsers have it; Node asks the system resolver.
setGlobalDispatcher(new Agent({
  connect: {
    lookup(host, opts, cb) {
      if (host === 'localhost' || host.endsWith('.localhost')) {
        return opts?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
      }
      return dnsLookup(host, opts, cb);
    },
  },
}));

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/// The demo (`config/demo.toml`) on free ports, in a fresh directory, with `extra` TOML
/// appended (or what `extra({ upstream, http })` makes of the demo's addresses); resolves
/// once it is ready.
export async function startDemo(extra = '') {
  assert.ok(existsSync(bin), `no poolgate binary at ${bin}: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), 'poolgate-interop-'));
  const [httpPort, adminPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const config = readFileSync(join(root, 'config/demo.toml'), 'utf8')
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${httpPort}`)
    .replaceAll('127.0.0.1:9090', `127.0.0.1:${adminPort}`)
    .replaceAll('127.0.0.1:9001', `127.0.0.1:${upstreamPort}`)
    .replaceAll('../data/', 'data/')
    .replaceAll('../certs', 'certs')
    + (typeof extra === 'function' ? extra({ upstream: `127.0.0.1:${upstreamPort}`, http: httpPort }) : extra);
  writeFileSync(join(dir, 'demo.toml'), config);
  const child = spawn(bin, ['demo', '--config', join(dir, 'demo.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const demo = { dir, child, output: '', httpPort };
  child.stdout.on('data', (d) => { demo.output += d; });
  child.stderr.on('data', (d) => { demo.output += d; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`poolgate demo exited:\n${demo.output}`);
    try { if ((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok) break; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`poolgate demo not ready:\n${demo.output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = readFileSync(join(dir, 'data/admin.token'), 'utf8').trim();
  demo.http = (host, path = '/') => `http://${host}:${httpPort}${path}`;
  demo.admin = (method, path) => fetch(`http://127.0.0.1:${adminPort}/api${path}`, {
    method, headers: { authorization: `Bearer ${token}` },
  });
  /// A new secret for a registered client, as the admin API shows it once.
  demo.secretOf = async (pool, clientId) => {
    const r = await demo.admin('POST', `/pools/${pool}/clients/${clientId}/secret`);
    const text = await r.text();
    assert.equal(r.status, 201, text);
    return JSON.parse(text).client_secret;
  };
  demo.stop = () => child.kill('SIGKILL');
  return demo;
}

export function launchBrowser() {
  assert.ok(existsSync(chromiumPath), `no chromium at ${chromiumPath}`);
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
}

/// Fills the pool's login page.
export async function fillLogin(page, user, password) {
  await page.getByLabel('Username or email').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
