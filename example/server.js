'use strict'

// A minimal fastify-login app: log in, see who you are, log out.
// Run it with `npm run example` and open http://127.0.0.1:3000.
const crypto = require('node:crypto')
const Fastify = require('fastify')
const fastifyLogin = require('..')
const { UserMixin } = fastifyLogin

class Student extends UserMixin {
  constructor (id, name, grade) {
    super()
    this.id = id
    this.name = name
    this.grade = grade
  }
}

// Stands in for a database until the example grows one.
const students = new Map([['1', new Student(1, 'Ada', 3)]])

function buildApp (options = {}) {
  const app = Fastify(options)
  app.register(fastifyLogin, {
    // A real app reads this from its environment; a random one logs everyone
    // out on restart, which is fine for a demo.
    secret: process.env.LOGIN_SECRET ?? crypto.randomBytes(32).toString('base64'),
    userLoader: (id) => students.get(id),
    loginRequiredRoute: '/login'
  })

  app.register(async (app) => {
    app.get('/', (request, reply) => {
      const user = request.currentUser
      reply.type('text/html')
      return user.isAuthenticated
        ? `<p>Logged in as ${user.name} · <a href="/profile">profile</a> · <form method="post" action="/logout"><button>Log out</button></form></p>`
        : '<p><a href="/login">Log in</a></p>'
    })

    app.get('/login', { onRequest: app.loginManager.loginProhibited }, (request, reply) => {
      reply.type('text/html')
      return '<form method="post" action="/login"><button>Log in as Ada</button></form>'
    })

    app.post('/login', { onRequest: app.loginManager.loginProhibited }, (request, reply) => {
      app.loginManager.loginUser(request, reply, students.get('1'), { remember: true })
      return reply.redirect('/profile', 303)
    })

    app.get('/profile', { onRequest: app.loginManager.loginRequired }, (request) => {
      const { name, grade } = request.currentUser
      return { name, grade, fresh: request.isFresh }
    })

    app.post('/logout', { onRequest: app.loginManager.loginRequired }, (request, reply) => {
      app.loginManager.logoutUser(request, reply)
      return reply.redirect('/', 303)
    })
  })
  return app
}

module.exports = { buildApp }

if (require.main === module) {
  const app = buildApp({ logger: true })
  app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) }).then(() => {
    console.log('fastify-login example: http://127.0.0.1:3000 (one click logs in as Ada)')
  }, (error) => {
    app.log.error(error)
    process.exit(1)
  })
}
