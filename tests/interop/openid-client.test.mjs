// Each demo pool's OpenID Provider against openid-client, the certified relying party for
// Node, with Debian's chromium (headless) as the person's browser. Every flow a relying
// party uses, and the refusals an attacker would try.
//
// Needs the poolgate binary (POOLGATE_BIN, default target/debug/poolgate) and
// /usr/bin/chromium; .ci/run provides both.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import * as client from 'openid-client';
import { fillLogin, freePort, launchBrowser, startDemo } from './harness.mjs';

let demo, browser, http, rp, rpServer;
// What reached the relying party's endpoints, in order.
const arrived = [];
const insecure = { execute: [client.allowInsecureRequests] };

// The demo's pools, their people, and an app of each (a public client of its own pool).
const POOLS = {
  employees: { user: 'alice', password: 'wonderland', app: 'wiki' },
  suppliers: { user: 'bob', password: 'the-builder', app: 'orders' },
};

before(async () => {
  const rpPort = await freePort();
  rp = `http://127.0.0.1:${rpPort}`;
  // The relying party's own endpoints (callbacks, post-logout page): they record what
  // the browser brings them.
  rpServer = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      // (A browser asks every origin for its icon: not something the OP sent.)
      if (req.url !== '/favicon.ico') arrived.push({ url: `${rp}${req.url}`, method: req.method, body });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('relying party');
    });
  });
  await new Promise((ok) => rpServer.listen(rpPort, '127.0.0.1', ok));
  // Two registered clients in each pool: `rp`, a confidential web app
  // (client_secret_basic, RS256 ID tokens), and `spa`, a public one.
  let clients = '';
  for (const pool of Object.keys(POOLS)) {
    clients += `
[pools.${pool}.clients.rp]
redirect_uris = ["${rp}/cb"]
post_logout_redirect_uris = ["${rp}/bye"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]

[pools.${pool}.clients.spa]
auth_method = "none"
redirect_uris = ["${rp}/spa"]
id_token_signed_response_alg = "ES256"
`;
  }
  demo = await startDemo(clients);
  http = demo.http;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  demo?.stop();
  rpServer?.close();
});

const issuer = (pool) => new URL(http(`login.${pool}.localhost`, ''));

/// openid-client's configuration of the confidential client `rp` of a pool.
async function rpConfig(pool) {
  return client.discovery(issuer(pool), 'rp', undefined, client.ClientSecretBasic(await demo.secretOf(pool, 'rp')), insecure);
}

/// A browser (context) of its own: a person with no session yet.
async function person() {
  const context = await browser.newContext();
  return context.newPage();
}

/// Opens an authorization URL; signs in if the pool asks; returns what reached the RP.
async function authorize(page, url, pool, { expectLogin } = {}) {
  arrived.length = 0;
  await page.goto(url.href).catch((e) => { throw new Error(`${e.message}\n--- gateway:\n${demo.output.slice(-3000)}`); });
  const login = page.getByRole('heading', { name: 'Sign in' });
  const came = () => arrived.length > 0;
  await page.waitForFunction(() => true);
  for (let i = 0; i < 100 && !came() && !(await login.isVisible()); i++) {
    await page.waitForTimeout(50);
  }
  if (!came()) {
    assert.notEqual(expectLogin, false, 'the login page was shown where a session should have answered');
    await fillLogin(page, POOLS[pool].user, POOLS[pool].password);
    for (let i = 0; i < 200 && !came(); i++) await page.waitForTimeout(50);
  } else {
    assert.notEqual(expectLogin, true, 'a code came back where a new login was asked for');
  }
  assert.ok(came(), `nothing reached the relying party from ${page.url()}`);
  return arrived[0];
}

