// Runtime entry of @berth/testing: the compiled sources (npm run build).
module.exports = require('../../dist/libs/testing/src/index.js');
