import { performance } from 'node:perf_hooks'
import type { Cluster, Redis } from 'ioredis'
import type { LoginStoreListener, Revocation } from '../../types/index'
import { nowInSeconds } from '../clock'
import { MAX_LIFETIME } from '../cookies/token'
import { FST_LOGIN_STORE_CLOSED, FST_LOGIN_STORE_SUBSCRIBE_FAILED } from '../errors'
import { masterOf } from './cluster-slot'

// The connection that hears revocations, for redisStore. Pub/sub needs a
// connection of its own; this one is opened and reconnected here rather than
// by ioredis, so the listener hears exactly when revocations may have been
// missed (`false` as soon as the connection drops) and when they are heard
// again (`true` only once SUBSCRIBE is confirmed on the new connection and
// everything ended before it has been read back). On a Cluster it is a plain
// connection to the master that publishes every ending (the one holding the
// `hub` key): a Cluster's own subscriber reconnects without telling, and a
// message published on another node would reach this one over the cluster
// bus, which a PING to this node proves nothing about.
//
// Then it proves what it heard: PINGs one after another (one in flight, at
// least PROOF_EVERY_MS apart). Redis answers a PING after every message it
// published before it, on the same connection, so the answer to a PING sent
// at time s proves that every revocation completed before s was delivered
// (and, ioredis emitting messages in order, handed to the listener). A
// connection that stalls without closing (a half-open TCP connection, a
// stalled proxy) sends no proof, and the plugin stops trusting at once;
// after UNANSWERED_MS it is dropped and opened again.

// 20 PINGs a second at most, per subscriber. The plugin wants a proof no
// older than 100 ms, so the newest one stays good enough while the round trip
// and an event loop that runs late take up to 50 ms together. Each PING costs
// the instance a wake-up and two system calls (about 0.5 ms of CPU on an idle
// 2-vCPU VM, docs/benchmark.md): at 20 ms apart the heartbeat alone was most
// of what a warm store-backed request cost more than a stateless one.
const PROOF_EVERY_MS = 50
const UNANSWERED_MS = 1000
// How long to wait before the subscriber reconnects: doubling, at most 2 s.
const FIRST_RETRY_MS = 50
const LAST_RETRY_MS = 2000

type Client = Redis | Cluster

export interface SubscriberOptions {
  listener: LoginStoreListener
  // On a Cluster: the key whose node publishes every ending.
  hub: string
  // Runs once SUBSCRIBE is confirmed, before `listening(true)`.
  catchUp: () => Promise<void>
}

export class Subscriber {
  #client: Client
  #channel: string
  #listener: LoginStoreListener
  #hub: string
  #catchUp: () => Promise<void>
  #connection: Redis | null = null
  #listening = false
  #attempts = 0
  #retry: NodeJS.Timeout | undefined
  #beat: NodeJS.Timeout | undefined
  #stopped = false
  // Why the last connection failed, for the error of a subscribe that could not.
  #lastError = new Error('the connection closed')
  #started: { resolve: () => void, reject: (error: Error) => void } | null = null

  constructor (client: Client, channel: string, options: SubscriberOptions) {
    this.#client = client
    this.#channel = channel
    this.#listener = options.listener
    this.#hub = options.hub
    this.#catchUp = options.catchUp
  }