async function codeFlow(config, page, pool, params = {}, checks = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${rp}/cb`,
    scope: 'openid profile email groups offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...params,
  });
  const arrived = await authorize(page, url, pool, checks);
  const tokens = await client.authorizationCodeGrant(config, new URL(arrived.url), {
    pkceCodeVerifier: verifier,
    ...checks.grant,
  }).catch((e) => { throw new Error(`${e.message}: ${e.cause?.message ?? JSON.stringify(e.cause)}`, { cause: e }); });
  return { tokens, arrived };
}

for (const pool of Object.keys(POOLS)) {
  test(`${pool}: discovery, code + PKCE with and without state, nonce, max_age, prompt=none, userinfo`, async () => {
    const config = await rpConfig(pool);
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, issuer(pool).href.replace(/\/$/, ''));
    for (const field of ['revocation_endpoint', 'introspection_endpoint', 'end_session_endpoint', 'userinfo_endpoint']) {
      assert.ok(meta[field], field);
    }
    assert.ok(meta.id_token_signing_alg_values_supported.includes('RS256'));
    // RFC 8414 metadata says the same.
    const oauthMeta = await (await fetch(http(`login.${pool}.localhost`, '/.well-known/oauth-authorization-server'))).json();
    assert.equal(oauthMeta.issuer, meta.issuer);

    const page = await person();
    // openid-client's recommended flow: PKCE, no state. Its checks fail if a state comes back.
    const { tokens } = await codeFlow(config, page, pool, {}, { expectLogin: true });
    const claims = tokens.claims();
    assert.equal(claims.preferred_username, POOLS[pool].user);
    assert.equal(claims.aud, 'rp');
    assert.ok(tokens.refresh_token);

    // With state and nonce, by single sign-on.
    const state = client.randomState();
    const nonce = client.randomNonce();
    const sso = await codeFlow(config, page, pool, { state, nonce }, { expectLogin: false, grant: { expectedState: state, expectedNonce: nonce } });
    assert.equal(sso.tokens.claims().nonce, nonce);

    // max_age=0 forces a new login, and auth_time says so.
    const fresh = await codeFlow(config, page, pool, { max_age: '0' }, { expectLogin: true, grant: { maxAge: 0 } });
    assert.ok(fresh.tokens.claims().auth_time >= claims.auth_time);

    // prompt=none: a code with a session; login_required to the client without one.
    await codeFlow(config, page, pool, { prompt: 'none' }, { expectLogin: false });
    const stranger = await person();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: `${rp}/cb`, scope: 'openid', prompt: 'none', state: 's1',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const refused = await authorize(stranger, url, pool, { expectLogin: false });
    const answer = new URL(refused.url).searchParams;
    assert.equal(answer.get('error'), 'login_required');
    assert.equal(answer.get('state'), 's1');

    // UserInfo, GET and POST.
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, POOLS[pool].user);
    assert.equal(typeof info.email_verified, 'boolean');
    const posted = await client.fetchProtectedResource(config, tokens.access_token, new URL(meta.userinfo_endpoint), 'POST');
    assert.equal(posted.status, 200);
    assert.equal((await posted.json()).sub, claims.sub);
    await page.context().close();
    await stranger.context().close();
  });

  test(`${pool}: refresh rotation and reuse, revocation, introspection, client_credentials`, async () => {
    const config = await rpConfig(pool);
    const page = await person();
    const { tokens } = await codeFlow(config, page, pool);
    const next = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.notEqual(next.refresh_token, tokens.refresh_token, 'rotated');
    assert.equal((await client.tokenIntrospection(config, next.access_token)).active, true);
    // The spent one again: refused, and its family (the newest token too) is revoked.
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => e.error === 'invalid_grant');
    await assert.rejects(client.refreshTokenGrant(config, next.refresh_token), (e) => e.error === 'invalid_grant');

    // Revocation (RFC 7009), seen by introspection (RFC 7662).
    const other = await codeFlow(config, page, pool, {}, { expectLogin: false });
    assert.equal((await client.tokenIntrospection(config, other.tokens.refresh_token)).active, true);
    await client.tokenRevocation(config, other.tokens.refresh_token);
    assert.equal((await client.tokenIntrospection(config, other.tokens.refresh_token)).active, false);
    assert.equal((await client.tokenIntrospection(config, other.tokens.access_token)).active, false);

    // A service calls one of the pool's apps as itself.
    const app = POOLS[pool].app;
    const service = await client.clientCredentialsGrant(config, { resource: app });
    assert.equal(service.refresh_token, undefined);
    const called = await fetch(http(`${app}.${pool}.localhost`, '/report'), {
      headers: { authorization: `Bearer ${service.access_token}` },
    });
    assert.equal(called.status, 200);
    await page.context().close();
  });

  test(`${pool}: RP-initiated logout with a hint, and with a confirmation`, async () => {
    const config = await rpConfig(pool);
    const page = await person();
    const { tokens } = await codeFlow(config, page, pool);
    // With the ID token as hint: signed out at once, back at the registered address with state.
    arrived.length = 0;
    await page.goto(client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token, post_logout_redirect_uri: `${rp}/bye`, state: 'bye1',
    }).href);
    for (let i = 0; i < 100 && arrived.length === 0; i++) await page.waitForTimeout(50);
    assert.equal(arrived[0].url, `${rp}/bye?state=bye1`);
    await codeFlow(config, page, pool, {}, { expectLogin: true });

    // Without a hint: the pool asks first, then sends the browser back.
    arrived.length = 0;
    await page.goto(client.buildEndSessionUrl(config, { post_logout_redirect_uri: `${rp}/bye`, state: 'bye2' }).href);
    await page.getByRole('button', { name: 'Sign out' }).click();
    for (let i = 0; i < 100 && arrived.length === 0; i++) await page.waitForTimeout(50);
    assert.equal(arrived[0].url, `${rp}/bye?state=bye2`);
    await codeFlow(config, page, pool, {}, { expectLogin: true });
    await page.context().close();
  });

  test(`${pool}: what an attacker tries is refused`, async () => {
    const config = await rpConfig(pool);
    const page = await person();
    const verifier = client.randomPKCECodeVerifier();
    const params = {
      redirect_uri: `${rp}/cb`, scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    };
    // A code replayed: refused, and what its first use gave is revoked.
    const arrived = await authorize(page, client.buildAuthorizationUrl(config, params), pool);
    const first = await client.authorizationCodeGrant(config, new URL(arrived.url), { pkceCodeVerifier: verifier });
    await assert.rejects(
      client.authorizationCodeGrant(config, new URL(arrived.url), { pkceCodeVerifier: verifier }),
      (e) => e.error === 'invalid_grant',
    );
    await assert.rejects(client.fetchUserInfo(config, first.access_token, client.skipSubjectCheck));
    // A wrong verifier.
    const again = await authorize(page, client.buildAuthorizationUrl(config, params), pool, { expectLogin: false });
    await assert.rejects(
      client.authorizationCodeGrant(config, new URL(again.url), { pkceCodeVerifier: client.randomPKCECodeVerifier() }),
      (e) => e.error === 'invalid_grant',
    );
    // PKCE plain.
    const plain = new URL(client.buildAuthorizationUrl(config, params));
    plain.searchParams.set('code_challenge_method', 'plain');
    const plainAnswer = await authorize(page, plain, pool, { expectLogin: false });
    assert.equal(new URL(plainAnswer.url).searchParams.get('error'), 'invalid_request');
    // Redirect URI variants: a page, never a redirect.
    for (const variant of [`${rp}/cb/`, `${rp}/CB`, `${rp}/x/../cb`, `${rp.replace('127.0.0.1', 'localhost')}/cb`, `${rp}/cb?x=1`]) {
      const url = new URL(client.buildAuthorizationUrl(config, params));
      url.searchParams.set('redirect_uri', variant);
      arrived.length = 0;
      const resp = await page.goto(url.href);
      assert.equal(resp.status(), 400, variant);
      assert.equal(arrived.length, 0, variant);
    }
    // The confidential client without its secret, or with a wrong one.
    const noSecret = await client.discovery(issuer(pool), 'rp', undefined, client.None(), insecure);
    const wrong = await client.discovery(issuer(pool), 'rp', undefined, client.ClientSecretBasic('guess'), insecure);
    for (const c of [noSecret, wrong]) {
      // 401 invalid_client, with a Basic challenge (which openid-client reports as such).
      await assert.rejects(client.clientCredentialsGrant(c), (e) => e.status === 401 || e.error === 'invalid_client');
    }
    // A token of the other pool is nobody here: UserInfo and introspection.
    const otherPool = pool === 'employees' ? 'suppliers' : 'employees';
    const otherConfig = await rpConfig(otherPool);
    await assert.rejects(client.fetchUserInfo(otherConfig, first.access_token, client.skipSubjectCheck));
    const live = await codeFlow(config, page, pool, {}, { expectLogin: false });
    assert.equal((await client.tokenIntrospection(otherConfig, live.tokens.access_token)).active, false);
    await page.context().close();
  });
}

test('the public client: PKCE, ES256 ID tokens, form_post', async () => {
  const config = await client.discovery(issuer('employees'), 'spa', { id_token_signed_response_alg: 'ES256' }, client.None(), insecure);
  const page = await person();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${rp}/spa`, scope: 'openid email', state, response_mode: 'form_post',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const arrived = await authorize(page, url, 'employees');
  assert.equal(arrived.method, 'POST', 'form_post answers by POST');
  const body = new URLSearchParams(arrived.body);
  assert.equal(body.get('state'), state);
  assert.ok(body.get('code'));
  const request = new Request(arrived.url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const tokens = await client.authorizationCodeGrant(config, request, { pkceCodeVerifier: verifier, expectedState: state });
  assert.equal(tokens.claims().email, 'alice@employees.example');
  await page.context().close();
});
