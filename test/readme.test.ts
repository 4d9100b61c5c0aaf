import { test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

// Every fenced js/ts block of README.md and docs/*.md is run or type-checked
// against the built package (dist/, and types/index.d.ts), as a newcomer who
// pastes it into a project of their own would. The line before a block may
// say what it is:
//
//   <!-- fragment -->  a piece of a larger app: not run
//   <!-- server -->    a complete app that listens on port 3000: started on a
//                      free port, then the `curl` lines of the next sh block
//                      (or of the last one seen) are played against it and
//                      their output compared with the `# …` lines under them
//
// Any other js block must run to its end and exit 0; any other ts block must
// compile under `strict`, `module: nodenext` and `exactOptionalPropertyTypes`
// with TypeScript 5.9 and 7. A block that does neither fails the test: mark
// it a fragment, or make it whole.

const root = resolve(__dirname, '..')
const run = promisify(execFile)
// The blocks run in plain Node, as a reader's would: without tap's loaders.
const env = { ...process.env, NODE_OPTIONS: '' }
// TypeScript 7's compiler is a native program: its `bin/tsc` only starts it,
// and does not start under tap's loaders, so it is called directly.
const compilers: Record<string, string[]> = {
  'TypeScript 5.9': [process.execPath, join(root, 'node_modules/typescript/bin/tsc')],
  'TypeScript 7': [join(root, 'node_modules/@typescript', `typescript-${process.platform}-${process.arch}`, 'lib', 'tsc')]
}

interface Block {
  page: string
  line: number
  lang: string
  marker: string | null
  code: string
}

function blocksOf (page: string): Block[] {
  const lines = readFileSync(join(root, page), 'utf8').split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)```(\w*)\s*$/.exec(lines[i])
    if (fence === null || fence[2] === '') continue
    const [, indent, lang] = fence
    const code: string[] = []
    let end = i + 1
    while (end < lines.length && lines[end].trim() !== '```') code.push(lines[end++].slice(indent.length))
    const before = i > 0 ? /^\s*<!--\s*([\w-]+)\s*-->\s*$/.exec(lines[i - 1]) : null
    blocks.push({ page, line: i + 1, lang, marker: before === null ? null : before[1], code: code.join('\n') + '\n' })
    i = end
  }
  return blocks
}

const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)]
const blocks = pages.flatMap(blocksOf)
const isJs = (block: Block): boolean => block.lang === 'js' || block.lang === 'javascript'
const isTs = (block: Block): boolean => block.lang === 'ts' || block.lang === 'typescript'

// A project of the reader's own, beside the repository's node_modules so that
// `fastify` and the other packages resolve, with `fastify-login` linked to
// this repository as `npm install` of it would put it there.
function project (): string {
  const dir = mkdtempSync(join(root, 'node_modules', '.readme-'))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(root, join(dir, 'node_modules', 'fastify-login'), 'dir')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'reader', private: true, type: 'module' }))
  return dir
}

test('the pages have runnable blocks and every block is known', async (t) => {
  t.ok(existsSync(join(root, 'dist/index.js')), 'dist/ is built (npm test builds it first)')
  t.ok(blocks.filter((block) => block.marker === 'server').length >= 2, 'the README has its ESM and CommonJS apps')
  for (const block of blocks.filter((block) => isJs(block) || isTs(block))) {
    t.ok(block.marker === null || block.marker === 'fragment' || (block.marker === 'server' && isJs(block)),
      `${block.page}:${block.line}: a ${block.lang} block marked ${block.marker ?? 'nothing'}`)
  }
})

test('every js block that is not a fragment runs', { timeout: 120000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const runnable = blocks.filter((block) => isJs(block) && block.marker === null)
  t.ok(runnable.length > 0, 'docs/api.md has a whole test')
  for (const block of runnable) {
    const file = join(dir, `block-${block.line}.${/\brequire\(/.test(block.code) ? 'cjs' : 'mjs'}`)
    writeFileSync(file, block.code)
    const result = await run(process.execPath, [file], { cwd: dir, env, timeout: 20000 }).then(() => null, (error: Error) => error)
    t.equal(result, null, `${block.page}:${block.line} runs to its end`)
  }
})

test('every ts block that is not a fragment compiles under strict nodenext, with TypeScript 5.9 and 7', { timeout: 240000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const checked = blocks.filter((block) => isTs(block) && block.marker === null)
  t.ok(checked.length > 0, 'docs/typescript.md has whole files')
  for (const block of checked) {
    // Each block is its own program: one block's `declare module` must not
    // reach another.
    const name = `block-${block.page.replace(/\W/g, '-')}-${block.line}`
    writeFileSync(join(dir, `${name}.ts`), block.code)
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({
      compilerOptions: {
        strict: true,
        exactOptionalPropertyTypes: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        types: ['node'],
        noEmit: true,
        skipLibCheck: true
      },
      files: [`${name}.ts`]
    }))
    for (const [compiler, [command, ...args]] of Object.entries(compilers)) {
      const result = await run(command, [...args, '-p', `${name}.json`], { cwd: dir, env })
        .then(() => '', (error: { stdout: string, stderr: string, code: unknown }) => `${error.stdout}${error.stderr}`.trim() || `exit code ${String(error.code)}`)
      t.equal(result, '', `${block.page}:${block.line} compiles with ${compiler}`)
    }
  }
})

