import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { consumerFindings, consumerScript, esmFindings, esmScript, typescriptConfig, typescriptConsumer } from './consumers'

// Installing fastify-login from its git repository, as the README says to
// before it is published: npm clones the commit, installs the development
// dependencies in the clone, runs `prepare` (which builds dist/), and packs
// the result. The commit tested is this repository's HEAD: what is committed.
//
// Slow (npm installs every development dependency into the clone, from the
// npm cache when it can), so it runs alone in its file, with a longer
// timeout than the others.
t.setTimeout(300000)

const root = resolve(__dirname, '..')
// npm, node and tsc run as in a shell of the app's: without tap's loaders.
const env = { ...process.env, NODE_OPTIONS: '' }

function versionOf (name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

// better-sqlite3, which the example app uses, is among the development
// dependencies npm installs into the clone; where its install script cannot
// download its prebuilt binary it compiles itself, for minutes. It is handed
// the binary this repository's install already built, through
// prebuild-install's local prebuilds: its install script still runs.
function localPrebuilds (dir: string): Record<string, string> {
  const name = 'better-sqlite3'
  const prebuilds = join(dir, 'prebuilds')
  mkdirSync(prebuilds)
  const tarball = `${name}-v${versionOf(name)}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`
  execFileSync('tar', ['-czf', join(prebuilds, tarball), '-C', join(root, 'node_modules', name), 'build/Release/better_sqlite3.node'])
  return { npm_config_better_sqlite3_local_prebuilds: prebuilds }
}

t.test('npm install from the git repository builds dist/, and the package works with require, import and tsc', async (t) => {
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
  const work = mkdtempSync(join(tmpdir(), 'fastify-login-git-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))

  execFileSync('npm', [
    'install', '--prefer-offline', '--no-audit', '--no-fund',
    `git+file://${root}#${commit}`,
    `fastify@${versionOf('fastify')}`,
    `@types/node@${versionOf('@types/node')}`
  ], { cwd: app, encoding: 'utf8', stdio: 'pipe', env: { ...env, ...localPrebuilds(work), npm_config_loglevel: 'error' } })

  const installed = join(app, 'node_modules', 'fastify-login')
  t.ok(existsSync(join(installed, 'dist', 'index.js')), 'prepare built dist/')
  t.ok(existsSync(join(installed, 'types', 'index.d.ts')), 'the types are there')
  t.notOk(existsSync(join(installed, 'lib')) || existsSync(join(installed, 'test')), 'no sources or tests, as in the tarball')

  writeFileSync(join(app, 'consumer.cjs'), consumerScript)
  t.same(JSON.parse(execFileSync(process.execPath, ['consumer.cjs'], { cwd: app, env, encoding: 'utf8' })), consumerFindings, 'require()')

  writeFileSync(join(app, 'consumer.mjs'), esmScript)
  t.same(JSON.parse(execFileSync(process.execPath, ['consumer.mjs'], { cwd: app, env, encoding: 'utf8' })), esmFindings, 'import')

  // TypeScript: the repository's compiler, the installed package's types.
  writeFileSync(join(app, 'consumer.mts'), typescriptConsumer)
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(typescriptConfig))
  const compiled = (() => {
    try {
      return execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: app, env, encoding: 'utf8' })
    } catch (error) {
      return (error as { stdout: string }).stdout
    }
  })()
  t.equal(compiled, '', 'tsc --noEmit')
})
