'use strict'

// The redis-server of a run.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { freePort } = require('./net')

// The redis-server of the run, for the servers that keep logins or sessions
// in Redis: Debian's, on a free loopback port, in a directory of its own,
// nothing saved to disk. Like `children`, it belongs to the run and is
// stopped however the run ends.
const redis = { port: null, child: null, dir: null }

function needsRedis (app) {
  return app.endsWith('-redis')
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
  if (redis.child !== null && redis.child.exitCode === null) redis.child.kill()
  if (redis.dir !== null) fs.rmSync(redis.dir, { recursive: true, force: true })
  Object.assign(redis, { port: null, child: null, dir: null })
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

module.exports = { redis, needsRedis, startRedis, stopRedis }
