import { FST_LOGIN_INVALID_OPTION } from '../errors'

// A misspelt option (`idleTimout`) would leave the control it names at its
// default without a word: every name given must be a known one.
export function refuseUnknown (given: object, known: readonly string[], prefix = ''): void {
  for (const name of Object.keys(given)) {
    if (known.includes(name)) continue
    const closest = closestName(name, known)
    const fix = closest !== null
      ? `did you mean \`${prefix}${closest}\`?`
      : prefix === ''
        ? 'the README\'s Options table lists the options'
        : `\`${prefix.slice(0, -1)}\` takes ${known.map((key) => `\`${key}\``).join(' and ')}`
    throw new FST_LOGIN_INVALID_OPTION(`${prefix}${name}`, `is unknown: ${fix} (a misspelt option is refused, since it would silently keep the default)`)
  }
}

// The known name nearest to `name`, if it is near enough to be a typo: at
// most one edit in three characters, case aside.
export function closestName (name: string, known: readonly string[]): string | null {
  const limit = Math.max(1, Math.floor(name.length / 3))
  let closest: string | null = null
  let best = limit + 1
  for (const candidate of known) {
    if (Math.abs(name.length - candidate.length) > limit) continue
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < best) {
      best = distance
      closest = candidate
    }
  }
  return closest
}

// Optimal string alignment distance: insertions, deletions, substitutions
// and swaps of two neighbours each count one.
function editDistance (a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i])
  for (let j = 1; j <= b.length; j++) rows[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1)
      }
    }
  }
  return rows[a.length][b.length]
}
