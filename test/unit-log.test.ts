import { test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

// What `npm run test:unit` prints, as CI logs it: the failures, then tap's
// coverage summary and the totals, and last the `# { total: …, pass: … }`
// line that .ci/run counts, never thousands of lines of raw TAP. Played with
// the project's own `test:unit` command on a tiny project of two test files,
// and counted by .ci/run's own `counts` function.

const root = resolve(__dirname, '..')
const run = promisify(execFile)
const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
const ciRun = readFileSync(join(root, '.ci/run'), 'utf8')

// The environment of a fresh shell: without the variables and loaders tap
// gives the test processes it runs, and with `CI` set as .ci/run sets it.
function shellEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { CI: 'true' }
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(TAP|_TAPJS|TS_NODE_)|^(NODE_OPTIONS|NODE_V8_COVERAGE|FORCE_COLOR|NO_COLOR)$/.test(name)) env[name] = value
  }
  return env
}

// Beside the repository's node_modules, so that `tap` resolves.
function project (): string {
  const dir = mkdtempSync(join(root, 'node_modules', '.unit-log-'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({
    name: 'unit-log',
    private: true,
    scripts: { 'test:unit': scripts['test:unit'] },
    tap: { 'coverage-map': 'coverage-map.js' }
  }))
  writeFileSync(join(dir, 'coverage-map.js'), "module.exports = () => ['sum.js']\n")
  writeFileSync(join(dir, 'sum.js'), 'module.exports = (a, b) => a + b\n')
  writeFileSync(join(dir, 'passing.test.js'), `const { test } = require('tap')
const sum = require('./sum.js')
test('adds', async (t) => {
  t.equal(sum(1, 2), 3, 'one and two')
  t.equal(sum(2, 2), 4, 'two and two')
})
`)
  writeFileSync(join(dir, 'failing.test.js'), `const { test } = require('tap')
const sum = require('./sum.js')
test('adds wrong', async (t) => {
  t.equal(sum(1, 2), 3, 'one and two')
  t.equal(sum(2, 2), 5, 'two and two make five')
})
`)
  return dir
}

async function unitLog (dir: string, file: string): Promise<{ log: string, status: number }> {
  return await run('npm', ['run', '--silent', 'test:unit', '--', file], { cwd: dir, env: shellEnv(), timeout: 60000 })
    .then(({ stdout, stderr }) => ({ log: stdout + stderr, status: 0 }), (error: { stdout: string, stderr: string, code: number }) => ({ log: error.stdout + error.stderr, status: error.code }))
}

// .ci/run's `counts` on a log: "<passed> <failed>".
async function counts (log: string, status: number): Promise<string> {
  const dir = mkdtempSync(join(root, 'node_modules', '.unit-log-counts-'))
  try {
    writeFileSync(join(dir, 'log'), log)
    const script = 'eval "$(sed -n \'/^counts () {/,/^}/p\' "$1")"; counts "$2" "$3"'
    const { stdout } = await run('bash', ['-c', script, 'counts', join(root, '.ci/run'), join(dir, 'log'), String(status)])
    return stdout.trim()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('.ci/run sets CI, so that the reporter writes its summary once', async (t) => {
  t.match(ciRun, /^export CI=true$/m)
})

test('a passing run ends with the coverage summary and the totals, which CI counts', { timeout: 90000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { log, status } = await unitLog(dir, 'passing.test.js')
  t.equal(status, 0, 'exits 0', { log })
  const summary = log.indexOf('Coverage summary')
  t.ok(summary !== -1, 'the coverage summary')
  t.match(log.slice(summary), /Statements\s+: 100%[\s\S]*Lines\s+: 100%/, 'with its figures')
  t.match(log.slice(summary), /Asserts:\s+2 pass\s+0 fail/, 'the totals after it')
  t.match(log.trimEnd().split('\n').slice(-2).join('\n'), /^# \{ total: 2, pass: 2 \}\n# time=/, 'the last lines: the totals line CI counts, and the time')
  t.notMatch(log, /^\s*ok \d/m, 'no raw TAP')
  t.equal(await counts(log, status), '2 0', '.ci/run counts 2 passed, 0 failed')
})

test('a failing run shows the failure, and CI counts it', { timeout: 90000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { log, status } = await unitLog(dir, 'failing.test.js')
  t.not(status, 0, 'a failure')
  t.match(log, /adds wrong > two and two make five/, 'the failed assertion')
  t.match(log, /^# \{ total: 2, pass: 1, fail: 1 \}$/m, 'the totals line')
  t.equal(await counts(log, status), '1 1', '.ci/run counts 1 passed, 1 failed')
})
