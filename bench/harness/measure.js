'use strict'

// One measurement: autocannon against one server, its CPU time, and the
// rest of the machine's.

const fs = require('node:fs')
const os = require('node:os')
const autocannon = require('autocannon')
const { ANY_USER } = require('./scenarios')
const { window, nextCookie } = require('./feeds')
const { redis, needsRedis, redisNow, commandsBetween } = require('./redis')

// One autocannon run; throws unless every response was the expected one.
async function load (scenario, server, { headers, cookies }, options) {
  const called = process.hrtime.bigint()
  let built = called
  const clients = []
  if (cookies?.shares !== undefined && cookies.shares.length !== options.connections) {
    throw new Error(`${scenario.name}: cookies dealt to ${cookies.shares.length} connections, measured with ${options.connections}`)
  }
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}${scenario.path}`,
    method: scenario.method,
    headers,
    connections: options.connections,
    ...(options.amount === undefined ? { duration: options.duration } : { amount: options.amount }),
    ...(cookies === undefined
      ? { expectBody: scenario.body }
      : {
          // A cookie of its own for each request.
          verifyBody: scenario.anyUser === true ? (body) => ANY_USER.test(body) : (body) => body === scenario.body,
          ...(cookies.shares !== undefined
            ? {
                // Each connection goes on through its own share of the
                // cookies from where it stopped the run before, its requests
                // built before the run, as a warm scenario's one request is.
                // Built on each request instead (setupRequest), they cost the
                // load generator enough that the server, waiting on it, spent
                // more CPU per request: bare-cold against bare shows that.
                setupClient: (client) => {
                  const k = clients.push(client) - 1
                  client.setRequests(window(cookies.shares[k], cookies.cursors[k], options.window))
                  built = process.hrtime.bigint()
                }
              }
            : { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, cookie: nextCookie(cookies) } }) }] })
        })
  })
  const codes = Object.keys(result.statusCodeStats)
  if (result.errors > 0 || result.timeouts > 0 || result.mismatches > 0 || codes.length !== 1 || Number(codes[0]) !== scenario.status) {
    throw new Error(`${scenario.name}: wrong answers under load: ${result.errors} errors, ${result.timeouts} timeouts, ` +
      `${result.mismatches} unexpected bodies, status codes ${JSON.stringify(result.statusCodeStats)} (expected only ${scenario.status})`)
  }
  clients.forEach((client, k) => { cookies.cursors[k] = (cookies.cursors[k] + client.reqsMade) % cookies.shares[k].length })
  // autocannon's clock starts before its clients build their requests.
  result.building = Number(built - called) / 1e9
  return result
}

// One measured run: requests/second, latency, the server's CPU time per
// request, and for a server that uses Redis, what Redis did for it: its
// commands (from Redis itself) and its CPU time. `foreign`: the share of the
// machine that anything else used meanwhile.
async function measure (scenario, server, feed, options) {
  const redisBefore = redis.port === null ? null : await redisNow()
  const machineBefore = machineTime()
  const ownBefore = process.cpuUsage()
  const before = await server.stats()
  const started = process.hrtime.bigint()
  const result = await load(scenario, server, feed, options)
  const after = await server.stats()
  const elapsed = Number(process.hrtime.bigint() - started) / 1000
  const own = process.cpuUsage(ownBefore)
  const machineAfter = machineTime()
  const redisAfter = redis.port === null ? null : await redisNow()
  const cpu = (after.cpu.user - before.cpu.user) + (after.cpu.system - before.cpu.system)
  // Redis works for the measured server (and answers the other store
  // servers' heartbeats): its time is not the rest of the machine's.
  const redisCpu = redisBefore === null ? 0 : redisAfter.cpu - redisBefore.cpu
  let foreign = null
  if (machineBefore !== null && machineAfter !== null) {
    // What the machine spent on anything but this load generator, this
    // server and Redis, as a share of all its cores.
    const busy = machineAfter.busy - machineBefore.busy - cpu - own.user - own.system - redisCpu
    // Not while the load generator alone was building its requests.
    foreign = Math.min(1, Math.max(0, busy) / ((elapsed - result.building * 1e6) * os.availableParallelism()))
  }
  const requests = result.requests.total
  const run = { rps: requests / (result.duration - result.building), p99: result.latency.p99, cpuPerRequest: cpu / requests, foreign, seconds: elapsed / 1e6 }
  // Per request sent: those still in flight when the run stopped were sent
  // to Redis too, though their answers were not counted.
  if (needsRedis(scenario.app)) run.redis = { ...commandsBetween(redisBefore.calls, redisAfter.calls), cpu: redisCpu, requests: result.requests.sent }
  return run
}

// Waits, within the run's patience, until the rest of the machine uses no
// more than --max-foreign of it (probed while the servers are idle).
async function waitForQuiet (options, patience) {
  while (patience.left > 0) {
    const before = machineTime()
    const started = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 250))
    const after = machineTime()
    if (before === null || after === null) return
    const elapsed = (Date.now() - started) / 1000
    if ((after.busy - before.busy) / (elapsed * 1e6 * os.availableParallelism()) <= options.maxForeign) return
    patience.left -= elapsed
    patience.waited += elapsed
  }
}

// CPU time of the whole machine so far, in µs (Linux; null elsewhere). User,
// system and steal time; interrupt time, mostly the loopback traffic of the
// run itself, is left out.
function machineTime () {
  let line
  try {
    line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
  } catch {
    return null
  }
  const [user, nice, system, , , , , steal] = line.split(/\s+/).slice(1).map(Number)
  return { busy: (user + nice + system + steal) * (1e6 / 100) } // USER_HZ is 100 on Linux
}

module.exports = { load, measure, waitForQuiet }
