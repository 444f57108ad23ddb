// nsqjs (the NSQ Node.js client) against sluiced, unchanged.
//
// Goal: prove an existing NSQ client library works with sluiced in place of nsqd. Method: publish
// through nsqjs's Writer (publish one -> PUB, publish many -> MPUB, deferPublish -> DPUB) and the
// HTTP API (/pub, /mpub), consume with nsqjs Readers on two channels (three Readers sharing one
// channel, one alone on the other), and check every message is finished exactly once per channel
// and a requeued message comes back with attempts 2. Every wait is bounded.
'use strict'

const assert = require('node:assert')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const nsq = require('nsqjs')

const REPO = path.resolve(__dirname, '..', '..', '..')
const STARTUP_TIMEOUT_MS = 10000
const DEADLINE_MS = 30000
const READERS_SHARING = 3
const SHARED_MAX_IN_FLIGHT = 5
// The shared channel holds messages (no FIN) until this many arrived: one Reader holds at most
// SHARED_MAX_IN_FLIGHT, so reaching it proves all three Readers received messages.
const HOLD_UNTIL = SHARED_MAX_IN_FLIGHT * (READERS_SHARING - 1) + 1
const REQUEUE_BODY = 'requeue-me'

let broker

function startBroker() {
  const command = process.env.SLUICED
  const argv = command ? command.split(/\s+/) : [path.join(REPO, 'target', 'debug', 'sluiced')]
  if (!command && !fs.existsSync(argv[0])) {
    throw new Error('sluiced is not built: run `cargo build --bins` (scripts/test.sh does)')
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-nsqjs-'))
  const child = spawn(
    argv[0],
    argv.slice(1).concat([
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      `--data-path=${dataDir}`,
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  )
  const log = []
  const addresses = {}
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`sluiced did not log both listening lines:\n${log.join('\n')}`))
    }, STARTUP_TIMEOUT_MS)
    const onLine = (line) => {
      log.push(line)
      if (log.length > 60) log.shift()
      const match = /(?<![A-Za-z0-9])(TCP|HTTP): listening on (\S+)/.exec(line)
      if (match) addresses[match[1]] = match[2]
      if (addresses.TCP && addresses.HTTP) {
        clearTimeout(timer)
        resolve({ child, dataDir, log, tcp: addresses.TCP, http: addresses.HTTP })
      }
    }
    for (const stream of [child.stdout, child.stderr]) {
      let pending = ''
      stream.on('data', (chunk) => {
        pending += chunk.toString().replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
        const lines = pending.split('\n')
        pending = lines.pop()
        lines.forEach(onLine)
      })
    }
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`sluiced exited during start-up (${code}):\n${log.join('\n')}`))
    })
  })
}

function stopBroker(b) {
  if (b.child.exitCode === null) b.child.kill('SIGTERM')
  fs.rmSync(b.dataDir, { recursive: true, force: true })
}

