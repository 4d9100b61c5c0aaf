'use strict'

// The tables: medians, ratios against the targets, and docs/benchmark.md.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { TARGETS, COMMAND_TARGETS, REVOKE_P99_MS, MEMORY_GROWTH } = require('./scenarios')

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function format (number) {
  return Math.round(number).toLocaleString('en-US')
}

function mb (bytes) {
  return (bytes / 1024 / 1024).toFixed(1)
}

function percentage (share) {
  return `${Math.round(share * 100)} %`
}

// name / baseline. The ratio the targets use is the median of the ratios of
// the same round: the two were measured seconds apart, so drift of the
// machine between rounds cancels out. Also given: the range of those
// per-round ratios, the ratio of the medians, and the ratio of server CPU per
// request (baseline / name), which moves less when the machine is busy.
function compare (runs, name, baseline) {
  const a = runs.get(name)
  const b = runs.get(baseline)
  if (a === undefined || b === undefined) return null
  const perRound = a.map((run, i) => run.rps / b[i].rps)
  return {
    sameRound: median(perRound),
    min: Math.min(...perRound),
    max: Math.max(...perRound),
    ofMedians: median(a.map((run) => run.rps)) / median(b.map((run) => run.rps)),
    byCpu: median(b.map((run) => run.cpuPerRequest)) / median(a.map((run) => run.cpuPerRequest))
  }
}

// What Redis did for a scenario over all its measured runs: commands (PINGs
// apart) and CPU time per request sent, each command's share, and PINGs a second.
function redisWork (measured) {
  if (measured.some((run) => run.redis === undefined)) return null
  const requests = measured.reduce((sum, run) => sum + run.redis.requests, 0)
  const byName = {}
  let commands = 0
  let pings = 0
  let cpu = 0
  let seconds = 0
  for (const run of measured) {
    commands += run.redis.commands
    pings += run.redis.pings
    cpu += run.redis.cpu
    seconds += run.seconds
    for (const [name, count] of Object.entries(run.redis.byName)) byName[name] = (byName[name] ?? 0) + count
  }
  return { perRequest: commands / requests, cpuPerRequest: cpu / requests, pingsPerSecond: pings / seconds, byName: Object.entries(byName).map(([name, count]) => [name, count / requests]) }
}

// Met on req/s, and for a target that says so on server CPU as well; a miss
// says which of the two missed.
function judge (target, ratio) {
  const missed = []
  if (ratio.sameRound < target.min) missed.push('req/s')
  if (target.both === true && ratio.byCpu < target.min) missed.push('CPU')
  if (missed.length === 0) return target.both === true ? 'met (both)' : 'met'
  return `**missed** (${missed.join(', ')})`
}

