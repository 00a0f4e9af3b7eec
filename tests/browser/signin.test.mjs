// The demo, in a real browser: sign in to the wiki, see what the app receives, open the
// second app of the pool without a prompt, sign out of both.
//
// Runs Debian's chromium headless through playwright-core. Needs the poolgate binary
// (POOLGATE_BIN, default target/debug/poolgate) and /usr/bin/chromium; .ci/run provides both.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHmac } from 'node:crypto';
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

let demo, browser, http, api, admin;
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
    .replaceAll('../certs', 'certs')
    // Two more apps of the pool: one alice may not use (403), one whose server is down (502).
    + `
[pools.employees.apps.vault]
name = "Vault"
hosts = ["vault.employees.localhost"]
upstreams = ["127.0.0.1:${upstreamPort}"]
allowed_groups = ["auditors"]

[pools.employees.apps.down]
name = "Reports"
hosts = ["down.employees.localhost"]
upstreams = ["127.0.0.1:${await freePort()}"]

[pools.employees.apps.slow]
name = "Archive"
hosts = ["slow.employees.localhost"]
upstreams = ["127.0.0.1:${upstreamPort}"]
public_paths = ["/"]
timeout = "1s"
`;
  writeFileSync(join(dir, 'demo.toml'), config);
  demo = spawn(bin, ['demo', '--config', join(dir, 'demo.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  demo.stdout.on('data', (d) => { output += d; });
  demo.stderr.on('data', (d) => { output += d; });
  await waitReady(`http://127.0.0.1:${adminPort}/readyz`, demo, () => output);
  http = (host, path = '/') => `http://${host}:${httpPort}${path}`;
  admin = (path) => `http://127.0.0.1:${adminPort}${path}`;
  const token = readFileSync(join(dir, 'data/admin.token'), 'utf8').trim();
  api = (method, path, body) => fetch(`http://127.0.0.1:${adminPort}/api${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
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
  // alice is staff, and runs the demo's console.
  assert.deepEqual(wiki['x-poolgate-groups'].split(',').sort(), ['console_admins', 'staff']);
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

/// The current TOTP code (RFC 6238: SHA-1, 30 s, 6 digits) of a base32 secret.
function totp(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

const shots = join(root, 'target/screenshots');
const BRAND = 'rgb(10, 127, 90)'; // the demo's employees colour, #0a7f5a

/// Looks at the page as a person would on a desktop and on a phone: a viewport set for
/// phones, the pool's colour, the next step on screen, nothing wider than the screen;
/// keeps a screenshot of each under target/screenshots/.
async function looksRight(page, name, nextStep, brand = BRAND) {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 860 });
    const viewport = await page.locator('meta[name=viewport]').getAttribute('content');
    assert.match(viewport ?? '', /width=device-width/, `${name}: viewport`);
    const colour = await page.locator('main').evaluate((m) => getComputedStyle(m).borderTopColor);
    assert.equal(colour, brand, `${name}: the pool's colour`);
    await nextStep.waitFor();
    assert.ok(await nextStep.isVisible(), `${name}: the next step is on screen at ${width} px`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name}: ${overflow} px wider than a ${width} px screen`);
    await page.screenshot({ path: join(shots, `${name}-${width}.png`), fullPage: true });
  }
}

test('every page a person meets looks like one product, on a desktop and a phone', async () => {
  mkdirSync(shots, { recursive: true });
  const created = await api('POST', '/pools/employees/users', {
    username: 'grace', email: 'grace@employees.example', name: 'Grace', password: 'a long passphrase', groups: ['staff'],
  });
  assert.equal(created.status, 201, await created.text());
  const context = await browser.newContext();
  const page = await context.newPage();

  // The login page names the pool and the app by its display name.
  await page.goto(http('wiki.employees.localhost', '/'));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.match(await page.locator('.pool').innerText(), /Employees · Team wiki/);
  await looksRight(page, 'login', page.getByRole('button', { name: 'Sign in' }));
  await page.getByLabel('Username or email').fill('grace');
  await page.getByLabel('Password', { exact: true }).fill('a long passphrase');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();

  // Turn on two-factor sign-in at the portal, as the README says (/mfa).
  await page.goto(http('login.employees.localhost', '/mfa'));
  await page.getByRole('heading', { name: 'Set up two-factor sign-in' }).waitFor();
  await looksRight(page, 'mfa-enroll', page.getByRole('button', { name: 'Turn on two-factor sign-in' }));
  const secret = await page.locator('#secret').innerText();
  await page.getByLabel('The 6-digit code it shows').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
  await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
  const codes = await page.locator('#recovery-codes li').allInnerTexts();
  assert.equal(codes.length, 10);
  await looksRight(page, 'recovery-codes', page.getByRole('button', { name: 'Continue' }));

  // The portal's home says who is signed in.
  await page.goto(http('login.employees.localhost', '/'));
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  assert.equal(await page.title(), 'Your account · Employees');
  await looksRight(page, 'portal-home', page.getByRole('button', { name: 'Sign out' }));

  // Signed out (from the wiki), the page links back to the wiki.
  await page.goto(http('wiki.employees.localhost', '/.poolgate/logout'));
  await looksRight(page, 'sign-out', page.getByRole('button', { name: 'Sign out' }));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
  const back = page.getByRole('link', { name: 'Back to Team wiki' });
  await looksRight(page, 'signed-out', back);
  await back.click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.match(page.url(), /login\.employees\.localhost/);

  // Signing in again asks for the second factor: a numeric keypad for the app's code, and
  // a switch to a text field for a recovery code (which has letters).
  await page.getByLabel('Username or email').fill('grace');
  await page.getByLabel('Password', { exact: true }).fill('a long passphrase');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Two-factor check' }).waitFor();
  assert.equal(await page.locator('#code').getAttribute('inputmode'), 'numeric');
  const useRecovery = page.getByRole('button', { name: 'Use a recovery code instead' });
  await looksRight(page, 'mfa', useRecovery);
  await useRecovery.click();
  await page.getByLabel('Recovery code').waitFor();
  assert.equal(await page.locator('#code').getAttribute('inputmode'), 'text');
  await looksRight(page, 'mfa-recovery', page.getByRole('button', { name: 'Use your authenticator app instead' }));
  await page.getByLabel('Recovery code').fill(codes[0]);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();

  // An app of the pool that is not open to her: 403 in the pool's look, with sign-out.
  const denied = await page.goto(http('vault.employees.localhost', '/'));
  assert.equal(denied.status(), 403);
  await page.getByRole('heading', { name: 'Access denied' }).waitFor();
  assert.match(await page.locator('.pool').innerText(), /Employees · Vault/);
  await looksRight(page, 'denied-403', page.getByRole('button', { name: 'Sign out of Employees' }));

  // An app whose server is down: 502 in the pool's look, with a way to try again.
  const down = await page.goto(http('down.employees.localhost', '/'));
  assert.equal(down.status(), 502);
  await page.getByRole('heading', { name: 'Bad gateway' }).waitFor();
  assert.match(await page.locator('.pool').innerText(), /Employees · Reports/);
  await looksRight(page, 'bad-gateway-502', page.getByRole('link', { name: 'Try again' }));

  // An app too slow to answer: 504, the same way.
  const slow = await page.goto(http('slow.employees.localhost', '/?delay_ms=3000'));
  assert.equal(slow.status(), 504);
  await page.getByRole('heading', { name: 'Gateway timeout' }).waitFor();
  await looksRight(page, 'gateway-timeout-504', page.getByRole('link', { name: 'Try again' }));

  // A host no pool serves: 421 in the gateway's own look (no pool to borrow one from).
  const nobody = await page.goto(http('nobody.localhost', '/'));
  assert.equal(nobody.status(), 421);
  await page.getByRole('heading', { name: 'Misdirected request' }).waitFor();
  await looksRight(page, 'misdirected-421', page.getByText('Check the address'), 'rgb(31, 111, 235)');
  await context.close();
});

test("a supplier signs in to the employees' ERP with the Suppliers button, then by typing their address", async () => {
  // The button: the ERP's login page offers it beside the password form.
  let context = await browser.newContext();
  let page = await context.newPage();
  await page.goto(http('erp.employees.localhost', '/orders'));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await looksRight(page, 'login-with-sources', page.getByRole('link', { name: 'Sign in with Suppliers' }));
  await page.getByRole('link', { name: 'Sign in with Suppliers' }).click();
  // The suppliers portal's own login page, in its own look.
  await page.waitForURL(/^http:\/\/login\.suppliers\.localhost:\d+\//);
  assert.match(await page.locator('main').innerText(), /Suppliers/);
  await page.getByLabel('Username or email').fill('bob');
  await page.getByLabel('Password').fill('the-builder');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();
  assert.equal(page.url(), http('erp.employees.localhost', '/orders'));
  const erp = await identityHeaders(page);
  assert.equal(erp['x-poolgate-username'], 'bob');
  assert.equal(erp['x-poolgate-pool'], 'employees');
  assert.equal(erp['x-poolgate-source'], 'suppliers');
  // The employees pool's own record of bob, linked to his suppliers account.
  const links = await (await api('GET', '/pools/employees/links')).json();
  const link = (links.items ?? links).find((l) => l.source === 'suppliers');
  assert.equal(link.user_id, erp['x-poolgate-user']);
  // The wiki takes employees' own sign-ins only: bob's session is not enough there.
  await page.goto(http('wiki.employees.localhost', '/'));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Sign in with Suppliers' }).count(), 0);
  await context.close();

  // Home-realm discovery: a fresh browser types bob's address; that is enough.
  context = await browser.newContext();
  page = await context.newPage();
  await page.goto(http('erp.employees.localhost', '/'));
  await page.getByLabel('Username or email').fill('bob@suppliers.example');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/^http:\/\/login\.suppliers\.localhost:\d+\//);
  await page.getByLabel('Username or email').fill('bob');
  await page.getByLabel('Password').fill('the-builder');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'What the app received' }).waitFor();
  assert.equal((await identityHeaders(page))['x-poolgate-user'], erp['x-poolgate-user']);
  await context.close();
});

/// The console's look: the viewport, nothing wider than the screen, the next step on
/// screen; a screenshot of each page at 1280 and 390 px under target/screenshots/.
async function consoleLooksRight(page, name, nextStep) {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 860 });
    const viewport = await page.locator('meta[name=viewport]').getAttribute('content');
    assert.match(viewport ?? '', /width=device-width/, `${name}: viewport`);
    await nextStep.waitFor();
    assert.ok(await nextStep.isVisible(), `${name}: the next step is on screen at ${width} px`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name}: ${overflow} px wider than a ${width} px screen`);
    await page.screenshot({ path: join(shots, `console-${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 860 });
}

/// Signs in to the console at the employees portal, setting up a second factor.
async function consoleSignIn(page, username, password) {
  await page.goto(admin('/console'));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Username or email').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Set up two-factor sign-in' }).waitFor();
  const secret = await page.locator('#secret').innerText();
  await page.getByLabel('The 6-digit code it shows').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
  await page.locator('#recovery-codes').waitFor();
  await page.getByRole('button', { name: 'Continue' }).click();
}

test('an operator runs the console: MFA sign-in, a pool, an app, users, an import, a session, keys, the audit log', async () => {
  const made = await api('POST', '/pools/employees/users', {
    username: 'olga', email: 'olga@employees.example', name: 'Olga', password: 'operator passphrase', groups: ['console_admins'],
  });
  assert.equal(made.status, 201);
  const context = await browser.newContext();
  const page = await context.newPage();
  await consoleSignIn(page, 'olga', 'operator passphrase');
  await page.getByRole('heading', { name: 'Pools' }).waitFor();
  assert.equal(page.url(), admin('/console'));
  assert.match(await page.locator('header').innerText(), /Signed in as olga/);
  await consoleLooksRight(page, 'pools', page.getByRole('button', { name: 'Create pool' }));

  // A pool, and an app in it.
  await page.getByLabel('Id', { exact: true }).fill('partners');
  await page.getByLabel('Name', { exact: true }).fill('Partners');
  await page.getByLabel('Portal host').fill('login.partners.localhost');
  await page.getByLabel('Plan').selectOption('basic');
  await page.getByRole('button', { name: 'Create pool' }).click();
  await page.getByRole('heading', { name: 'Partners' }).waitFor();
  assert.match(await page.locator('main').innerText(), /0 of 1,?000 users on the basic plan|0 of 1000 users on the basic plan/);
  await consoleLooksRight(page, 'users', page.getByRole('button', { name: 'Add user' }));
  await page.getByRole('link', { name: 'Apps' }).click();
  await page.getByLabel('Id', { exact: true }).fill('crm');
  await page.getByLabel('Hosts').fill('crm.partners.localhost');
  await page.getByLabel('Upstreams').fill('127.0.0.1:9');
  await page.getByRole('button', { name: 'Add app' }).click();
  await page.getByRole('cell', { name: 'crm.partners.localhost' }).waitFor();
  await consoleLooksRight(page, 'apps', page.getByRole('button', { name: 'Add app' }));
  assert.equal((await (await api('GET', '/pools/partners/apps/crm')).json()).hosts[0], 'crm.partners.localhost');
  // …then renamed on its own page.
  await page.getByRole('link', { name: 'crm', exact: true }).click();
  await page.getByRole('heading', { name: 'Change the app' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Partner CRM');
  await consoleLooksRight(page, 'app', page.getByRole('button', { name: 'Save' }));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('link', { name: 'Partner CRM' }).waitFor();
  assert.equal((await (await api('GET', '/pools/partners/apps/crm')).json()).name, 'Partner CRM');

  // A user, then a CSV with one bad row: the row's error is shown, and nothing is written.
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByLabel('Username', { exact: true }).fill('pat');
  await page.getByLabel('Email', { exact: true }).fill('pat@partners.example');
  await page.getByLabel('Password', { exact: true }).fill('a long passphrase');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByRole('cell', { name: 'pat@partners.example' }).waitFor();

  // pat's own page: details and groups edited.
  await page.getByRole('link', { name: 'pat', exact: true }).click();
  await page.getByRole('heading', { name: 'pat', exact: true }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Pat Partner');
  await page.getByLabel('Groups', { exact: true }).fill('buyers');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'pat', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'Pat Partner');
  await consoleLooksRight(page, 'user', page.getByRole('button', { name: 'Save' }));
  const pat = (await (await api('GET', '/pools/partners/users')).json()).items[0];
  assert.deepEqual([pat.name, pat.groups], ['Pat Partner', ['buyers']]);
  await page.getByRole('link', { name: 'partners: users' }).click();
  const csv = join(tmpdir(), `people-${process.pid}.csv`);
  writeFileSync(csv, 'username,email,name\nquinn,quinn@partners.example,Quinn\nbad name!,x@partners.example,Bad\n');
  await page.getByLabel('File', { exact: true }).setInputFiles(csv);
  await page.getByRole('button', { name: 'Import' }).click();
  const report = page.getByRole('alert');
  await report.waitFor();
  assert.match(await report.innerText(), /0 imported, 1 rows refused/);
  assert.match(await report.innerText(), /Line 3:/);
  await consoleLooksRight(page, 'import', report);
  const users = await (await api('GET', '/pools/partners/users')).json();
  assert.deepEqual(users.items.map((u) => u.username), ['pat'], 'nothing half-written');

  // A session revoked: alice's, in the employees pool.
  const alice = await browser.newContext();
  const wiki = await alice.newPage();
  await wiki.goto(http('wiki.employees.localhost', '/'));
  await wiki.getByLabel('Username or email').fill('alice');
  await wiki.getByLabel('Password').fill('wonderland');
  await wiki.getByRole('button', { name: 'Sign in' }).click();
  await wiki.getByRole('heading', { name: 'What the app received' }).waitFor();
  await page.goto(admin('/console/pools/employees?tab=sessions'));
  await consoleLooksRight(page, 'sessions', page.getByRole('button', { name: 'Revoke' }).first());
  const before = (await (await api('GET', '/pools/employees/sessions')).json()).items.length;
  await page.getByRole('button', { name: 'Revoke' }).first().click();
  await page.waitForLoadState();
  const after = (await (await api('GET', '/pools/employees/sessions')).json()).items.length;
  assert.equal(after, before - 1);

  // Keys rotated.
  const keysBefore = (await (await api('GET', '/pools/employees/keys')).json()).length;
  await page.goto(admin('/console/pools/employees?tab=keys'));
  await consoleLooksRight(page, 'keys', page.getByRole('button', { name: 'Rotate signing keys' }));
  await page.getByRole('button', { name: 'Rotate signing keys' }).click();
  await page.waitForLoadState();
  const keysAfter = (await (await api('GET', '/pools/employees/keys')).json()).length;
  assert.ok(keysAfter > keysBefore, `${keysBefore} keys, then ${keysAfter}`);

  // The groups pat's edit made, and the employees' identity sources and links.
  await page.goto(admin('/console/pools/partners?tab=groups'));
  await page.getByRole('cell', { name: 'buyers', exact: true }).waitFor();
  await consoleLooksRight(page, 'groups', page.getByRole('button', { name: 'Add group' }));
  await page.goto(admin('/console/pools/employees?tab=sources'));
  await consoleLooksRight(page, 'sources', page.getByRole('heading', { name: 'Linked accounts' }));

  // Each action is in the audit log, with olga as actor.
  await page.goto(admin('/console/pools/partners?tab=audit&actor=console:olga'));
  await consoleLooksRight(page, 'audit', page.getByRole('button', { name: 'Filter' }));
  const partners = await page.locator('table').innerText();
  for (const action of ['pool.create', 'app.create', 'app.update', 'user.create', 'user.update', 'user.import']) {
    assert.match(partners, new RegExp(action.replace('.', '\\.')), action);
  }
  await page.goto(admin('/console/pools/employees?tab=audit&actor=console:olga'));
  const employees = await page.locator('table').innerText();
  for (const action of ['session.revoke', 'key.rotate', 'console.signin']) {
    assert.match(employees, new RegExp(action.replace('.', '\\.')), action);
  }

  // A form posted without its token changes nothing.
  const forged = await page.request.post(admin('/console/pools/partners/users'), {
    form: { username: 'eve', email: 'eve@partners.example' },
  });
  assert.equal(forged.status(), 403);
  assert.equal((await (await api('GET', '/pools/partners/users')).json()).items.length, 1);
  await context.close();
  await alice.close();
});

test('someone of the pool outside the console group is refused', async () => {
  const made = await api('POST', '/pools/employees/users', {
    username: 'victor', email: 'victor@employees.example', name: 'Victor', password: 'not an operator', groups: ['staff'],
  });
  assert.equal(made.status, 201);
  const context = await browser.newContext();
  const page = await context.newPage();
  await consoleSignIn(page, 'victor', 'not an operator');
  await page.getByRole('heading', { name: 'You cannot use the console' }).waitFor();
  assert.match(await page.locator('main').innerText(), /not in the console_admins group/);
  await consoleLooksRight(page, 'refused', page.getByRole('heading', { name: 'You cannot use the console' }));
  await page.goto(admin('/console'));
  assert.doesNotMatch(await page.locator('body').innerText(), /Signed in as victor/);
  await context.close();
});
