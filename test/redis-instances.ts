import { once } from 'node:events'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { redisStore } from '../lib/index'
import type { LoginStore, Revocation } from '../types/index'
import { portal } from './helpers'
import { redisClient } from './redis-server'

// Fastify instances of one app over a real Redis, as the Redis tests run
// them (test/logins-redis.test.ts, test/rotation-redis.test.ts): each with
// its own ioredis client, watched for what its store tells the plugin.

// How long a test waits for an instance to hear something before it fails.
export const PROBE_MS = 5000

// Fails fast while Redis is down, as docs/redis-store.md tells apps to
// configure their client: no offline queue, no retries, a command timeout.
export async function readyClient (t: Test, port: number): Promise<Redis> {
  const client = redisClient(t, port, { enableOfflineQueue: false, commandTimeout: 500, retryStrategy: () => 50 })
  // Without an offline queue nothing may be sent before the client is ready.
  if (client.status !== 'ready') await once(client, 'ready')
  return client
}

type Event = ['revoked', readonly string[]] | ['listening', boolean]

// What the plugin's record cache was told by its store, and when: each event
// is recorded right after the plugin's own listener has acted on it (so a
// `revoked` here means the login is already evicted from that cache).
export interface Watch {
  listening: boolean
  until (what: 'revoked', matches: (loginIds: readonly string[]) => boolean, timeoutMs?: number): Promise<number>
  until (what: 'listening', matches: (listening: boolean) => boolean, timeoutMs?: number): Promise<number>
}

export function watched (store: LoginStore): { store: LoginStore, watch: Watch } {
  const waiters: Array<{ what: string, matches: (value: never) => boolean, resolve: (at: number) => void }> = []
  const watch: Watch = {
    listening: false,
    until: async (what: string, matches: (value: never) => boolean, timeoutMs = 2000) => await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the plugin heard no matching ${what} in ${timeoutMs} ms`)), timeoutMs)
      waiters.push({ what, matches, resolve: (at) => { clearTimeout(timer); resolve(at) } })
    })
  }
  function heard (...[what, value]: Event): void {
    const at = performance.now()
    for (const waiter of [...waiters]) {
      if (waiter.what === what && waiter.matches(value as never)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(at)
      }
    }
  }
  return {
    watch,
    store: {
      ...store,
      subscribe: async (listener) => await store.subscribe?.({
        ...listener,
        revoked: (revocations) => { listener.revoked(revocations); heard('revoked', revocations.map(loginIdOfRevocation)) },
        listening: (listening) => { listener.listening(listening); watch.listening = listening; heard('listening', listening) }
      })
    }
  }
}

function loginIdOfRevocation (revocation: Revocation | string): string {
  return typeof revocation === 'string' ? revocation : revocation.loginId
}

export interface Instance {
  app: FastifyInstance
  watch: Watch
  loaderCalls: string[]
}

// One instance of the app: the README's "Logins and devices" portal, plus an
// unguarded route, over its own ioredis client.
export async function instance (t: Test, client: Redis | Cluster, options: Record<string, unknown> = {}, wrap = (store: LoginStore) => store): Promise<Instance> {
  const { store, watch } = watched(redisStore({ client }))
  const { app, loaderCalls } = await portal(t, wrap(store), options, (app) => {
    app.get('/plain', () => 'plain')
  })
  return { app, watch, loaderCalls }
}

// How many times Redis ran each command (scripts' commands included), from
// INFO commandstats: what the plugin asked of Redis, whichever client asked.
export async function commandCalls (admin: Redis): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const [, name, count] of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[name] = Number(count)
  return calls
}

// The commands run between two readings, less the heartbeats and our INFO.
export function ranSince (before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const ran: Record<string, number> = {}
  for (const [name, count] of Object.entries(after)) {
    if (name !== 'ping' && name !== 'info' && count > (before[name] ?? 0)) ran[name] = count - (before[name] ?? 0)
  }
  return ran
}

// performance.now, not Date.now: the tests move the plugin's clock.
export async function until (what: string, done: () => Promise<boolean>, timeoutMs = PROBE_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!await done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