  // Resolves once the first SUBSCRIBE is confirmed and caught up; rejects if
  // the first connection fails, so a Redis that is not there fails the app's
  // `ready`.
  async start (): Promise<void> {
    if (this.#client.isCluster && this.#client.status !== 'ready') await this.#client.ping()
    await new Promise<void>((resolve, reject) => {
      this.#started = { resolve, reject }
      this.#connect()
    })
  }

  async stop (): Promise<void> {
    // Whoever still listens must stop trusting what it heard.
    this.#setListening(false)
    this.#stopped = true
    clearTimeout(this.#retry)
    clearTimeout(this.#beat)
    // An app closed while still starting: its `ready` must not wait forever.
    this.#started?.reject(new FST_LOGIN_STORE_CLOSED(this.#channel))
    this.#started = null
    // Not QUIT: a frozen Redis would never answer it, and the app's close
    // would wait forever. Closing our end is all a subscriber needs.
    this.#connection?.disconnect()
    this.#connection = null
  }

  #connect (): void {
    const connection = this.#open()
    this.#connection = connection
    if (connection === null) return this.#ended()
    connection.on('error', (error: Error) => { this.#lastError = error })
    connection.on('message', (_channel: string, message: string) => this.#heard(message))
    connection.on('ready', () => {
      connection.subscribe(this.#channel)
        .then(async () => await this.#catchUp())
        .then(() => {
          if (this.#connection !== connection) return
          this.#attempts = 0
          this.#setListening(true)
          this.#prove(connection)
        }, (error: Error) => {
          // Refused (an ACL, say), or the catch-up failed: drop the connection and try again.
          this.#lastError = error
          connection.disconnect()
        })
    })
    connection.on('close', () => {
      clearTimeout(this.#beat)
      this.#setListening(false)
      // Gone: a catch-up still running on the command client must not end
      // in listening on it (the next connection is made after a delay).
      if (this.#connection === connection) this.#connection = null
    })
    connection.once('end', () => this.#ended())
    connection.connect().catch(() => { /* 'end' follows, and handles it */ })
  }

  #open (): Redis | null {
    // No retries by ioredis (each attempt is a new connection, see #ended),
    // no resubscription behind our back, lazy so our handlers come first.
    const overrides = { lazyConnect: true, autoResubscribe: false, retryStrategy: () => null, connectionName: 'fastify-login:subscriber' }
    if (!this.#client.isCluster) return (this.#client as Redis).duplicate(overrides)
    // None while the Cluster knows no master for it: try again later.
    return masterOf(this.#client as Cluster, this.#hub)?.duplicate(overrides) ?? null
  }

  // One PING at a time; each answer is a proof, and the next PING leaves at
  // least PROOF_EVERY_MS after the last one left. A PING unanswered for
  // UNANSWERED_MS means a peer that is gone without closing the connection
  // (a partition, a frozen server): deaf now, not when TCP gives up.
  #prove (connection: Redis): void {
    const sentAt = performance.now()
    this.#beat = setTimeout(() => {
      this.#setListening(false)
      connection.disconnect()
    }, UNANSWERED_MS).unref()
    connection.ping().then(() => {
      clearTimeout(this.#beat)
      if (this.#connection !== connection || !this.#listening) return
      this.#listener.heard(sentAt)
      const wait = Math.max(0, sentAt + PROOF_EVERY_MS - performance.now())
      this.#beat = setTimeout(() => this.#prove(connection), wait).unref()
    }, () => { /* 'close' follows */ })
  }

  #ended (): void {
    if (this.#stopped) return
    if (this.#started !== null) {
      const started = this.#started
      this.#started = null
      this.#stopped = true
      const failure = new FST_LOGIN_STORE_SUBSCRIBE_FAILED(this.#channel, this.#lastError.message)
      failure.cause = this.#lastError
      started.reject(failure)
      return
    }
    const delay = Math.min(FIRST_RETRY_MS * 2 ** this.#attempts, LAST_RETRY_MS)
    this.#attempts++
    // Unref'd, like the heartbeat: waiting for Redis alone keeps no process alive.
    this.#retry = setTimeout(() => this.#connect(), delay).unref()
  }

  #heard (message: string): void {
    const revocations = readRevocations(message)
    if (revocations !== null) {
      this.#listener.revoked(revocations)
      return
    }
    // Something we cannot read may have been a revocation: stop trusting,
    // and subscribe again on a new connection, which reads back every ended
    // login before it is trusted.
    this.#setListening(false)
    this.#connection?.disconnect()
  }

  #setListening (listening: boolean): void {
    if (listening === this.#listening || this.#stopped) return
    this.#listening = listening
    this.#listener.listening(listening)
    if (listening && this.#started !== null) {
      this.#started.resolve()
      this.#started = null
    }
  }
}

// What the store publishes: [[loginId, userId, expiresAt], ...]; login ids
// alone from an older version of the store.
function readRevocations (message: string): Revocation[] | null {
  let parsed: unknown
  try { parsed = JSON.parse(message) } catch { return null }
  if (!Array.isArray(parsed)) return null
  const revocations: Revocation[] = []
  for (const entry of parsed) {
    if (typeof entry === 'string') {
      revocations.push({ loginId: entry, userId: '', expiresAt: nowInSeconds() + MAX_LIFETIME })
    } else if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'string' && Number.isSafeInteger(entry[2])) {
      revocations.push({ loginId: entry[0], userId: entry[1], expiresAt: entry[2] })
    } else {
      return null
    }
  }
  return revocations
}
