// Runtime entry of @berth/sandbox: the compiled sources (npm run build).
module.exports = require('../../dist/libs/sandbox/src/index.js');
