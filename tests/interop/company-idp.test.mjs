// Federation with a real external provider: oidc-provider (the certified OP for Node) runs
// on loopback as the company's identity provider, an `oidc` source of the demo's employees
// pool. An employee signs in to an employees app through it in headless chromium (its own
// login and consent pages), and signing out at the provider ends the employee's session
// at the gateway through back-channel logout.
//
// Needs the poolgate binary (POOLGATE_BIN, default target/debug/poolgate) and
// /usr/bin/chromium; .ci/run provides both.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import { freePort, launchBrowser, startDemo } from './harness.mjs';

const SECRET = 'company-idp-client-secret-0123456789';
let demo, browser, provider, server, issuer;
// What the gateway sent the provider's back-channel logout to us, and the answers.
const logouts = [];

before(async () => {
  const idpPort = await freePort();
  issuer = `http://127.0.0.1:${idpPort}`;
  // The company's intranet: an employees app open to any of the pool's sources.
  demo = await startDemo(({ upstream }) => `
[pools.employees.sources.company]
kind = "oidc"
name = "Company IdP"
issuer = "${issuer}"
client_id = "poolgate-employees"
client_secret_file = "company.secret"
trust_email = true

[pools.employees.apps.intranet]
name = "Intranet"
hosts = ["intranet.employees.localhost"]
upstreams = ["${upstream}"]
`);
  writeFileSync(join(demo.dir, 'company.secret'), `${SECRET}\n`);
  const portal = demo.http('login.employees.localhost');
  provider = new Provider(issuer, {
    clients: [{
      client_id: 'poolgate-employees',
      client_secret: SECRET,
      redirect_uris: [`${portal}federation/company/callback`],
      post_logout_redirect_uris: [`${portal}federation/company/signed-out`],
      backchannel_logout_uri: `${portal}federation/company/backchannel-logout`,
      backchannel_logout_session_required: true,
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    features: { backchannelLogout: { enabled: true }, devInteractions: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: id, email: `${id}@corp.example`, email_verified: true,
        name: 'Erin Employee', preferred_username: id,
      }),
    }),
    cookies: { keys: ['interop-cookie-key'] },
  });
  provider.on('backchannel.error', (err) => logouts.push({ ok: false, err: String(err) }));
  provider.on('backchannel.success', () => logouts.push({ ok: true }));
  server = provider.listen(idpPort, '127.0.0.1');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
  demo?.stop();
});

test('an employee signs in through the company IdP, and its back-channel logout ends the session', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const intranet = demo.http('intranet.employees.localhost', '/reports');
  await page.goto(intranet);
  await page.getByRole('link', { name: 'Sign in with Company IdP' }).click();

  // The provider's own pages: any login and password, then consent.
  await page.waitForURL(`${issuer}/**`);
  await page.locator('input[name=login]').fill('erin');
  await page.locator('input[name=password]').fill('any');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();

  // Back at the intranet, as the employees pool's own user, through the source.
  await page.waitForURL(intranet);
  // A tab that stays on the intranet asks it as a script would (the browser's own fetch
  // and cookies): 200 with what the app received, or 401 once signed out.
  const app = await context.newPage();
  await app.goto(intranet);
  const echo = () => app.evaluate(async (u) => {
    const r = await fetch(u, { headers: { accept: 'application/json' }, redirect: 'manual' });
    return { status: r.status, body: r.status === 200 ? await r.json() : null };
  }, intranet);
  const first = await echo();
  assert.equal(first.status, 200);
  assert.deepEqual(first.body.headers['x-poolgate-source'], ['company']);
  assert.deepEqual(first.body.headers['x-poolgate-username'], ['erin']);
  assert.deepEqual(first.body.headers['x-poolgate-email'], ['erin@corp.example']);
  const links = await (await demo.admin('GET', '/pools/employees/links')).json();
  const link = (links.items ?? links).find((l) => l.source === 'company');
  assert.equal(link.subject, 'erin');
  assert.equal(link.issuer, issuer);
  assert.deepEqual(first.body.headers['x-poolgate-user'], [link.user_id]);

  // Signing out at the company IdP: it tells the gateway, which ends the session.
  await page.goto(`${issuer}/session/end`);
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  const deadline = Date.now() + 10_000;
  let now = await echo();
  while (now.status === 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await echo();
  }
  assert.equal(now.status, 401, `still signed in after the IdP's logout; back-channel: ${JSON.stringify(logouts)}`);
  assert.ok(logouts.some((l) => l.ok), JSON.stringify(logouts));
  await context.close();
});
