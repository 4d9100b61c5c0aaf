'use strict'

// The command line of bench/run.js (its options are listed there).

const path = require('node:path')
const { COLD_COOKIES, COLD_WINDOW } = require('./scenarios')

function parseArgs (argv) {
  const smoke = argv.includes('--smoke') || process.env.BENCH_SMOKE === '1'
  const options = {
    smoke,
    // Many short turns cancel drift better than a few long ones.
    rounds: smoke ? 1 : 12,
    // autocannon stops on whole seconds.
    duration: 1,
    // A smoke run judges no timing: nothing to warm up.
    warmup: smoke ? 0 : 2,
    // Sets of fresh server processes the rounds are split between.
    generations: smoke ? 1 : 3,
    connections: 50,
    // A smoke run only checks answers: a few cookies, coming back soon, do.
    coldCookies: smoke ? 2000 : COLD_COOKIES,
    window: smoke ? 40 : COLD_WINDOW,
    memory: !argv.includes('--no-memory'),
    memoryRequests: smoke ? 200 : 10000,
    only: null,
    compare: null,
    out: smoke ? null : path.join(__dirname, '..', 'RESULTS.md'),
    profile: null,
    readme: false,
    maxForeign: 0.15,
    // Seconds that waiting for quiet and redoing disturbed measurements may
    // add to the whole run.
    patience: smoke ? 0 : 40
  }
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1]
    switch (argv[i]) {
      case '--rounds': options.rounds = positive('--rounds', value); i++; break
      case '--duration': options.duration = positive('--duration', value); i++; break
      case '--warmup': options.warmup = Number(value); i++; break
      case '--generations': options.generations = positive('--generations', value); i++; break
      case '--connections': options.connections = positive('--connections', value); i++; break
      case '--memory-requests': options.memoryRequests = positive('--memory-requests', value); i++; break
      case '--max-foreign': options.maxForeign = Number(value); i++; break
      case '--patience': options.patience = Number(value); i++; break
      case '--only': options.only = value.split(','); i++; break
      case '--compare': options.compare = path.resolve(value); i++; break
      case '--out': options.out = value === '-' ? null : path.resolve(value); i++; break
      case '--profile': options.profile = value; i++; break
      case '--docs':
      case '--readme': options.readme = true; break
    }
  }
  return options
}

function positive (flag, value) {
  const number = Number(value)
  if (!(number > 0)) throw new Error(`${flag} needs a positive number`)
  return number
}

module.exports = { parseArgs }
