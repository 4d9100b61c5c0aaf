import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { Signer as CookieSigner } from '@fastify/cookie'
import type { FastifyInstance } from 'fastify'
import type { Secret } from '../types/index'

// The keys of the plugin: one signs the login cookies, another tags the
// client a login was made from. Both are derived from the app's secret, so
// that nothing the app signs elsewhere with it can pass for either.

export interface Signer {
  sign (value: string): string
  unsign (value: string): { valid: boolean, renew: boolean, value: string | null }
}

export interface Keys {
  signer: Signer
  // The first tags new logins; all of them are tried when checking (rotation).
  clientKeys: readonly Buffer[]
}

// Apps often share one secret with @fastify/cookie; a value the app signs
// there (perhaps one a visitor chose) must never pass for a login cookie.
export function signingKey (secret: Secret): Buffer {
  return derive(secret, 'fastify-login cookie signing v1')
}

export function clientKey (secret: Secret): Buffer {
  return derive(secret, 'fastify-login client tag v1')
}

export function ownKeys (secrets: readonly Secret[]): Keys {
  return { signer: new CookieSigner(secrets.map(signingKey)), clientKeys: secrets.map(clientKey) }
}

// Without a secret of its own the plugin signs with the app's @fastify/cookie.
// The client key must not be that signer: its tags would be app-valid
// signatures of a message the visitor chooses (the user agent). It is
// derived from the signature of a constant instead, so every instance of
// the app agrees on it.
export function borrowedKeys (fastify: FastifyInstance): Keys {
  const signed = fastify.signCookie('fastify-login client tag key v1')
  return {
    signer: {
      sign: (value) => fastify.signCookie(value),
      unsign: (value) => fastify.unsignCookie(value)
    },
    clientKeys: [derive(signed, 'fastify-login client tag v1')]
  }
}

function derive (secret: Secret, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', info, 32))
}

// 128 bits of an HMAC-SHA256: a tag is matched, never verified offline.
export function hmacTag (key: Buffer, message: string): string {
  return createHmac('sha256', key).update(message).digest().toString('base64url', 0, 16)
}

export function sameTag (a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
}
