'use strict'

// The redis-server of a run, and what it says about itself: the commands it
// ran (INFO commandstats), its memory.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const { freePort } = require('./net')

// The redis-server of the run, for the servers that keep logins or sessions
// in Redis: Debian's, on a free loopback port, in a directory of its own,
// nothing saved to disk. Like `children`, it belongs to the run and is
// stopped however the run ends.
const redis = { port: null, child: null, dir: null, admin: null }

function needsRedis (app) {
  return /-redis(-|$)/.test(app)
}

async function startRedis () {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastify-login-bench-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'ignore', 'inherit'] })
  child.once('error', (error) => console.error(`redis-server could not start (${error.message}): install it with \`apt-get install redis-server\``))
  Object.assign(redis, { port, child, dir })
  const deadline = Date.now() + 10000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) throw new Error('redis-server exited before it answered')
    try {
      if ((await ping(port)).startsWith('+PONG')) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10 s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function stopRedis () {
  redis.admin?.disconnect()
  if (redis.child !== null && redis.child.exitCode === null) redis.child.kill()
  if (redis.dir !== null) fs.rmSync(redis.dir, { recursive: true, force: true })
  Object.assign(redis, { port: null, child: null, dir: null, admin: null })
}

// The harness's own connection, for INFO: its commands are not the servers'.
function admin () {
  redis.admin ??= new Redis({ host: '127.0.0.1', port: redis.port })
  return redis.admin
}

// The commands Redis ran so far, and its CPU time (µs), in one INFO.
async function redisNow () {
  const text = await admin().info('all')
  const calls = {}
  for (const [, name, count] of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[name] = Number(count)
  const seconds = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(text)[1])
  return { calls, cpu: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6 }
}

// The commands run between two readings of redisNow(). PINGs apart: they
// are the heartbeats of every redisStore subscriber of the run, 20 a second
// each at most, whatever the requests; INFO is the harness's own reading.
function commandsBetween (before, after) {
  const byName = {}
  let commands = 0
  for (const [name, count] of Object.entries(after)) {
    const ran = count - (before[name] ?? 0)
    if (ran === 0 || name === 'ping' || name === 'info') continue
    byName[name] = ran
    commands += ran
  }
  return { commands, pings: (after.ping ?? 0) - (before.ping ?? 0), byName }
}

// INFO <section> as an object of its fields.
async function info (section) {
  const fields = {}
  for (const [, name, value] of (await admin().info(section)).matchAll(/^([a-z_0-9]+):(.*?)\r?$/gm)) fields[name] = value
  return fields
}

// PING in Redis' inline form: enough to wait for the server without a client.
function ping (port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(1000, () => socket.destroy(new Error('timed out')))
    socket.once('error', reject)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (chunk) => {
      socket.end()
      resolve(chunk.toString())
    })
  })
}

module.exports = { redis, admin, needsRedis, startRedis, stopRedis, redisNow, commandsBetween, info }
