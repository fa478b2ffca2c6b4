// The playground in a real browser: Debian's headless Chromium, driven by Playwright, with no
// network beyond loopback. Run by tests/browser/run.sh, which starts a seeded server and sets
// PLAYGROUND_URL (e.g. http://127.0.0.1:PORT/graphql).
//
// Environment:
//   PLAYGROUND_URL  the page (required)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   ARTIFACTS       folder for the screenshot and the request log (default ./artifacts)
//   SCREENSHOT      also write the screenshot here (run.sh --screenshot: docs/playground.png)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const pageUrl = process.env.PLAYGROUND_URL;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = path.resolve(here, process.env.ARTIFACTS || 'artifacts');
const origin = pageUrl ? new URL(pageUrl).origin : '';

// A demo fund (src/seed.rs) and what its two newest investments are.
const GROWTH_FUND_I = '019b8d62-7a80-77a0-81b2-c3d4e5f60000';
const NESTED_QUERY = `query FundWithInvestors { fund(id: "${GROWTH_FUND_I}") { name vintageYear investments(first: 2) { totalCount nodes { amountUsd investmentDate investor { name investorType } } } } }`;
const TEST_HEADER = 'x-playground-test';

/** A loopback port nothing listens on: the proxy every non-loopback request is sent to. */
async function deadPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let context;
let page;
const requests = []; // every request the browser made: { url, method, headers }
const problems = []; // page errors, console errors, CSP violations

