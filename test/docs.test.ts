import { test } from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, relative, resolve } from 'node:path'

// The pages hold together: every relative link and `#anchor` of README.md
// and docs/ resolves in the repository, as GitHub renders it; every link to
// this repository on GitHub names a file that exists; the pages the package
// ships (npm pack) link only to files it ships, since a reader of
// node_modules/fastify-login has nothing else; the README lists every page;
// and docs/api.md names every field of the objects it describes.

const root = resolve(__dirname, '..')
const repository = repositoryUrl()

interface Link {
  page: string
  line: number
  target: string
}

function repositoryUrl (): string {
  const { repository } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { repository: { url: string } }
  return repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
}

function pagesOf (dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name)
    if (entry.isDirectory()) return pagesOf(path)
    return entry.name.endsWith('.md') ? [path] : []
  })
}

// A page's text without its code: fenced blocks and inline code spans show
// links as text, never as links. Line breaks stay, for the line numbers.
function prose (text: string): string {
  return text
    .replace(/^(\s*)(```|~~~)[^\n]*\n[\s\S]*?^\1\2\s*$/gm, (block) => block.replace(/[^\n]/g, ' '))
    .replace(/(`+)(?!`)[\s\S]*?[^`]\1(?!`)/g, (span) => span.replace(/[^\n]/g, ' '))
}

function linksOf (page: string): Link[] {
  const text = prose(readFileSync(join(root, page), 'utf8'))
  const links: Link[] = []
  const patterns = [
    /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g, // [text](target "title"), ![alt](image)
    /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm, // [label]: target
    /<(?:a|img)\b[^>]*?\s(?:href|src)="([^"]+)"/g // <a href="…">, <img src="…">
  ]
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) {
      links.push({ page, line: text.slice(0, match.index).split('\n').length, target: match[1] })
    }
  }
  return links
}

// GitHub's heading ids (github-slugger): the heading's text as rendered,
// lower case, without punctuation but `-` and `_`, each space a `-`; a
// repeated id gets `-1`, `-2`, … Explicit ids (`<a id="…">`, `<a name="…">`)
// count too.
function anchorsOf (page: string): Set<string> {
  const text = prose(readFileSync(join(root, page), 'utf8'))
  const source = readFileSync(join(root, page), 'utf8').split('\n')
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  text.split('\n').forEach((line, index) => {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)
    if (heading === null) return
    // The heading as written (its code spans were blanked in `text`).
    const written = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(source[index])?.[1] ?? heading[1]
    const rendered = written
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
      .replace(/<[^>]+>/g, '') // inline HTML
      .replace(/[`*~]/g, '') // code spans, emphasis, strike-through marks
    const base = rendered.toLowerCase().trim().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    anchors.add(count === 0 ? base : `${base}-${count}`)
  })
  for (const match of text.matchAll(/<a\b[^>]*?\s(?:id|name)="([^"]+)"/g)) anchors.add(match[1])
  return anchors
}

const pages = ['README.md', 'SECURITY.md', ...pagesOf('docs')]

test('the slugs are GitHub\'s', async (t) => {
  // Headings of these pages, with the ids GitHub gives them.
  const anchors = anchorsOf('docs/api.md')
  t.ok(anchors.has('apploginmanager'), '## `app.loginManager`')
  t.ok(anchors.has('how-the-user-logged-in'), '## How the user logged in')
  t.ok(anchorsOf('docs/cookies.md').has('fastifycookie'), '### @fastify/cookie')
  t.ok(anchorsOf('docs/cookies.md').has('revocation-without-a-store-the-alternative-id'), 'a colon dropped')
  t.ok(anchorsOf('docs/flask-login.md').has('coming-back-next'), '## Coming back: `next`')
  t.ok(anchorsOf('README.md').has('secure-by-default-and-what-to-add'), 'a comma dropped')
  t.notOk(anchorsOf('README.md').has('templates'), 'no such heading in the README')
})

