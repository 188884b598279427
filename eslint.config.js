'use strict'

const neostandard = require('neostandard')

module.exports = [
  // neostandard's TypeScript rules (typescript-eslint) over the whole project.
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'bench/results/**', 'examples/**/dist/**']
  }),
  {
    rules: {
      // `void promise` marks a promise that cannot reject and is deliberately not awaited.
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
