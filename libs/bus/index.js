// Runtime entry of @berth/bus: the compiled sources (npm run build).
module.exports = require('../../dist/libs/bus/src/index.js');
