// Runtime entry of @berth/contracts: the compiled sources (npm run build).
module.exports = require('../../dist/libs/contracts/src/index.js');
