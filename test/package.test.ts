import { test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { consumerFindings, consumerScript, esmFindings, esmScript } from './consumers'

// The package as a consumer gets it: built, packed, installed into a fresh
// project, loaded with require() and with import. Runs against dist/, so
// `npm run build` must have run (npm test does).
const root = resolve(__dirname, '..')

test('dist/ loads with require() and import, in the official plugins\' export shape', async (t) => {
  const cjs = require(join(root, 'dist/index.js'))
  t.equal(typeof cjs, 'function')
  t.equal(cjs.default, cjs)
  t.equal(cjs.fastifyLogin, cjs)
  t.equal(typeof cjs.UserMixin, 'function')
  t.equal(typeof cjs.AnonymousUserMixin, 'function')
  t.equal(typeof cjs.memoryStore, 'function')
  t.equal(typeof cjs.redisStore, 'function')
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', esmScript.replace("'fastify-login'", JSON.stringify(join(root, 'dist/index.js')))], { encoding: 'utf8' })
  t.same(JSON.parse(output), esmFindings)
})

test('npm pack produces a package that works installed into a fresh project', { timeout: 180000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'fastify-login-pack-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const npm = (args: string[], cwd: string): string => execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } })

  const packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = packed[0].files.map((file) => file.path).sort()
  t.ok(files.includes('dist/index.js') && files.includes('types/index.d.ts') && files.includes('README.md') && files.includes('LICENSE'), 'ships the build, the types, the README and the licence')
  t.notOk(files.some((file) => file.startsWith('lib/') || file.startsWith('test/') || file.endsWith('.map')), 'no sources, tests or maps')

  const app = join(work, 'app')
  execFileSync('mkdir', ['-p', app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const fastifyVersion = JSON.parse(readFileSync(join(root, 'node_modules/fastify/package.json'), 'utf8')).version
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed[0].filename), `fastify@${fastifyVersion}`], app)

  writeFileSync(join(app, 'consumer.cjs'), consumerScript)
  const cjs = JSON.parse(execFileSync(process.execPath, ['consumer.cjs'], { cwd: app, encoding: 'utf8' }))
  t.same(cjs, consumerFindings)

  writeFileSync(join(app, 'consumer.mjs'), esmScript)
  t.same(JSON.parse(execFileSync(process.execPath, ['consumer.mjs'], { cwd: app, encoding: 'utf8' })), esmFindings)
})
