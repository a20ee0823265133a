// Runtime entry of @berth/metrics: the compiled sources (npm run build).
module.exports = require('../../dist/libs/metrics/src/index.js');