async function eventually(predicate, what, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${broker.log.join('\n')}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

function splitAddr(addr) {
  const at = addr.lastIndexOf(':')
  return [addr.slice(0, at), Number(addr.slice(at + 1))]
}

async function connectedWriter() {
  const [host, port] = splitAddr(broker.tcp)
  const writer = new nsq.Writer(host, port)
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

function call(fn) {
  return new Promise((resolve) => fn((err) => resolve(err || null)))
}

class ChannelLog {
  constructor(name, holdUntil = 0) {
    this.name = name
    this.holdUntil = holdUntil
    this.held = []
    this.received = 0
    this.finished = new Map()
    this.byReader = new Map()
    this.requeueAttempts = []
  }

  handle(readerIndex, message) {
    this.received += 1
    this.byReader.set(readerIndex, (this.byReader.get(readerIndex) || 0) + 1)
    const body = message.body.toString()
    if (body === REQUEUE_BODY) {
      this.requeueAttempts.push(message.attempts)
      if (message.attempts === 1) {
        message.requeue(0, false)
        return
      }
    }
    if (this.received < this.holdUntil) {
      this.held.push(message)
      return
    }
    for (const m of this.held.concat([message])) {
      const b = m.body.toString()
      this.finished.set(b, (this.finished.get(b) || 0) + 1)
      m.finish()
    }
    this.held = []
  }

  total() {
    let n = 0
    for (const count of this.finished.values()) n += count
    return n
  }
}

function reader(topic, log, index, maxInFlight) {
  const r = new nsq.Reader(topic, log.name, {
    nsqdTCPAddresses: [broker.tcp],
    maxInFlight,
    lookupdPollInterval: 60,
  })
  r.connected = false
  r.on('nsqd_connected', () => {
    r.connected = true
  })
  r.on('message', (message) => log.handle(index, message))
  r.on('error', () => {})
  r.connect()
  return r
}

async function httpPost(pathAndQuery, body) {
  const reply = await fetch(`http://${broker.http}${pathAndQuery}`, {
    method: 'POST',
    body,
    signal: AbortSignal.timeout(10000),
  })
  return [reply.status, await reply.text()]
}

async function publishEverything(writer, topic) {
  const bodies = []
  for (let i = 0; i < 10; i++) {
    const body = `js-pub-${i}`
    assert.strictEqual(await call((cb) => writer.publish(topic, body, cb)), null)
    bodies.push(body)
  }
  const batch = Array.from({ length: 20 }, (_, i) => `js-mpub-${i}`)
  assert.strictEqual(await call((cb) => writer.publish(topic, batch, cb)), null)
  bodies.push(...batch)
  for (let i = 0; i < 5; i++) {
    const body = `js-dpub-${i}`
    assert.strictEqual(await call((cb) => writer.deferPublish(topic, [body], 300, cb)), null)
    bodies.push(body)
  }
  assert.strictEqual(await call((cb) => writer.publish(topic, REQUEUE_BODY, cb)), null)
  bodies.push(REQUEUE_BODY)
  for (let i = 0; i < 5; i++) {
    const body = `js-http-pub-${i}`
    const defer = i === 0 ? '&defer=200' : ''
    assert.deepStrictEqual(await httpPost(`/pub?topic=${topic}${defer}`, body), [200, 'OK'])
    bodies.push(body)
  }
  const lines = Array.from({ length: 5 }, (_, i) => `js-http-mpub-${i}`)
  assert.deepStrictEqual(await httpPost(`/mpub?topic=${topic}`, lines.join('\n')), [200, 'OK'])
  bodies.push(...lines)
  return bodies
}

before(async () => {
  broker = await startBroker()
})

after(() => {
  if (broker) stopBroker(broker)
})

test('Writer and HTTP publishes reach every channel exactly once', async () => {
  const topic = 'nsqjs_roundtrip'
  const shared = new ChannelLog('shared', HOLD_UNTIL)
  const alone = new ChannelLog('alone')
  const readers = []
  for (let i = 0; i < READERS_SHARING; i++) {
    readers.push(reader(topic, shared, i, SHARED_MAX_IN_FLIGHT))
  }
  readers.push(reader(topic, alone, 0, 50))
  let writer
  try {
    await eventually(() => readers.every((r) => r.connected), 'every Reader to connect', 10000)
    writer = await connectedWriter()
    const bodies = await publishEverything(writer, topic)
    assert.strictEqual(new Set(bodies).size, 46)
    for (const log of [shared, alone]) {
      await eventually(() => log.total() >= bodies.length, `channel ${log.name} to finish all`)
    }
    // Anything delivered twice would arrive shortly after; give it a moment to show up.
    await new Promise((r) => setTimeout(r, 500))
    for (const log of [shared, alone]) {
      const wrong = bodies.filter((b) => log.finished.get(b) !== 1)
      const extra = [...log.finished.keys()].filter((b) => !bodies.includes(b))
      assert.deepStrictEqual([log.name, wrong, extra], [log.name, [], []])
      assert.deepStrictEqual(log.requeueAttempts, [1, 2], log.name)
    }
    assert.strictEqual(shared.byReader.size, READERS_SHARING, JSON.stringify([...shared.byReader]))
  } finally {
    readers.forEach((r) => r.close())
    if (writer) writer.close()
  }
})

test('Writer reports an error for a bad topic', async () => {
  const writer = await connectedWriter()
  try {
    const err = await call((cb) => writer.publish('bad$topic', 'x', cb))
    assert.ok(err instanceof Error, `expected an error, got ${err}`)
    assert.match(String(err), /E_BAD_TOPIC/)
  } finally {
    writer.close()
  }
})
