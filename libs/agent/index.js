// Runtime entry of @berth/agent: the compiled sources (npm run build).
module.exports = require('../../dist/libs/agent/src/index.js');
