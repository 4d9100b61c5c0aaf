import { connect, createServer, type Socket } from 'node:net'
import type { Test } from 'tap'

// A TCP proxy on loopback between a client and a server, for fault injection:
// each connection through it can be stalled (nothing forwarded, in one
// direction or both, while both sockets stay open: a half-open connection
// behind a NAT, a stalled load balancer), resumed, or cut. What a clean
// shutdown of the server never shows, a stalled connection does.
//
// Connections are told apart by what the client sent first: ioredis names a
// connection with `CLIENT SETNAME` as it connects, and redisStore's subscriber
// is named `fastify-login:subscriber`.

const HOST = '127.0.0.1'
// Enough of a connection's first bytes to find its name in.
const SNIFFED_BYTES = 4096
const WAIT_MS = 5000

export type Direction = 'both' | 'toServer' | 'toClient'

export class ProxiedConnection {
  readonly id: number
  #client: Socket
  #server: Socket
  #sent = ''
  #closed = false
  #changed: () => void

  constructor (id: number, client: Socket, server: Socket, changed: () => void) {
    this.id = id
    this.#client = client
    this.#server = server
    this.#changed = changed
    // Forwarded by hand, not piped: pausing a socket then stops it reading,
    // and what it was sent waits in the kernel, as behind a stalled peer.
    client.on('data', (chunk: Buffer) => {
      if (this.#sent.length < SNIFFED_BYTES) {
        this.#sent += chunk.toString('latin1')
        changed()
      }
      server.write(chunk)
    })
    server.on('data', (chunk: Buffer) => client.write(chunk))
    for (const socket of [client, server]) {
      socket.on('error', () => {})
      socket.on('close', () => this.cut())
    }
  }

  /** What the client sent first (up to 4 KiB). */
  get sent (): string {
    return this.#sent
  }

  /** redisStore's subscriber connection (named as it connects). */
  get subscriber (): boolean {
    return this.#sent.includes('fastify-login:subscriber')
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Forwards nothing more (in `direction`), without closing anything. */
  stall (direction: Direction = 'both'): void {
    if (direction !== 'toClient') this.#client.pause()
    if (direction !== 'toServer') this.#server.pause()
  }

  /** Forwards again, what was held first. */
  resume (): void {
    this.#client.resume()
    this.#server.resume()
  }

  /** Closes both sockets at once (a reset, as a crashed proxy would). */
  cut (): void {
    if (this.#closed) return
    this.#closed = true
    this.#client.destroy()
    this.#server.destroy()
    this.#changed()
  }
}

export interface TcpProxy {
  readonly port: number
  /** Every connection made through it, in the order they were accepted. */
  readonly connections: readonly ProxiedConnection[]
  /** Resolves with the first open connection that matches, waiting for one to arrive. */
  find (matches: (connection: ProxiedConnection) => boolean, timeoutMs?: number): Promise<ProxiedConnection>
  /** `true`: new connections are closed as soon as they arrive (a server that cannot be reached). */
  refuse (refusing: boolean): void
}

/** Starts a proxy to `targetPort`, closed with all its connections when `t` ends. */
export async function startProxy (t: Test, targetPort: number): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = []
  const waiters = new Set<() => void>()
  const changed = (): void => { for (const waiter of [...waiters]) waiter() }
  let refusing = false
  const server = createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, HOST)
    connections.push(new ProxiedConnection(connections.length + 1, client, upstream, changed))
    changed()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, resolve)
  })
  t.teardown(async () => {
    for (const connection of connections) connection.cut()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    port: (server.address() as { port: number }).port,
    connections,
    refuse: (value) => { refusing = value },
    find: async (matches, timeoutMs = WAIT_MS) => await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = connections.find((connection) => !connection.closed && matches(connection))
        if (found === undefined) return
        waiters.delete(check)
        clearTimeout(timer)
        resolve(found)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no matching connection through the proxy in ${timeoutMs} ms`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  }
}
