import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { Cluster, Redis, type RedisOptions } from 'ioredis'

// Real Redis servers for the tests: Debian's redis-server on a free loopback
// port, in a directory of its own, stopped and removed when the test ends.
// Never a mock: what is tested is what Redis does.

export interface RedisServer {
  readonly port: number
  readonly dir: string
  /** Stops the server (SIGTERM: it saves its append-only file first). */
  stop (): Promise<void>
  /** Kills it (SIGKILL): a crash, nothing saved on the way out. */
  kill (): Promise<void>
  /** Starts it again on the same port and directory. */
  start (): Promise<void>
  /** Freezes it (SIGSTOP): connections stay open, nothing answers. */
  pause (): void
  /** Lets a frozen server go on (SIGCONT). */
  resume (): void
}

export interface RedisServerOptions {
  /** `appendonly yes`: what the server was told survives a restart. */
  appendonly?: boolean
  /** Extra `redis-server` arguments, as `['--name', 'value']`. */
  args?: string[]
}

const HOST = '127.0.0.1'
const STARTUP_MS = 10_000

// Fail, never skip: CI must run these tests, so a missing server is an error.
function requireRedisServer (): void {
  const found = spawnSync('redis-server', ['--version'])
  if (found.error !== undefined) {
    throw new Error('redis-server is not installed: the Redis store tests run a real Redis. Install it with `apt-get install redis-server`.')
  }
}

// A port nothing listens on: the system picks one, then we let it go.
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

// One command in Redis' inline form, and the raw reply: enough to wait for a
// server without a client library in between.
export async function rawCommand (port: number, line: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, HOST)
    let reply = ''
    socket.setTimeout(1000, () => socket.destroy(new Error('timed out')))
    socket.once('error', reject)
    socket.once('connect', () => socket.write(`${line}\r\n`))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (complete(reply)) {
        socket.end()
        resolve(reply)
      }
    })
  })
}

// A simple reply ends at its first CRLF; a bulk one (`$<length>`) after its length.
function complete (reply: string): boolean {
  const header = reply.indexOf('\r\n')
  if (header === -1) return false
  if (!reply.startsWith('$')) return true
  const length = Number(reply.slice(1, header))
  return length < 0 || Buffer.byteLength(reply) >= header + 2 + length + 2
}

async function waitUntil (what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + STARTUP_MS
  for (;;) {
    try {
      if (await ready()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export async function startRedis (t: Test, options: RedisServerOptions = {}, port?: number): Promise<RedisServer> {
  requireRedisServer()
  const dir = await mkdtemp(join(tmpdir(), 'fastify-login-redis-'))
  const serverPort = port ?? await freePort()
  const args = [
    '--port', String(serverPort), '--bind', HOST, '--dir', dir,
    '--save', '', '--appendonly', options.appendonly === true ? 'yes' : 'no',
    ...options.args ?? []
  ]
  let child: ChildProcess | null = null
  let output = ''

  async function start (): Promise<void> {
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = started
    started.stdout?.on('data', (chunk) => { output = (output + chunk.toString()).slice(-4000) })
    started.stderr?.on('data', (chunk) => { output = (output + chunk.toString()).slice(-4000) })
    try {
      await waitUntil(`redis-server on port ${serverPort}`, async () => {
        if (started.exitCode !== null) throw new Error(`redis-server exited:\n${output}`)
        return (await rawCommand(serverPort, 'PING')).startsWith('+PONG')
      })
    } catch (error) {
      if (started.exitCode !== null) throw new Error(`redis-server on port ${serverPort} exited:\n${output}`)
      throw error
    }
  }

  async function stop (how: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const running = child
    child = null
    if (running === null || running.exitCode !== null) return
    await new Promise((resolve) => {
      running.once('exit', resolve)
      running.kill(how)
      // A frozen server would never act on the SIGTERM.
      running.kill('SIGCONT')
    })
  }

  function signal (name: NodeJS.Signals): void {
    if (child === null) throw new Error(`redis-server on port ${serverPort} is not running`)
    child.kill(name)
  }

  t.teardown(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  await start()
  return { port: serverPort, dir, start, stop: async () => await stop(), kill: async () => await stop('SIGKILL'), pause: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') }
}

// A Cluster's bus listens on port + 10000, which must be a port too.
async function clusterPort (): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + 10000 > 65535) continue
    const bus = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(port + 10000, HOST, () => server.close(() => resolve(true)))
    })
    if (bus) return port
  }
}

export interface ClusterOptions {
  /** Given a node's bus port, the port the node tells the others to reach its bus at (a proxy's). */
  bus?: (busPort: number) => Promise<number>
}

/** Three masters, no replicas, every slot assigned: `cluster_state:ok`. */
export async function startCluster (t: Test, options: ClusterOptions = {}): Promise<RedisServer[]> {
  const servers: RedisServer[] = []
  for (let i = 0; i < 3; i++) {
    const port = await clusterPort()
    const bus = options.bus === undefined ? [] : ['--cluster-announce-bus-port', String(await options.bus(port + 10000))]
    servers.push(await startRedis(t, {
      args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', ...bus]
    }, port))
  }
  await promisify(execFile)('redis-cli', [
    '--cluster', 'create', ...servers.map((server) => `${HOST}:${server.port}`),
    '--cluster-replicas', '0', '--cluster-yes'
  ])
  for (const server of servers) {
    await waitUntil(`cluster_state:ok on port ${server.port}`, async () =>
      (await rawCommand(server.port, 'CLUSTER INFO')).includes('cluster_state:ok'))
  }
  return servers
}

// A client whose commands fail fast when Redis is gone, as docs/redis-store.md
// tells apps to configure theirs.
export function redisClient (t: Test, port: number, options: RedisOptions = {}): Redis {
  const client = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, ...options })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  return client
}

export function clusterClient (t: Test, ports: number[], redisOptions: RedisOptions = {}): Cluster {
  const client = new Cluster(ports.map((port) => ({ host: HOST, port })), { redisOptions: { maxRetriesPerRequest: 1, ...redisOptions } })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  return client
}

/** How many times Redis ran each command, and the µs it spent in them (INFO commandstats; a script's commands included). */
export async function commandStats (admin: Redis | Cluster): Promise<Record<string, { calls: number, usec: number }>> {
  const stats: Record<string, { calls: number, usec: number }> = {}
  for (const [, name, calls, usec] of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats[name] = { calls: Number(calls), usec: Number(usec) }
  }
  return stats
}
