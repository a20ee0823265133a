// Runtime entry of @berth/crypto: the compiled sources (npm run build).
module.exports = require('../../dist/libs/crypto/src/index.js');