test('every server block serves the curl lines shown with it', { timeout: 120000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let journey: Block | undefined
  for (const [index, block] of blocks.entries()) {
    if (block.lang === 'sh' && block.code.includes('curl ')) journey = block
    if (block.marker !== 'server') continue
    // The curl lines shown with it: on its own page, after it.
    const next = blocks.slice(index + 1).find((other) => other.page === block.page && (other.marker === 'server' || (other.lang === 'sh' && other.code.includes('curl '))))
    const curl = next?.lang === 'sh' ? next : journey
    if (curl === undefined) {
      t.fail(`${block.page}:${block.line}: no curl lines to play against this server`)
      continue
    }
    t.match(block.code, /port: 3000/, `${block.page}:${block.line} listens on port 3000`)
    const port = await freePort()
    const file = join(dir, `server-${block.line}.${/\brequire\(/.test(block.code) ? 'cjs' : 'mjs'}`)
    writeFileSync(file, block.code.replace('port: 3000', `port: ${port}`))
    const server = spawn(process.execPath, [file], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    server.stdout.on('data', (chunk) => { output += chunk })
    server.stderr.on('data', (chunk) => { output += chunk })
    try {
      await waitForServer(port, () => server.exitCode)
      jars.clear()
      for (const step of curlSteps(curl.code)) {
        const shown = await playCurl(step.args, port, dir)
        t.equal(shown, step.expected, `${block.page}:${block.line}, ${curl.page}:${curl.line}: ${step.command}`)
      }
    } catch (error) {
      t.fail(`${block.page}:${block.line}: ${(error as Error).message}\n${output}`)
    } finally {
      server.kill()
    }
  }
})

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
}

async function waitForServer (port: number, exitCode: () => number | null): Promise<void> {
  const until = Date.now() + 15000
  while (Date.now() < until) {
    if (exitCode() !== null) throw new Error('the server exited')
    try {
      await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' })
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error('the server did not listen within 15 s')
}

interface CurlStep {
  command: string
  args: string[]
  expected: string
}

// `curl …` lines, each followed by the `# …` lines of what it prints.
function curlSteps (script: string): CurlStep[] {
  const steps: CurlStep[] = []
  for (const line of script.split('\n')) {
    if (line.startsWith('curl ')) {
      steps.push({ command: line, args: shellWords(line).slice(1), expected: '' })
    } else if (line.startsWith('#') && steps.length > 0) {
      steps[steps.length - 1].expected += line.replace(/^# ?/, '') + '\n'
    }
  }
  return steps
}

function shellWords (line: string): string[] {
  const words: string[] = []
  for (const match of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) words.push(match[1] ?? match[2] ?? match[3])
  return words
}

// What the curl line prints, done with fetch: the flags the pages use (-s,
// -c/-b with a cookie jar file, -L, -X, -o /dev/null, -w with %{http_code}
// and %{redirect_url}), and a jar that drops a cookie the server expires, as
// curl 8 does. Anything else fails, so a page cannot use a flag this does not
// check.
const jars = new Map<string, Map<string, string>>()

async function playCurl (args: string[], port: number, dir: string): Promise<string> {
  let method = 'GET'
  let url = ''
  let follow = false
  let discard = false
  let format: string | null = null
  let readJar: string | null = null
  let writeJar: string | null = null
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '-s') continue
    else if (arg === '-L') follow = true
    else if (arg === '-X') method = args[++i]
    else if (arg === '-b') readJar = join(dir, args[++i])
    else if (arg === '-c') writeJar = join(dir, args[++i])
    else if (arg === '-o' && args[i + 1] === '/dev/null') { discard = true; i++ } else if (arg === '-w') format = args[++i]
    else if (/^https?:\/\//.test(arg)) url = arg.replace('127.0.0.1:3000', `127.0.0.1:${port}`)
    else throw new Error(`curl flag ${arg} is not known to this test`)
  }
  const jar = new Map(readJar === null ? [] : jars.get(readJar) ?? [])
  let response: Response
  let redirects = 0
  for (;;) {
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
    response = await fetch(url, { method, redirect: 'manual', headers: cookie === '' ? {} : { cookie } })
    for (const line of response.headers.getSetCookie()) keepCookie(jar, line)
    const location = response.headers.get('location')
    if (!follow || location === null || response.status < 300 || response.status > 399) break
    if (++redirects > 10) throw new Error('too many redirects')
    if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) method = 'GET'
    url = new URL(location, url).href
  }
  if (writeJar !== null) jars.set(writeJar, jar)
  let shown = discard ? '' : await response.text()
  if (format !== null) {
    const location = response.headers.get('location')
    shown += format
      .replaceAll('%{http_code}', String(response.status))
      .replaceAll('%{redirect_url}', location === null ? '' : new URL(location, url).href)
      .replaceAll('\\n', '\n')
  }
  return shown.replaceAll(`127.0.0.1:${port}`, '127.0.0.1:3000')
}

function keepCookie (jar: Map<string, string>, line: string): void {
  const [pair, ...attributes] = line.split(';').map((part) => part.trim())
  const name = pair.slice(0, pair.indexOf('='))
  const value = pair.slice(pair.indexOf('=') + 1)
  const expired = attributes.some((attribute) => {
    const [key, setting = ''] = attribute.split('=')
    if (key.toLowerCase() === 'max-age') return Number(setting) <= 0
    if (key.toLowerCase() === 'expires') return Date.parse(setting) <= Date.now()
    return false
  })
  if (expired) jar.delete(name)
  else jar.set(name, value)
}