test('every relative link and #anchor of the pages resolves', async (t) => {
  let checked = 0
  for (const link of pages.flatMap(linksOf)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue // https:, mailto: …
    const [path, anchor] = link.target.split('#', 2)
    const file = path === '' ? link.page : posix.normalize(posix.join(posix.dirname(link.page), decodeURIComponent(path)))
    const where = `${link.page}:${link.line}: ${link.target}`
    checked++
    if (file.startsWith('../') || !existsSync(join(root, file))) {
      t.fail(`${where}: no file ${file}`)
      continue
    }
    if (anchor !== undefined) {
      t.ok(file.endsWith('.md') && anchorsOf(file).has(anchor), `${where}: a heading of ${file}`)
    }
  }
  t.ok(checked > 30, `${checked} links checked`)
})

test('every link to this repository on GitHub names a file of it', async (t) => {
  const prefix = new RegExp(`^${repository.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(?:blob|tree|raw)/main/([^#?]+)`)
  for (const link of pages.flatMap(linksOf)) {
    const path = prefix.exec(link.target)?.[1]
    if (path === undefined) continue
    t.ok(existsSync(join(root, decodeURIComponent(path))), `${link.page}:${link.line}: ${link.target}`)
  }
})

test('the pages the package ships link only to files it ships', async (t) => {
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, npm_config_loglevel: 'error' }
  })) as Array<{ files: Array<{ path: string }> }>
  const shipped = new Set(packed.files.map((file) => file.path))
  const shippedPages = [...shipped].filter((path) => path.endsWith('.md'))
  t.ok(shippedPages.includes('README.md') && shippedPages.includes('docs/api.md'), 'the README and the docs are shipped')
  for (const page of shippedPages) {
    for (const link of linksOf(page)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link.target) || link.target.startsWith('#')) continue
      const file = posix.normalize(posix.join(posix.dirname(page), decodeURIComponent(link.target.split('#')[0])))
      t.ok(shipped.has(file) || [...shipped].some((path) => path.startsWith(`${file}/`)),
        `${page}:${link.line}: ${link.target} is in the package (or link to ${repository}/blob/main/${relative(root, join(root, dirname(page), link.target.split('#')[0]))})`)
    }
  }
})

test('the README\'s table of pages lists every page of docs/', async (t) => {
  const listed = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/^\| \[(docs\/[\w-]+\.md)\]\(\1\) \|/gm)].map((match) => match[1])
  const pagesOfDocs = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)
  t.same(listed.sort(), pagesOfDocs.sort())
})

// The fields of an interface of types/index.d.ts.
function fieldsOf (name: string): string[] {
  const declarations = readFileSync(join(root, 'types/index.d.ts'), 'utf8')
  const body = new RegExp(`export interface ${name} \\{\\n([\\s\\S]*?)\\n  \\}`).exec(declarations)?.[1] ?? ''
  return [...body.matchAll(/^ {4}(?:readonly )?(\w+)\??:/gm)].map((match) => match[1])
}

// The section of docs/api.md under a heading.
function sectionOf (heading: string): string {
  const page = readFileSync(join(root, 'docs/api.md'), 'utf8')
  const start = page.indexOf(`\n## ${heading}\n`)
  const end = page.indexOf('\n## ', start + 1)
  return start === -1 ? '' : page.slice(start, end === -1 ? undefined : end)
}

test('docs/api.md names every field of loginInfo() and of cookiesFor()\'s options', async (t) => {
  const cases: Array<[string, string]> = [['LoginInfo', 'How the user logged in'], ['CookiesForOptions', 'Testing your app']]
  for (const [type, heading] of cases) {
    const fields = fieldsOf(type)
    const section = sectionOf(heading)
    t.ok(fields.length >= 5 && section !== '', `${type} has fields and "${heading}" is a section`)
    for (const field of fields) t.match(section, new RegExp(`\\b${field}\\b`), `${type}.${field} in "${heading}"`)
  }
})
