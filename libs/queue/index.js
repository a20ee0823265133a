// Runtime entry of @berth/queue: the compiled sources (npm run build).
module.exports = require('../../dist/libs/queue/src/index.js');
