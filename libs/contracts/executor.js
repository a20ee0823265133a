// Runtime entry of @berth/contracts/executor: the executor's part of the compiled sources (npm run build).
module.exports = require('../../dist/libs/contracts/src/executor.js');
