'use strict'

// The benchmark: `npm run bench` (full, about 10 minutes on 2 cores) or
// `npm run bench:smoke` (`--smoke`: 1-second rounds, one round, every
// server, nothing written: the check CI can run so the harness cannot rot).
//
// Each server runs in its own Node process (bench/server.js) on a free
// loopback port; autocannon runs here, in this process, as a library. The
// servers take turns round after round (the order reversed every other round)
// so that drift of the machine hits all of them alike. Every measurement
// checks that each response had the expected status and body, and a guarded
// route must refuse a request without the cookie before it is measured.
//
// On Linux the CPU time the rest of the machine uses (other processes, other
// tenants of a VM) is watched too: before each measurement the harness waits
// for the machine to be quiet, and a measurement disturbed by more than
// --max-foreign of the machine is redone, both within --patience seconds
// for the whole run.
//
// Options: --smoke, --rounds N, --duration S, --warmup S, --generations N
// (sets of fresh server processes the rounds are split between), --connections N,
// --only a,b (scenarios), --no-memory, --memory-requests N, --out FILE|-,
// --docs (also put the results into docs/benchmark.md, between its bench
// markers; --readme is the old name of it),
// --max-foreign 0.15, --patience S, --profile SCENARIO (a CPU profile of that server,
// written to bench/profiles/, and its top functions), --compare PATH (every
// fastify-login server also runs from another build's dist/index.js, as
// `name@before`: how a change is measured side by side).

const fs = require('node:fs')
const path = require('node:path')
const { parseArgs } = require('./harness/options')
const { SCENARIOS } = require('./harness/scenarios')
const { needsRedis, startRedis, stopRedis } = require('./harness/redis')
const { children, startServer } = require('./harness/servers')
const { prepare } = require('./harness/feeds')
const { load, measure, waitForQuiet } = require('./harness/measure')
const { memoryCheck, revocationCheck } = require('./harness/checks')
const { profile } = require('./harness/profile')
const { percentage, report, updateReadme } = require('./harness/report')

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.profile !== null) {
    try {
      return await profile(options)
    } finally {
      stopRedis()
    }
  }
  const started = Date.now()
  const seconds = () => Math.round((Date.now() - started) / 1000)
  const selected = options.only === null ? SCENARIOS.filter((one) => !one.extra) : SCENARIOS.filter((one) => options.only.includes(one.name))
  // --compare PATH: each fastify-login server also runs from another build
  // (a checkout's dist/index.js), side by side, as `name@before`.
  const scenarios = options.compare === null
    ? selected
    : selected.flatMap((one) => one.app.startsWith('login') ? [one, { ...one, name: `${one.name}@before`, plugin: options.compare, what: `${one.what}, from ${options.compare}` }] : [one])
  if (scenarios.length === 0) throw new Error(`--only: no scenario among ${SCENARIOS.map((one) => one.name).join(', ')}`)

  if (scenarios.some((one) => needsRedis(one.app))) await startRedis()
  console.log(`${scenarios.length} servers, ${options.rounds} round(s) of ${options.duration} s after a ${options.warmup} s warm-up, ` +
    `${options.connections} connections${options.smoke ? ' (smoke)' : ''}`)
  const runs = new Map(scenarios.map((scenario) => [scenario.name, []]))
  const patience = { left: options.patience, waited: 0, redone: 0 }
  const generations = Math.min(options.generations, options.rounds)
  let round = 0
  for (let generation = 0; generation < generations; generation++) {
    // Fresh processes for each generation of rounds: a process can be
    // lastingly faster or slower than its twin (placement, memory layout),
    // and that must average out like the drift of the machine.
    const servers = await Promise.all(scenarios.map((scenario) => startServer(scenario.app, { plugin: scenario.plugin })))
    const feeds = []
    try {
      for (let i = 0; i < scenarios.length; i++) {
        feeds.push(await prepare(scenarios[i], servers[i], options))
        // Warm-up: lets the JIT settle; not recorded.
        await feeds[i].refresh?.()
        await waitForQuiet(options, patience)
        if (options.warmup > 0) await load(scenarios[i], servers[i], feeds[i], { ...options, duration: options.warmup })
      }
      const end = Math.round(options.rounds * (generation + 1) / generations)
      for (; round < end; round++) {
        // Turns, in alternating directions: A B C … C B A …
        const order = scenarios.map((_, i) => i)
        if (round % 2 === 1) order.reverse()
        const redoneBefore = patience.redone
        for (const i of order) {
          await feeds[i].refresh?.()
          await waitForQuiet(options, patience)
          let run = await measure(scenarios[i], servers[i], feeds[i], options)
          // Redo a measurement the rest of the machine disturbed; keep the calmest.
          for (let attempt = 0; attempt < 2 && run.foreign > options.maxForeign && patience.left > 0; attempt++) {
            await feeds[i].refresh?.()
            await waitForQuiet(options, patience)
            const retryStarted = Date.now()
            const again = await measure(scenarios[i], servers[i], feeds[i], options)
            patience.left -= (Date.now() - retryStarted) / 1000
            patience.redone++
            if (again.foreign < run.foreign) run = again
          }
          runs.get(scenarios[i].name).push(run)
        }
        const roundRedone = patience.redone - redoneBefore
        const progress = scenarios.map((scenario) => `${scenario.name} ${(runs.get(scenario.name)[round].rps / 1000).toFixed(1)}k`)
        const foreign = scenarios.map((scenario) => runs.get(scenario.name)[round].foreign ?? 0)
        console.log(`round ${round + 1}/${options.rounds} (${seconds()} s): ${progress.join(' · ')} req/s; ` +
          `other load up to ${percentage(Math.max(...foreign))}${roundRedone > 0 ? `, ${roundRedone} redone` : ''}`)
      }
    } finally {
      await Promise.all([...servers.map((server) => server.close()), ...feeds.map((feed) => feed.close?.())])
    }
  }

  const revocation = scenarios.some((one) => one.name === 'login-store-redis') ? await revocationCheck(options) : null
  stopRedis()
  const memory = options.memory ? await memoryCheck(options) : null
  const markdown = report(scenarios, runs, memory, revocation, patience, options, (Date.now() - started) / 1000)
  console.log('\n' + markdown)
  if (options.out !== null) {
    fs.writeFileSync(options.out, '# fastify-login benchmark results\n\n' + markdown +
      '\nReproduce: `npm run bench` (about 10 minutes on 2 cores; writes this file). `npm run bench:smoke` checks the harness in seconds.\n')
    console.log(`written to ${path.relative(process.cwd(), options.out)}`)
  }
  if (options.readme) updateReadme(markdown)
}

main().catch((error) => {
  console.error(error)
  for (const child of children) child.kill()
  stopRedis()
  process.exit(1)
})
