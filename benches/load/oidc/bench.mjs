// Token-endpoint throughput: code redemptions and refresh grants per second at 64
// concurrent clients, poolgate's OP (SQLite, then PostgreSQL when POOLGATE_BENCH_POSTGRES
// is set) beside oidc-provider (npm; in memory, as its quick start) doing the same grants,
// from the same load generator in the same run. Targets take turns for three rounds;
// figures are medians. Every grant must succeed: any error fails the run.
//
//   benches/load/oidc/run          (builds poolgate --release, installs oidc-provider)

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';

const root = resolve(import.meta.dirname, '../../..');
const bin = process.env.POOLGATE_BIN ?? join(root, 'target/release/poolgate');
const CONCURRENCY = 64;
const CODES_PER_WORKER = 20;
const REFRESH_SECONDS = 5;
const ROUNDS = 3;
const VERIFIER = 'bench-verifier-0123456789-0123456789-0123456789';
// The ID tokens' algorithm, the same on every target: RS256 (OIDC's mandatory one, the
// default for a registered client) unless POOLGATE_BENCH_ALG=ES256.
const ALG = process.env.POOLGATE_BENCH_ALG ?? 'RS256';
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url');

if (process.argv[2] === 'serve-op') {
  // oidc-provider, in a process of its own.
  const { default: Provider } = await import('oidc-provider');
  const port = Number(process.argv[3]);
  // In memory, like its quick-start adapter, but without that adapter's 1,000-entry LRU
  // (which drops codes and grants under this load).
  const store = new Map();
  class MemoryAdapter {
    constructor(name) { this.name = name; }
    key(id) { return `${this.name}:${id}`; }
    async upsert(id, payload) {
      store.set(this.key(id), payload);
      if (payload.grantId) store.set(`grant:${payload.grantId}:${this.key(id)}`, true);
      if (payload.uid) store.set(`uid:${payload.uid}`, id);
    }
    async find(id) { return store.get(this.key(id)); }
    async findByUid(uid) { const id = store.get(`uid:${uid}`); return id && this.find(id); }
    async findByUserCode() { return undefined; }
    async consume(id) { const p = store.get(this.key(id)); if (p) p.consumed = Math.floor(Date.now() / 1000); }
    async destroy(id) { store.delete(this.key(id)); }
    async revokeByGrantId(grantId) {
      for (const k of store.keys()) {
        if (k.startsWith(`grant:${grantId}:`)) { store.delete(k.slice(`grant:${grantId}:`.length)); store.delete(k); }
      }
    }
  }
  // RS256 with its quick-start keys; ES256 with a P-256 key of its own.
  const { generateKeyPairSync } = await import('node:crypto');
  const jwks = ALG === 'ES256'
    ? { keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256' }] }
    : undefined;
  const provider = new Provider(`http://op.localhost:${port}`, {
    adapter: MemoryAdapter,
    ...(jwks && { jwks }),
    clients: [{
      id_token_signed_response_alg: ALG,
      client_id: 'rp', client_secret: 'rp-secret', redirect_uris: ['http://rp.localhost/cb'],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: `${id}@bench.example`, email_verified: true }) }),
    issueRefreshToken: () => true,
    rotateRefreshToken: true,
    cookies: { keys: ['bench-cookie-key'] },
    ttl: { AuthorizationCode: 600 },
  });
  provider.listen(port, '127.0.0.1');
  await new Promise(() => {});
}

const dispatcher = new Agent({
  connections: CONCURRENCY * 2,
  connect: { lookup: (host, opts, cb) => (opts?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)) },
});

function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

