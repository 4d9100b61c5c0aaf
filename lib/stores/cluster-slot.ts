import type { Cluster, Redis } from 'ioredis'

// Where a key lives on a Redis Cluster, as the client knows the slots: the
// master that serves the key's slot, the CRC16 (XMODEM) of the key, or of
// its first non-empty {hash tag}, modulo 16384. Computed here, since the
// app's ioredis has no public way to say, and without a round trip.

const SLOTS = 16384

export function keySlot (key: string): number {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  const hashed = Buffer.from(open !== -1 && close > open + 1 ? key.slice(open + 1, close) : key)
  let crc = 0
  for (const byte of hashed) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % SLOTS
}

// The master the client would send a command on `key` to (its `keyPrefix`
// first, as it does), or null while it knows none.
export function masterOf (cluster: Cluster, key: string): Redis | null {
  const address = cluster.slots[keySlot(`${cluster.options.keyPrefix ?? ''}${key}`)]?.[0]
  return cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === address) ?? null
}
