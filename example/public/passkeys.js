'use strict'

// The browser's half of passkeys (the server's is passkeys.js beside app.js).
// Each form marked `data-passkey` gets its button shown when the browser has
// WebAuthn. A click asks the portal for the ceremony's options (a POST with
// the form's CSRF token), hands them to navigator.credentials, puts the
// authenticator's answer in the form as JSON, and submits the form: the
// portal answers with a page, as for any other form. Binary fields travel
// as base64url, as the WebAuthn JSON forms (and @simplewebauthn/server) say.
;(() => {
  if (window.PublicKeyCredential === undefined) return

  function bytes (base64url) {
    const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/')
    return Uint8Array.from(atob(base64), (character) => character.charCodeAt(0))
  }

  function base64url (buffer) {
    const binary = String.fromCharCode(...new Uint8Array(buffer))
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
  }

  const withIds = (credentials = []) => credentials.map((credential) => ({ ...credential, id: bytes(credential.id) }))

  function creationOptions (json) {
    return { ...json, challenge: bytes(json.challenge), user: { ...json.user, id: bytes(json.user.id) }, excludeCredentials: withIds(json.excludeCredentials) }
  }

  function requestOptions (json) {
    return { ...json, challenge: bytes(json.challenge), allowCredentials: withIds(json.allowCredentials) }
  }

  function answer (credential) {
    const response = credential.response
    const common = { id: credential.id, rawId: base64url(credential.rawId), type: credential.type, clientExtensionResults: credential.getClientExtensionResults() }
    if (response.attestationObject !== undefined) {
      return {
        ...common,
        response: {
          clientDataJSON: base64url(response.clientDataJSON),
          attestationObject: base64url(response.attestationObject),
          transports: response.getTransports?.() ?? []
        }
      }
    }
    return {
      ...common,
      response: {
        clientDataJSON: base64url(response.clientDataJSON),
        authenticatorData: base64url(response.authenticatorData),
        signature: base64url(response.signature),
        ...(response.userHandle ? { userHandle: base64url(response.userHandle) } : {})
      }
    }
  }

  async function ceremony (form, status) {
    const response = await fetch(form.dataset.options, {
      method: 'POST',
      headers: { 'x-csrf-token': form.elements._csrf.value, accept: 'application/json' },
      credentials: 'same-origin'
    })
    const json = await response.json().catch(() => ({ message: 'The portal did not answer. Reload the page and try again.' }))
    if (!response.ok) {
      status.textContent = json.message
      return
    }
    let credential
    try {
      credential = form.dataset.passkey === 'register'
        ? await navigator.credentials.create({ publicKey: creationOptions(json) })
        : await navigator.credentials.get({ publicKey: requestOptions(json) })
    } catch {
      status.textContent = 'No passkey was used. Try again when you are ready.'
      return
    }
    form.elements.credential.value = JSON.stringify(answer(credential))
    // "Remember me" is a checkbox of the password form.
    const remember = form.dataset.rememberFrom && document.getElementById(form.dataset.rememberFrom).elements.remember
    if (remember) form.elements.remember.value = remember.checked ? 'yes' : ''
    form.submit()
  }

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    const button = form.querySelector('[data-passkey-start]')
    const status = form.querySelector('.passkey-status')
    button.hidden = false
    button.addEventListener('click', () => {
      button.disabled = true
      status.hidden = false
      status.textContent = 'Waiting for your passkey…'
      ceremony(form, status).finally(() => { button.disabled = false })
    })
  }
})()