/// One HTTP exchange; cookies in and out through `jar`.
async function http(url, { method = 'GET', headers = {}, body, jar } = {}) {
  const h = { ...headers };
  if (jar?.size) h.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await request(url, { method, headers: h, body, dispatcher });
  const text = await res.body.text();
  for (const c of [res.headers['set-cookie'] ?? []].flat()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar?.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return { status: res.statusCode, headers: res.headers, text };
}

const form = (o) => new URLSearchParams(o).toString();
const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try { if ((await http(url)).status < 500) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered`);
}

/// A target: how to mint a code for the signed-in browser, and its token endpoint.
async function poolgate(store) {
  const dir = mkdtempSync(join(tmpdir(), 'poolgate-oidc-bench-'));
  const [port, admin] = [await freePort(), await freePort()];
  const config = join(dir, 'poolgate.toml');
  writeFileSync(config, `version = 1
[listen]
http = "127.0.0.1:${port}"
[admin]
listen = "127.0.0.1:${admin}"
[store]
url = "${store === 'sqlite' ? `sqlite:${dir}/bench.db` : process.env.POOLGATE_BENCH_POSTGRES}"
[log]
access = "off"
[pools.bench]
name = "Bench"
portal = "login.bench.localhost"
plan = "enterprise"
[pools.bench.clients.rp]
redirect_uris = ["http://rp.localhost/cb"]
id_token_signed_response_alg = "${ALG}"
`);
  execFileSync(bin, ['user', 'add', '--config', config, '--pool', 'bench', 'alice', '--password-stdin'], { input: 'bench-password\n' });
  const secret = execFileSync(bin, ['client', 'secret', '--config', config, '--pool', 'bench', 'rp'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  const child = spawn(bin, ['serve', '--config', config, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://login.bench.localhost:${port}`;
  await waitFor(`${base}/.well-known/openid-configuration`);
  const jar = new Map();
  const authorizeUrl = `${base}/oidc/authorize?${form({
    client_id: 'rp', response_type: 'code', scope: 'openid email', redirect_uri: 'http://rp.localhost/cb',
    code_challenge: CHALLENGE, code_challenge_method: 'S256',
  })}`;
  // Sign in once through the hosted login page; then every authorization is single sign-on.
  const page = await http(authorizeUrl, { jar });
  const field = (name) => page.text.match(new RegExp(`name="${name}" value="([^"]*)"`))[1].replaceAll('&#x2f;', '/').replaceAll('&#x3d;', '=').replaceAll('&amp;', '&');
  const login = await http(`${base}/login`, {
    method: 'POST', jar,
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
    body: form({ csrf: field('csrf'), request: field('request'), username: 'alice', password: 'bench-password' }),
  });
  if (login.status !== 303) throw new Error(`poolgate login: ${login.status} ${login.text.slice(0, 300)}`);
  return {
    name: `poolgate (${store === 'sqlite' ? 'SQLite' : 'PostgreSQL'})`,
    token: `${base}/oidc/token`,
    auth: basic('rp', secret),
    async mint() {
      const r = await http(authorizeUrl, { jar });
      return new URL(r.headers.location).searchParams.get('code');
    },
    stop: () => child.kill('SIGKILL'),
  };
}

async function oidcProvider() {
  const port = await freePort();
  const child = spawn(process.execPath, [import.meta.filename, 'serve-op', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://op.localhost:${port}`;
  await waitFor(`${base}/.well-known/openid-configuration`);
  const jar = new Map();
  const authorizeUrl = `${base}/auth?${form({
    client_id: 'rp', response_type: 'code', scope: 'openid email', redirect_uri: 'http://rp.localhost/cb',
    code_challenge: CHALLENGE, code_challenge_method: 'S256',
  })}`;
  // Its development interactions: sign in, consent once; then codes come at once.
  let r = await http(authorizeUrl, { jar });
  for (let i = 0; i < 10 && !r.headers.location?.startsWith('http://rp.localhost'); i++) {
    const loc = new URL(r.headers.location, base);
    if (loc.pathname.startsWith('/interaction/')) {
      const page = await http(loc.href, { jar });
      const prompt = page.text.includes('name="login"') ? { prompt: 'login', login: 'alice', password: 'x' } : { prompt: 'consent' };
      r = await http(loc.href, { method: 'POST', jar, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(prompt) });
    } else {
      r = await http(loc.href, { jar });
    }
  }
  if (!r.headers.location?.includes('code=')) throw new Error(`oidc-provider sign-in: ${r.status} ${r.headers.location}`);
  return {
    name: 'oidc-provider',
    token: `${base}/token`,
    auth: basic('rp', 'rp-secret'),
    async mint() {
      const res = await http(authorizeUrl, { jar });
      const code = new URL(res.headers.location, base).searchParams.get('code');
      if (!code) throw new Error(`oidc-provider gave no code: ${res.status} ${res.headers.location}`);
      return code;
    },
    stop: () => child.kill('SIGKILL'),
  };
}

async function grant(t, body) {
  const r = await http(t.token, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: t.auth },
    body: form(body),
  });
  if (r.status !== 200) throw new Error(`${t.name}: ${r.status} ${r.text.slice(0, 200)}`);
  return JSON.parse(r.text);
}

/// One round on a target: codes redeemed per second, then refresh grants per second.
async function round(t) {
  const codes = [];
  for (let w = 0; w < CONCURRENCY; w++) {
    const mine = [];
    for (let i = 0; i < CODES_PER_WORKER; i++) mine.push(await t.mint());
    codes.push(mine);
  }
  const refresh = [];
  let started = performance.now();
  await Promise.all(codes.map(async (mine) => {
    for (const code of mine) {
      const got = await grant(t, { grant_type: 'authorization_code', code, redirect_uri: 'http://rp.localhost/cb', code_verifier: VERIFIER });
      refresh.push(got.refresh_token);
    }
  }));
  const redemptions = (CONCURRENCY * CODES_PER_WORKER) / ((performance.now() - started) / 1000);
  let done = 0;
  started = performance.now();
  const until = started + REFRESH_SECONDS * 1000;
  await Promise.all(refresh.slice(0, CONCURRENCY).map(async (rt) => {
    let current = rt;
    while (performance.now() < until) {
      current = (await grant(t, { grant_type: 'refresh_token', refresh_token: current })).refresh_token;
      done++;
    }
  }));
  const refreshes = done / ((performance.now() - started) / 1000);
  return { redemptions, refreshes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const targets = [await oidcProvider(), await poolgate('sqlite')];
if (process.env.POOLGATE_BENCH_POSTGRES) targets.push(await poolgate('postgres'));
const results = Object.fromEntries(targets.map((t) => [t.name, { redemptions: [], refreshes: [] }]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      const got = await round(t);
      results[t.name].redemptions.push(got.redemptions);
      results[t.name].refreshes.push(got.refreshes);
      console.error(`round ${r + 1} ${t.name}: ${got.redemptions.toFixed(0)} codes/s, ${got.refreshes.toFixed(0)} refreshes/s`);
    }
  }
} finally {
  for (const t of targets) t.stop();
}
const base = results['oidc-provider'];
const table = Object.entries(results).map(([name, r]) => ({
  target: name,
  codes_per_s: Math.round(median(r.redemptions)),
  codes_ratio: +(median(r.redemptions) / median(base.redemptions)).toFixed(2),
  refreshes_per_s: Math.round(median(r.refreshes)),
  refreshes_ratio: +(median(r.refreshes) / median(base.refreshes)).toFixed(2),
  rounds: r,
}));
console.table(table.map(({ rounds, ...row }) => row));
const out = join(root, 'benches/load/results');
mkdirSync(out, { recursive: true });
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
writeFileSync(join(out, `oidc-${stamp}.json`), JSON.stringify({ commit, concurrency: CONCURRENCY, id_token_alg: ALG, table }, null, 2));
console.log(`results: benches/load/results/oidc-${stamp}.json`);