function report (scenarios, runs, memory, revocation, patience, options, elapsed) {
  const lines = []
  const cpus = os.cpus()
  lines.push(`${new Date().toISOString().slice(0, 10)} · ${cpus[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores · ` +
    `Node ${process.version} · ${os.type()} ${os.release()} · ${Math.round(elapsed)} s`, '')
  lines.push(`Each server in its own process; autocannon in the orchestrator, ${options.connections} connections. ` +
    `${options.rounds} rounds of ${options.duration} s per server, the servers in turn (the order reversed every other round), ` +
    `on ${Math.min(options.generations, options.rounds)} set(s) of fresh processes, each warmed up for ${options.warmup} s. ` +
    'Medians over the rounds; a ratio is the median of the ratios within each round. The load generator and the server share the machine. ' +
    '"server µs/req" is the server process\'s own CPU time per request. For the servers that use Redis, "Redis cmd/req" is ' +
    'the commands Redis ran during their runs (INFO commandstats before and after each run) over the requests, PINGs apart, and ' +
    '"Redis µs/req" its CPU time (INFO cpu) over the requests, PINGs included.', '')
  lines.push('| server | what | req/s | p99 ms | server µs/req | × bare | Redis cmd/req | Redis µs/req |')
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|')
  const work = new Map()
  for (const scenario of scenarios) {
    const measured = runs.get(scenario.name)
    if (measured === undefined) continue
    const ratio = compare(runs, scenario.name, 'bare')
    const redis = redisWork(measured)
    if (redis !== null) work.set(scenario.name, redis)
    lines.push(`| ${scenario.name} | ${scenario.what} | ${format(median(measured.map((run) => run.rps)))} | ` +
      `${median(measured.map((run) => run.p99))} | ${median(measured.map((run) => run.cpuPerRequest)).toFixed(1)} | ` +
      `${ratio === null ? '' : ratio.sameRound.toFixed(2)} | ${redis === null ? '' : redis.perRequest.toFixed(3)} | ${redis === null ? '' : redis.cpuPerRequest.toFixed(1)} |`)
  }

  lines.push('', '| target | req/s ratio | per round | ratio of medians | by server CPU | goal | |')
  lines.push('|---|--:|--:|--:|--:|--:|---|')
  for (const target of TARGETS) {
    const ratio = compare(runs, target.name, target.baseline)
    if (ratio === null) continue
    const verdict = target.min === null ? '' : judge(target, ratio)
    lines.push(`| ${target.name} / ${target.baseline} | ${ratio.sameRound.toFixed(2)} | ${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)} | ` +
      `${ratio.ofMedians.toFixed(2)} | ${ratio.byCpu.toFixed(2)} | ${target.min === null ? '' : '≥ ' + target.min.toFixed(2)} | ${verdict} |`)
  }
  for (const target of COMMAND_TARGETS) {
    const redis = work.get(target.name)
    if (redis === undefined) continue
    lines.push(`| ${target.name}: Redis commands per request, PINGs apart | ${redis.perRequest.toFixed(3)} | | | | ≤ ${target.max} | ${redis.perRequest <= target.max ? 'met' : '**missed**'} |`)
  }
  if (revocation !== null) {
    lines.push(`| revoke to refusal, 3 instances over Redis: p99 ms (median ${revocation.median.toFixed(1)}, max ${revocation.max.toFixed(1)}, ${revocation.count} refusals) | ` +
      `${revocation.p99.toFixed(1)} | | | | ≤ ${REVOKE_P99_MS} | ${revocation.p99 <= REVOKE_P99_MS ? 'met' : '**missed**'} |`)
  }
  if (memory !== null) {
    const [short, long] = memory.samples
    for (const [label, key] of [['rss', 'rss'], ['heap used', 'heapUsed']]) {
      const growth = long[key] / short[key]
      lines.push(`| login-guarded memory: ${label} after ${format(long.requests)} more requests / after ${format(short.requests)} | ` +
        `${growth.toFixed(2)} | | | | ≤ ${MEMORY_GROWTH.toFixed(2)} | ${growth <= MEMORY_GROWTH ? 'met' : '**missed**'} |`)
    }
    lines.push('', 'Memory of the login-guarded server (`--expose-gc`, after a forced GC; each request with a login cookie of its own; ' +
      `after a warm-up of ${format(long.requests)} such requests): ${mb(short.rss)} MB rss, ${mb(short.heapUsed)} MB heap used after ${format(short.requests)} requests; ` +
      `${mb(long.rss)} MB rss, ${mb(long.heapUsed)} MB heap used after ${format(long.requests)} more. ` +
      `Per cached login: ${format(memory.perLogin)} bytes of heap (the heap with the cache of verified cookies full, ${format(memory.cached)} entries, ` +
      'less the heap with one login seen, over that count).')
  }

  if (work.size > 0) {
    const listed = [...work].map(([name, redis]) => `${name}: ${redis.byName.length === 0 ? 'none' : redis.byName.map(([command, count]) => `${command} ${count.toFixed(3)}`).join(', ')}`)
    const pings = [...work.values()].map((redis) => redis.pingsPerSecond)
    lines.push('', `Redis commands per request, by command: ${listed.join('; ')}. Left out: PINGs, ${format(Math.min(...pings))}–${format(Math.max(...pings))} a second ` +
      'during the runs, the heartbeats by which the subscriber of every redisStore server of the set (the idle ones too) proves it hears revocations.')
  }

  const all = [...runs.values()].flat()
  const foreign = all.map((run) => run.foreign).filter((value) => value !== null)
  if (foreign.length > 0) {
    const disturbed = foreign.filter((value) => value > options.maxForeign).length
    lines.push('', `Other load on the machine during the measurements: median ${percentage(median(foreign))}, ` +
      `highest ${percentage(Math.max(...foreign))} of its CPU; waited ${Math.round(patience.waited)} s for quiet and ` +
      `redid ${patience.redone} measurement(s) above ${percentage(options.maxForeign)}` +
      (disturbed > 0 ? `; **${disturbed} above it in the end**, with no retry left: read those rows with care.` : '.'))
  }
  return lines.join('\n') + '\n'
}

// `--docs`: puts the results between the bench markers of docs/benchmark.md,
// and touches nothing else.
function updateReadme (markdown) {
  const file = path.join(__dirname, '..', '..', 'docs', 'benchmark.md')
  const readme = fs.readFileSync(file, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const from = readme.indexOf(start)
  const to = readme.indexOf(end)
  if (from === -1 || to < from) throw new Error(`docs/benchmark.md has no ${start} … ${end} markers`)
  fs.writeFileSync(file, readme.slice(0, from + start.length) + '\n' + markdown + readme.slice(to))
  console.log('docs/benchmark.md: results updated')
}

module.exports = { median, format, mb, percentage, report, updateReadme }
