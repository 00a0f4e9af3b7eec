// Apache with mod_auth_openidc (Debian's libapache2-mod-auth-openidc) signs in through
// the employees pool in four set-ups — a public client with PKCE and ES256 ID tokens,
// RS256 with client_secret_post, client_secret_basic, and form_post — and every Apache
// session ends when the pool's SSO session does, by back-channel logout.
//
// Needs /usr/sbin/apache2 with mod_auth_openidc, chromium and the poolgate binary;
// .ci/run provides them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fillLogin, freePort, launchBrowser, startDemo } from './harness.mjs';

const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';

// Each set-up: the client registered at the pool, and how Apache is configured for it.
const SETUPS = [
  { id: 'apache-pkce', auth: 'none', alg: 'ES256', pkce: true },
  { id: 'apache-rs256', auth: 'client_secret_post', alg: 'RS256' },
  { id: 'apache-basic', auth: 'client_secret_basic', alg: 'RS256' },
  { id: 'apache-formpost', auth: 'client_secret_basic', alg: 'RS256', formPost: true },
];

let demo, browser;
const apaches = [];

/// Each Apache has a host name of its own, so each keeps its own session cookie.
const hostOf = (s) => `${s.id}.localhost`;

function apacheConf(dir, port, issuer, s, secret) {
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'hello.txt'), `hello from ${s.id}\n`);
  return `ServerRoot ${dir}
PidFile ${dir}/apache.pid
ErrorLog ${dir}/error.log
LogLevel warn auth_openidc:info
Listen 127.0.0.1:${port}
ServerName ${hostOf(s)}
LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so
LoadModule authn_core_module ${MODULES}/mod_authn_core.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule authz_user_module ${MODULES}/mod_authz_user.so
LoadModule auth_openidc_module ${MODULES}/mod_auth_openidc.so
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
DocumentRoot ${www}
OIDCProviderMetadataURL ${issuer}/.well-known/openid-configuration
OIDCClientID ${s.id}
OIDCClientSecret ${secret ?? 'none'}
OIDCProviderTokenEndpointAuth ${s.auth}
OIDCIDTokenSignedResponseAlg ${s.alg}
${s.pkce ? 'OIDCPKCEMethod S256' : ''}
${s.formPost ? 'OIDCResponseMode form_post' : ''}
OIDCScope "openid email"
OIDCRedirectURI http://${hostOf(s)}:${port}/oidc_callback
OIDCCryptoPassphrase ${randomBytes(16).toString('hex')}
OIDCSSLValidateServer Off
<Location />
  AuthType openid-connect
  Require valid-user
</Location>
`;
}

