import type { EventEmitter } from 'node:events'
import type { FastifyRequest } from 'fastify'
import type { LoginEvents } from '../types/index'
import { isThenable } from './state'

// Listeners are the app's code, but an observer must not break the request
// it observes: a throwing or rejecting listener is logged.
export function emitSafely<K extends keyof LoginEvents> (emitter: EventEmitter<LoginEvents>, request: FastifyRequest, event: K, ...args: LoginEvents[K]): void {
  if (emitter.listenerCount(event) === 0) return
  // rawListeners: once() wrappers remove themselves when called.
  for (const listener of emitter.rawListeners(event) as Array<(...values: unknown[]) => unknown>) {
    try {
      const result = listener.apply(emitter, args)
      if (isThenable(result)) result.then(undefined, (error: unknown) => logListenerError(request, event, error))
    } catch (error) {
      logListenerError(request, event, error)
    }
  }
}

function logListenerError (request: FastifyRequest, event: string, error: unknown): void {
  request.log.error({ err: error }, `fastify-login: a '${event}' listener failed`)
}
