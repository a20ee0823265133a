// Runtime entry of @berth/persistence: the compiled sources (npm run build).
module.exports = require('../../dist/libs/persistence/src/index.js');
