'use strict'

// The server processes of a run: bench/server.js, forked.

const { fork } = require('node:child_process')
const path = require('node:path')
const { redis } = require('./redis')

const SERVER = path.join(__dirname, '..', 'server.js')

// Every server process forked, so that a failed run can end them all
// rather than hang on their open IPC channels.
const children = new Set()

// Forks bench/server.js and resolves once it listens. `plugin` loads
// fastify-login from another checkout (compare a change side by side).
function startServer (app, { execArgv = [], plugin } = {}) {
  return new Promise((resolve, reject) => {
    const args = plugin === undefined ? [app] : [app, plugin]
    const env = redis.port === null ? process.env : { ...process.env, BENCH_REDIS_PORT: String(redis.port) }
    const child = fork(SERVER, args, { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.add(child)
    const pending = new Map()
    let nextId = 0
    const onExit = (code) => reject(new Error(`server ${app} exited with code ${code} before listening`))
    child.once('exit', onExit)
    // A server that dies answers nothing more: fail what waits on it.
    child.once('exit', (code, signal) => {
      children.delete(child)
      for (const [, waiting] of pending) waiting.reject(new Error(`server ${app} exited (${signal ?? code}) during the run`))
      pending.clear()
    })
    child.on('message', (message) => {
      if (message.type === 'listening') {
        child.off('exit', onExit)
        resolve(server(message.port, message.readyMs))
      } else if (pending.has(message.id)) {
        pending.get(message.id).resolve(message)
        pending.delete(message.id)
      }
    })

    function ask (message) {
      return new Promise((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        child.send({ ...message, id })
      })
    }

    function server (port, readyMs) {
      return {
        app,
        plugin,
        port,
        // How long the app's `ready` took, in ms.
        readyMs,
        // CPU time and memory of the server process, after a GC if asked
        // (and the server runs with --expose-gc).
        stats: (gc = false) => ask({ type: 'stats', gc }),
        // Distinct valid login cookies, minted with loginManager.cookiesFor,
        // asked for 10,000 at a time to keep each IPC message small.
        // `anyUser`: of each of the server's 1,000 users in turn, not all of user 1.
        async mint (count, anyUser = false) {
          const cookies = []
          while (cookies.length < count) cookies.push(...(await ask({ type: 'mint', count: Math.min(10000, count - cookies.length), anyUser })).cookies)
          return cookies
        },
        // bench/scale.js: logins (or sessions) put into the store, no cookies back.
        fill: (what) => ask({ type: 'fill', ...what }),
        close () {
          return new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.once('exit', resolve)
            child.send({ type: 'close' })
          })
        }
      }
    }
  })
}

module.exports = { children, startServer }
