// sluice-admin in a real browser: headless Chromium from Debian's packages, driven by playwright-core.
//
// Goal: prove the admin's pages work for a person with a browser, end to end: the topics page links
// to a topic, the topic page links to a channel, and the channel page's Pause button (after its
// JavaScript confirmation) really pauses the channel on the broker. Method: start sluice-lookupd, a
// sluiced registered with it and sluice-admin reading the lookupd (all on port 0, by pid, killed at
// the end); publish one message and create a channel through the broker's HTTP API; click through
// the pages; then poll the broker's own /stats?format=json until the channel reports
// "paused": true. A screenshot of each page is saved under target/browser-artifacts/. Every wait
// is bounded.
//
// Environment: SLUICE_BIN_DIR (default target/debug), CHROMIUM (default /usr/bin/chromium),
// SLUICE_BROWSER_ARTIFACTS (default target/browser-artifacts).
'use strict'

const assert = require('node:assert')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { chromium } = require('playwright-core')

const REPO = path.resolve(__dirname, '..', '..')
const BIN_DIR = process.env.SLUICE_BIN_DIR || path.join(REPO, 'target', 'debug')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const ARTIFACTS = process.env.SLUICE_BROWSER_ARTIFACTS || path.join(REPO, 'target', 'browser-artifacts')
const STARTUP_TIMEOUT_MS = 10000
const STEP_TIMEOUT_MS = 10000
const PAUSED_DEADLINE_MS = 10000
const TOPIC = 'browser_topic'
const CHANNEL = 'browser_channel'

const children = []
const scratch = []
let browser // a persistent BrowserContext
let userDataDir

// Starts one of our binaries and resolves with the addresses it logs (`TCP: listening on A`,
// `HTTP: listening on A`) once every name in `wanted` was seen.
function startServer(binary, args, wanted) {
  const file = path.join(BIN_DIR, binary)
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is not built: run \`cargo build --bins\` (scripts/test.sh does)`)
  }
  const child = spawn(file, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  })
  children.push(child)
  const log = []
  const addresses = {}
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${binary} did not log its listening lines:\n${log.join('\n')}`))
    }, STARTUP_TIMEOUT_MS)
    const onLine = (line) => {
      log.push(line)
      if (log.length > 60) log.shift()
      const match = /(?<![A-Za-z0-9])(TCP|HTTP): listening on (\S+)/.exec(line)
      if (match) addresses[match[1]] = match[2]
      if (wanted.every((name) => addresses[name])) {
        clearTimeout(timer)
        resolve(addresses)
      }
    }
    for (const stream of [child.stdout, child.stderr]) {
      let pending = ''
      stream.on('data', (chunk) => {
        pending += chunk.toString()
        const lines = pending.split('\n')
        pending = lines.pop()
        lines.forEach(onLine)
      })
    }
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${binary} exited early (${code ?? signal}):\n${log.join('\n')}`))
    })
  })
}

async function http(method, url, body) {
  const response = await fetch(url, { method, body, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
  const text = await response.text()
  assert.ok(response.ok, `${method} ${url} -> ${response.status}: ${text}`)
  return text
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true })
}

// The channel as the broker itself reports it in /stats?format=json, or undefined.
async function brokerChannel(nsqdHttp) {
  const stats = JSON.parse(await http('GET', `http://${nsqdHttp}/stats?format=json`))
  const topic = (stats.topics || []).find((t) => t.topic_name === TOPIC)
  return topic && (topic.channels || []).find((c) => c.channel_name === CHANNEL)
}

let adminUrl
let nsqdHttp

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  const lookupd = await startServer(
    'sluice-lookupd',
    ['--tcp-address=127.0.0.1:0', '--http-address=127.0.0.1:0'],
    ['TCP', 'HTTP'],
  )
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-data-'))
  scratch.push(dataDir)
  const nsqd = await startServer(
    'sluiced',
    [
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      `--data-path=${dataDir}`,
      `--lookupd-tcp-address=${lookupd.TCP}`,
    ],
    ['TCP', 'HTTP'],
  )
  nsqdHttp = nsqd.HTTP
  const admin = await startServer(
    'sluice-admin',
    ['--http-address=127.0.0.1:0', `--lookupd-http-address=${lookupd.HTTP}`],
    ['HTTP'],
  )
  adminUrl = `http://${admin.HTTP}`

  await http('POST', `http://${nsqdHttp}/pub?topic=${TOPIC}`, 'hello from the browser test')
  await http('POST', `http://${nsqdHttp}/channel/create?topic=${TOPIC}&channel=${CHANNEL}`)
  // The broker registers the topic with lookupd asynchronously; the topics page reads lookupd.
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  for (;;) {
    const topics = JSON.parse(await http('GET', `http://${lookupd.HTTP}/topics`))
    if ((topics.topics || []).includes(TOPIC)) break
    assert.ok(Date.now() < deadline, `lookupd never listed ${TOPIC}: ${JSON.stringify(topics)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-profile-'))
  scratch.push(userDataDir)
  // A persistent context on a fresh profile directory (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    timeout: STARTUP_TIMEOUT_MS,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
})

after(async () => {
  if (browser) await browser.close().catch(() => {})
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true })
})

test('topics page -> topic -> channel -> Pause (confirmed) pauses the channel on the broker', async () => {
  const before = await brokerChannel(nsqdHttp)
  assert.ok(before, `the broker does not report ${TOPIC}/${CHANNEL}`)
  assert.strictEqual(before.paused, false, 'the channel is paused before the test paused it')

  const page = await browser.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT_MS)
  const pageErrors = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  const dialogs = []
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`)
    dialog.accept()
  })

  await page.goto(`${adminUrl}/topics`)
  await page.locator('main').getByRole('link', { name: TOPIC, exact: true }).waitFor()
  await screenshot(page, '1-topics')

  await page.locator('main').getByRole('link', { name: TOPIC, exact: true }).click()
  await page.waitForURL(`${adminUrl}/topics/${TOPIC}`)
  await page.locator('h1').filter({ hasText: TOPIC }).waitFor()
  await screenshot(page, '2-topic')

  await page.locator('main').getByRole('link', { name: CHANNEL, exact: true }).click()
  await page.waitForURL(`${adminUrl}/topics/${TOPIC}/${CHANNEL}`)
  const pause = page.locator('button[data-url]', { hasText: /^Pause$/ })
  await pause.waitFor()
  await screenshot(page, '3-channel')

  await pause.click()
  // After the action the page refreshes its <main>; the button then offers to unpause.
  await page.locator('button[data-url]', { hasText: /^Unpause$/ }).waitFor()
  await screenshot(page, '4-channel-paused')
  assert.deepStrictEqual(dialogs, [`confirm: Pause channel ${TOPIC}/${CHANNEL}?`])

  const deadline = Date.now() + PAUSED_DEADLINE_MS
  let channel = await brokerChannel(nsqdHttp)
  while (!(channel && channel.paused === true) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    channel = await brokerChannel(nsqdHttp)
  }
  assert.strictEqual(channel && channel.paused, true, `the broker's /stats: ${JSON.stringify(channel)}`)
  assert.deepStrictEqual(pageErrors, [], 'the pages raised JavaScript errors')
  await page.close()
})
