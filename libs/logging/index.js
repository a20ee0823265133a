// Runtime entry of @berth/logging: the compiled sources (npm run build).
module.exports = require('../../dist/libs/logging/src/index.js');