before(async () => {
  assert.ok(pageUrl, 'PLAYGROUND_URL is not set (run tests/browser/run.sh)');
  try {
    fs.accessSync(executablePath, fs.constants.X_OK);
  } catch {
    assert.fail(
      `no Chromium at ${executablePath}: install Debian's package (apt-get install -y chromium) or set CHROMIUM`,
    );
  }
  fs.mkdirSync(artifacts, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'titanbay-chromium-'));
  const proxyPort = await deadPort();
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      viewport: { width: 1600, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // No network beyond loopback: every host name but 127.0.0.1 resolves to nothing, and
        // whatever would still go out is sent to a proxy that does not exist.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        `--proxy-server=http://127.0.0.1:${proxyPort}`,
        '--proxy-bypass-list=127.0.0.1',
      ],
    });
  } catch (error) {
    assert.fail(`Chromium (${executablePath}) could not be started: ${error.message}`);
  }
  context.on('request', (request) => {
    requests.push({ url: request.url(), method: request.method(), headers: request.headers() });
  });
  page = context.pages()[0] ?? (await context.newPage());
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`);
    });
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('worker', (worker) => {
    worker.on('console', (message) => {
      if (message.type() === 'error') problems.push(`worker console error: ${message.text()}`);
    });
  });
});

after(async () => {
  fs.writeFileSync(
    path.join(artifacts, 'requests.txt'),
    requests.map((r) => `${r.method} ${r.url}`).join('\n') + '\n',
  );
  await context?.close();
});

/** The text Monaco shows in an editor (its visible lines), spaces normalised. */
async function editorText(locator) {
  const text = await locator.locator('.view-lines').innerText();
  return text.replace(/\u00a0/g, ' ');
}

test('the playground loads from the server alone and shows the explorer', async () => {
  const response = await page.goto(pageUrl);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  // The explorer plugin is open and lists the schema's root fields (so introspection worked).
  const explorer = page.locator('.graphiql-explorer-root');
  await explorer.waitFor({ timeout: 30_000 });
  await page.getByText('funds', { exact: true }).first().waitFor({ timeout: 30_000 });
  // The editor starts with the starter query.
  const query = page.locator('.graphiql-query-editor');
  assert.match(await editorText(query), /query FundsWithTheirInvestors/);
});

test('the docs pane lists the Fund type and its fields', async () => {
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  const docs = page.locator('.graphiql-doc-explorer');
  await docs.getByText('All Schema Types').waitFor();
  const fund = docs.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Fund$/ });
  assert.equal(await fund.count(), 1, 'the docs list the type Fund');
  await fund.click();
  await docs.locator('.graphiql-doc-explorer-title', { hasText: /^Fund$/ }).waitFor();
  for (const field of ['vintageYear', 'totalCommittedUsd', 'investments']) {
    await docs.locator('.graphiql-doc-explorer-field-name', { hasText: new RegExp(`^${field}$`) }).waitFor();
  }
});

test('a typed nested query runs, with a header typed into the Headers tab', async () => {
  // The request headers are editable: type one and check that the request carries it.
  await page.getByRole('button', { name: 'Headers', exact: true }).click();
  const headers = page.locator('.graphiql-editor-tool .graphiql-editor').last();
  await headers.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.insertText(`{"${TEST_HEADER}": "typed in the Headers tab"}`);

  const query = page.locator('.graphiql-query-editor');
  await query.locator('.view-lines').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(NESTED_QUERY);
  assert.equal((await editorText(query)).replace(/\s+/g, ' ').trim(), NESTED_QUERY);

  const sent = page.waitForRequest(
    (r) => r.method() === 'POST' && r.url() === `${origin}/graphql` && (r.postData() ?? '').includes('FundWithInvestors'),
  );
  // GraphiQL parses the editor a moment after an edit (a 100 ms debounce), and only then knows
  // the new operation's name; a run before that would still send the previous document's name,
  // which the server rightly refuses as an unknown operation. The tab takes the operation's
  // name when GraphiQL has it.
  await page.locator('#graphiql-session-tab-0', { hasText: 'FundWithInvestors' }).waitFor({ timeout: 15_000 });
  await page.locator('.graphiql-execute-button').click();
  const request = await sent;
  assert.equal(request.headers()[TEST_HEADER], 'typed in the Headers tab');
  const answer = await (await request.response()).json();
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  assert.equal(answer.data.fund.name, 'Titanbay Growth Fund I');

  // The result pane shows the answer.
  const result = page.locator('.graphiql-response');
  for (const expected of ['"Titanbay Growth Fund I"', '"10000000.50"', '"CalPERS"', '"Goldman Sachs Asset Management"']) {
    await result.getByText(expected, { exact: false }).first().waitFor({ timeout: 15_000 });
  }
  // Prettify (prettier, bundled) lays the query and the headers out over several lines.
  await page.getByRole('button', { name: /^Prettify/ }).click();
  await query.getByText('query FundWithInvestors {').waitFor();
  assert.match(await editorText(query), /^\s*investor \{$/m);
  for (const editor of [query, headers]) {
    await editor.locator('.view-lines').click();
    await page.keyboard.press('ControlOrMeta+Home');
  }

  const shot = path.join(artifacts, 'playground.png');
  await page.screenshot({ path: shot });
  if (process.env.SCREENSHOT) fs.copyFileSync(shot, path.resolve(process.env.SCREENSHOT));
});

test('no request left the server origin, and nothing was refused or failed', () => {
  assert.ok(requests.length > 5, `${requests.length} requests`);
  const elsewhere = requests.filter((r) => new URL(r.url).origin !== origin);
  assert.deepEqual(elsewhere.map((r) => r.url), [], `requests outside ${origin}`);
  const assets = requests.filter((r) => r.url.startsWith(`${origin}/graphql/playground/`));
  assert.ok(assets.some((r) => r.url.includes('.worker-')), 'Monaco workers were loaded from the server');
  assert.deepEqual(problems, []);
});

test('the browser itself cannot reach beyond loopback', async () => {
  // Run last: this one request is meant to leave the origin, and must fail in the browser
  // (it goes to the dead proxy; .invalid names never resolve anyway).
  const probe = await context.newPage();
  await assert.rejects(
    probe.goto('http://isolation-check.invalid/', { timeout: 15_000 }),
    /ERR_PROXY_CONNECTION_FAILED|ERR_NAME_NOT_RESOLVED|ERR_TUNNEL_CONNECTION_FAILED/,
  );
  await probe.close();
});
