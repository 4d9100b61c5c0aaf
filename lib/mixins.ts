import { FST_LOGIN_NO_USER_ID } from './errors'

// The base class for an app's users: logged in, active, not anonymous.
// Override the getters (for example `isActive`) where the app knows better.
export class UserMixin {
  get isActive (): boolean {
    return true
  }

  get isAuthenticated (): true {
    return true
  }

  get isAnonymous (): false {
    return false
  }

  // `id` is the subclass's own, a field or a getter: no field is declared
  // here, as one would shadow a subclass's getter.
  getId (): string {
    const id = (this as { id?: unknown }).id
    if (id === undefined || id === null) {
      throw new FST_LOGIN_NO_USER_ID()
    }
    return String(id)
  }

  equals (other: unknown): boolean {
    if (other === null || typeof other !== 'object') return false
    const otherId = userId(other)
    return otherId !== null && otherId === userId(this)
  }
}

// The user of a request without a valid login.
export class AnonymousUserMixin {
  get isActive (): false {
    return false
  }

  get isAuthenticated (): false {
    return false
  }

  get isAnonymous (): true {
    return true
  }

  getId (): null {
    return null
  }
}

// The id of any user-like object: `getId()` when it has one, else `id`.
// Returns null when there is neither, so callers decide how loud to be.
export function userId (user: object): string | null {
  const candidate = user as { getId?: () => unknown, id?: unknown }
  const id = typeof candidate.getId === 'function' ? candidate.getId() : candidate.id
  return id === undefined || id === null ? null : String(id)
}
