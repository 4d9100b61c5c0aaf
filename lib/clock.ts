// Login times are whole seconds since the epoch, as in the cookies.
export function nowInSeconds (): number {
  return Math.floor(Date.now() / 1000)
}
