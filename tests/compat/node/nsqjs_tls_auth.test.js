// nsqjs's negotiated features against sluiced: TLS, deflate, snappy and AUTH, unchanged.
//
// Goal: nsqjs's Writer and Reader, configured as their users do (tls with CA verification and a
// client certificate, deflate, snappy, authSecret), publish and consume through sluiced exactly as
// through nsqd. Method: certificates are made here with the openssl command line; each test starts
// its own sluiced with the flags it needs; an auth server (node:http) grants one topic and records
// its queries. Every wait is bounded.
'use strict'

const assert = require('node:assert')
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const nsq = require('nsqjs')

const REPO = path.resolve(__dirname, '..', '..', '..')
const STARTUP_TIMEOUT_MS = 10000
const DEADLINE_MS = 30000

let pki
const brokers = []

function makePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-nsqjs-pki-'))
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
    '/CN=sluice nsqjs CA', '-keyout', 'ca.key', '-out', 'ca.pem')
  // nsqjs upgrades without a server name, so Node checks the certificate against "localhost".
  for (const [name, cn, san] of [['server', 'sluiced', 'IP:127.0.0.1,DNS:localhost'],
    ['client', 'nsqjs-client', 'DNS:client.local']]) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`,
      '-keyout', `${name}.key`, '-out', `${name}.csr`)
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`)
  }
  const file = (name) => path.join(dir, name)
  return {
    dir,
    file,
    serverFlags: [`--tls-cert=${file('server.pem')}`, `--tls-key=${file('server.key')}`],
    tls: (withCert) => ({
      tls: true,
      tlsVerification: true,
      ca: fs.readFileSync(file('ca.pem')),
      ...(withCert
        ? { cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) }
        : {}),
    }),
  }
}

function startBroker(flags) {
  const command = process.env.SLUICED
  const argv = command ? command.split(/\s+/) : [path.join(REPO, 'target', 'debug', 'sluiced')]
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-nsqjs-tls-'))
  const child = spawn(
    argv[0],
    argv.slice(1).concat([
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      '--https-address=127.0.0.1:0',
      `--data-path=${dataDir}`,
    ], flags),
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const broker = { child, dataDir, log: [] }
  brokers.push(broker)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`sluiced did not start:\n${broker.log.join('\n')}`))
    }, STARTUP_TIMEOUT_MS)
    for (const stream of [child.stdout, child.stderr]) {
      let pending = ''
      stream.on('data', (chunk) => {
        pending += chunk.toString()
        const lines = pending.split('\n')
        pending = lines.pop()
        for (const line of lines) {
          broker.log.push(line)
          const match = /(?<![A-Za-z0-9])TCP: listening on (\S+)/.exec(line)
          if (match) {
            clearTimeout(timer)
            broker.tcp = match[1]
            resolve(broker)
          }
        }
      })
    }
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`sluiced exited during start-up (${code}):\n${broker.log.join('\n')}`))
    })
  })
}

async function eventually(predicate, what, broker) {
  const deadline = Date.now() + DEADLINE_MS
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}\n${broker.log.slice(-30).join('\n')}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

function splitAddr(addr) {
  const at = addr.lastIndexOf(':')
  return [addr.slice(0, at), Number(addr.slice(at + 1))]
}

async function connectedWriter(broker, options) {
  const [host, port] = splitAddr(broker.tcp)
  const writer = new nsq.Writer(host, port, options)
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the Writer did not connect in 10 s')), 10000)
    writer.on('ready', () => {
      clearTimeout(timer)
      resolve()
    })
    writer.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
  writer.connect()
  await ready
  return writer
}

function publish(writer, topic, body) {
  return new Promise((resolve) => writer.publish(topic, body, (err) => resolve(err || null)))
}