before(async () => {
  assert.ok(existsSync(APACHE) && existsSync(`${MODULES}/mod_auth_openidc.so`), 'apache2 with mod_auth_openidc is needed');
  const ports = [];
  let clients = '';
  for (const s of SETUPS) {
    const port = await freePort();
    ports.push(port);
    clients += `
[pools.employees.clients.${s.id}]
auth_method = "${s.auth}"
id_token_signed_response_alg = "${s.alg}"
redirect_uris = ["http://${hostOf(s)}:${port}/oidc_callback"]
backchannel_logout_uri = "http://${hostOf(s)}:${port}/oidc_callback?logout=backchannel"
`;
  }
  demo = await startDemo(clients);
  const issuer = demo.http('login.employees.localhost', '').replace(/\/$/, '');
  for (const [i, s] of SETUPS.entries()) {
    const dir = mkdtempSync(join(tmpdir(), `poolgate-${s.id}-`));
    const secret = s.auth === 'none' ? null : await demo.secretOf('employees', s.id);
    writeFileSync(join(dir, 'apache.conf'), apacheConf(dir, ports[i], issuer, s, secret));
    // Apache forks workers: its output goes to a file (no pipe the workers would hold
    // open), and it gets a process group of its own, ended whole.
    const outFile = join(dir, 'stdout.log');
    const fd = openSync(outFile, 'w');
    const child = spawn(APACHE, ['-f', join(dir, 'apache.conf'), '-DFOREGROUND'], { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const out = () => readFileSync(outFile, 'utf8');
    const url = `http://${hostOf(s)}:${ports[i]}`;
    const log = () => `${out()}\n${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`;
    apaches.push({ ...s, url, child, log });
    for (let t = 0; ; t++) {
      if (child.exitCode !== null) throw new Error(`apache exited:\n${log()}`);
      try { await fetch(`http://127.0.0.1:${ports[i]}/hello.txt`, { redirect: 'manual' }); break; } catch { /* not yet */ }
      if (t > 200) throw new Error(`apache not ready:\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const a of apaches) {
    try { process.kill(-a.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  demo?.stop();
});

/// Opens an Apache-protected page; signs in at the pool if asked. What the page shows.
async function open(page, url, { expectLogin }) {
  await page.goto(url);
  const login = page.getByRole('heading', { name: 'Sign in' });
  const hello = page.getByText(/^hello from /);
  for (let i = 0; i < 200 && !(await login.isVisible()) && !(await hello.isVisible()); i++) {
    await page.waitForTimeout(50);
  }
  const asked = await login.isVisible();
  assert.equal(asked, expectLogin, `${url}: ${asked ? 'the login page' : 'no login page'}`);
  if (asked) return;
  return page.textContent('body');
}

test('mod_auth_openidc signs in four ways, and back-channel logout ends every Apache session', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The first set-up signs in at the pool; the others by single sign-on.
  for (const [i, a] of apaches.entries()) {
    await page.goto(`${a.url}/hello.txt`);
    if (i === 0) {
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      await fillLogin(page, 'alice', 'wonderland');
    }
    try {
      await page.getByText(`hello from ${a.id}`).waitFor({ timeout: 10_000 });
    } catch (e) {
      throw new Error(`${a.id}: ${e.message}\n${await page.content()}\n--- apache:\n${a.log()}\n--- poolgate:\n${demo.output.slice(-4000)}`);
    }
  }
  // Each Apache session stands on its own cookie: it answers without asking the pool.
  const authorizations = () => demo.output.split('"path":"/oidc/authorize"').length;
  const before = authorizations();
  for (const a of apaches) {
    assert.match(await open(page, `${a.url}/hello.txt`, { expectLogin: false }), new RegExp(`hello from ${a.id}`));
  }
  assert.equal(authorizations(), before, 'an Apache went back to the pool');

  // Sign out at the pool (its own page, confirmed).
  await page.goto(demo.http('login.employees.localhost', '/logout'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'You are signed out' }).waitFor();

  // Within a few seconds, every Apache has dropped its session: the next visit signs in again.
  const deadline = Date.now() + 15_000;
  for (const a of apaches) {
    for (;;) {
      await page.goto(`${a.url}/hello.txt`);
      await page.waitForLoadState('load');
      if (await page.getByRole('heading', { name: 'Sign in' }).isVisible()) break;
      assert.ok(Date.now() < deadline, `${a.id} still has its session:\n${a.log()}\n--- poolgate:\n${demo.output.slice(-4000)}`);
      await page.waitForTimeout(250);
    }
  }
  let audit;
  for (let t = 0; t < 50; t++) {
    audit = await (await demo.admin('GET', '/pools/employees/audit?limit=100')).json();
    if (apaches.every((a) => audit.items.some((e) => e.action === 'backchannel.logout' && e.target === a.id))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const a of apaches) {
    assert.ok(
      audit.items.some((e) => e.action === 'backchannel.logout' && e.target === a.id && e.outcome === 'ok'),
      `no delivered logout for ${a.id}: ${JSON.stringify(audit.items.filter((e) => e.action.startsWith('backchannel')))}\n${demo.output.slice(-3000)}`,
    );
  }
  await context.close();
});
