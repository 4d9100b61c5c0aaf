'use strict'

// `--profile SCENARIO`: one server under --cpu-prof, and where its time went.

const fs = require('node:fs')
const path = require('node:path')
const { SCENARIOS } = require('./scenarios')
const { needsRedis, startRedis } = require('./redis')
const { startServer } = require('./servers')
const { prepare } = require('./feeds')
const { load } = require('./measure')
const { format } = require('./report')

const BENCH = path.join(__dirname, '..')

// `--profile login-guarded`: runs that server under --cpu-prof for 10 s of
// load and prints where its CPU time went.
async function profile (options) {
  const scenario = SCENARIOS.find((one) => one.name === options.profile)
  if (scenario === undefined) throw new Error(`--profile: unknown scenario ${options.profile}`)
  const dir = path.join(BENCH, 'profiles')
  fs.mkdirSync(dir, { recursive: true })
  const before = new Set(fs.readdirSync(dir))
  if (needsRedis(scenario.app)) await startRedis()
  const server = await startServer(scenario.app, { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir] })
  const feed = await prepare(scenario, server, options)
  const duration = options.smoke ? 1 : 10
  await feed.refresh?.()
  console.log(`profiling ${scenario.name} for ${duration} s …`)
  const result = await load(scenario, server, feed, { ...options, duration })
  await Promise.all([server.close(), feed.close?.()])
  const file = fs.readdirSync(dir).find((name) => !before.has(name) && name.endsWith('.cpuprofile'))
  console.log(`${format(result.requests.average)} req/s under the profiler; profile: ${path.relative(process.cwd(), path.join(dir, file))}\n`)
  printProfile(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')))
}

function printProfile (profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfTime = new Map()
  const totalTime = new Map()
  let busy = 0
  let idle = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])
    const delta = profile.timeDeltas[i] ?? 0
    const key = frameName(node)
    if (key === '(idle)') {
      idle += delta
      continue
    }
    busy += delta
    selfTime.set(key, (selfTime.get(key) ?? 0) + delta)
    // Total time: once per function on the sample's stack.
    const seen = new Set()
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const frame = frameName(byId.get(id))
      if (seen.has(frame)) continue
      seen.add(frame)
      totalTime.set(frame, (totalTime.get(frame) ?? 0) + delta)
    }
  }
  const byArea = new Map()
  for (const [key, time] of selfTime) {
    const area = areaOf(key)
    byArea.set(area, (byArea.get(area) ?? 0) + time)
  }
  const percent = (time) => `${(100 * time / busy).toFixed(1).padStart(5)} %`
  const top = (map, count) => [...map].sort((a, b) => b[1] - a[1]).slice(0, count)
  console.log(`busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; percentages of busy time\n`)
  console.log('self time by area:')
  for (const [area, time] of top(byArea, 12)) console.log(`  ${percent(time)}  ${area}`)
  console.log('\ntop functions by self time:')
  for (const [key, time] of top(selfTime, 25)) console.log(`  ${percent(time)}  ${key}`)
  console.log('\nfastify-login and @fastify/cookie, total time with callees (a hook that calls done() synchronously also counts the rest of the request):')
  for (const [key, time] of top(totalTime, Infinity)) {
    if (/ (dist\/|node_modules\/@fastify\/cookie\/)/.test(key) && time / busy >= 0.002) console.log(`  ${percent(time)}  ${key}`)
  }
}

function frameName (node) {
  const { functionName, url, lineNumber } = node.callFrame
  if (!url) return functionName || '(anonymous)'
  const file = url.replace(/^file:\/\//, '').replace(path.dirname(BENCH) + path.sep, '').replace(/^.*node_modules\//, 'node_modules/')
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`
}

function areaOf (key) {
  if (/ dist\//.test(key)) return 'fastify-login (dist/, from lib/)'
  if (/ bench\//.test(key)) return 'bench server'
  const dependency = / node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(key)
  if (dependency !== null) return dependency[1]
  if (/ node:/.test(key)) return 'node internals (JS)'
  if (/^\((garbage collector|program)\)$/.test(key)) return key
  return 'native (syscalls such as writev, V8 builtins)'
}

module.exports = { profile }