// Publishes single messages (one large) and an MPUB through a Writer, and receives them all
// through a Reader, both with `options`.
async function roundTrip(broker, topic, options) {
  const received = new Map()
  const reader = new nsq.Reader(topic, 'ch', {
    nsqdTCPAddresses: [broker.tcp],
    maxInFlight: 100,
    lookupdPollInterval: 60,
    ...options,
  })
  let connected = false
  reader.on('nsqd_connected', () => {
    connected = true
  })
  reader.on('message', (message) => {
    const body = message.body.toString()
    received.set(body, (received.get(body) || 0) + 1)
    message.finish()
  })
  reader.on('error', () => {})
  reader.connect()
  const writer = await connectedWriter(broker, options)
  try {
    await eventually(() => connected, 'the Reader to connect', broker)
    const bodies = Array.from({ length: 20 }, (_, i) => `js-${topic}-${i}`)
    const large = 'L'.repeat(512 * 1024)
    for (const body of bodies.slice(0, 10).concat([large])) {
      assert.strictEqual(await publish(writer, topic, body), null)
    }
    assert.strictEqual(await publish(writer, topic, bodies.slice(10)), null)
    bodies.push(large)
    let total = () => [...received.values()].reduce((a, b) => a + b, 0)
    await eventually(() => total() >= bodies.length, `${bodies.length} messages`, broker)
    for (const body of bodies) assert.strictEqual(received.get(body), 1, body.slice(0, 40))
  } finally {
    reader.close()
    writer.close()
  }
}

before(() => {
  pki = makePki()
})

after(() => {
  for (const broker of brokers) {
    if (broker.child.exitCode === null) broker.child.kill('SIGTERM')
    fs.rmSync(broker.dataDir, { recursive: true, force: true })
  }
  fs.rmSync(pki.dir, { recursive: true, force: true })
})

test('TLS with a verified server certificate', async () => {
  const broker = await startBroker(pki.serverFlags)
  await roundTrip(broker, 'js_tls', pki.tls(false))
})

test('TLS with a required, verified client certificate', async () => {
  const broker = await startBroker(pki.serverFlags.concat([
    '--tls-client-auth-policy=require-verify', `--tls-root-ca-file=${pki.file('ca.pem')}`]))
  await roundTrip(broker, 'js_mtls', pki.tls(true))
})

test('deflate and snappy, alone and over TLS', async () => {
  const broker = await startBroker(pki.serverFlags)
  await roundTrip(broker, 'js_deflate', { deflate: true, deflateLevel: 6 })
  await roundTrip(broker, 'js_snappy', { snappy: true })
  await roundTrip(broker, 'js_tls_deflate', { deflate: true, ...pki.tls(false) })
  await roundTrip(broker, 'js_tls_snappy', { snappy: true, ...pki.tls(false) })
})

test('authSecret is checked by the auth server, upstream style', async () => {
  const queries = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://auth')
    queries.push({ path: url.pathname, params: Object.fromEntries(url.searchParams) })
    const granted = url.searchParams.get('secret') === 'js-secret'
    const body = granted
      ? { ttl: 3600, identity: 'js-user', identity_url: '', authorizations: [
        { topic: '^js_auth$', channels: ['.*'], permissions: ['publish', 'subscribe'] }] }
      : { message: 'FORBIDDEN' }
    res.writeHead(granted ? 200 : 403, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(body))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const address = `127.0.0.1:${server.address().port}`
    const broker = await startBroker([`--auth-http-address=${address}`])
    await roundTrip(broker, 'js_auth', { authSecret: 'js-secret' })
    assert.strictEqual(queries[0].path, '/auth')
    assert.strictEqual(queries[0].params.secret, 'js-secret')
    assert.strictEqual(queries[0].params.tls, 'false')
    assert.strictEqual(queries[0].params.remote_ip, '127.0.0.1')

    const writer = await connectedWriter(broker, { authSecret: 'js-secret' })
    const err = await publish(writer, 'js_other', 'denied')
    writer.close()
    assert.match(String(err), /E_UNAUTHORIZED/)
  } finally {
    server.close()
  }
})
