// At most two generations of `size` entries: when the newer fills up, the
// older is dropped whole and the newer takes its place. Bounded, O(1), and
// entries in use move up to the newer generation, so they stay.
export class TwoGenerations<V> {
  #size: number
  #current = new Map<string, V>()
  #previous = new Map<string, V>()

  constructor (size: number) {
    this.#size = size
  }

  get (key: string): V | undefined {
    const value = this.#current.get(key)
    if (value !== undefined) return value
    const older = this.#previous.get(key)
    if (older !== undefined) this.set(key, older)
    return older
  }

  set (key: string, value: V): void {
    if (this.#current.size >= this.#size) {
      this.#previous = this.#current
      this.#current = new Map()
    }
    this.#current.set(key, value)
  }

  delete (key: string): void {
    this.#current.delete(key)
    this.#previous.delete(key)
  }
}
