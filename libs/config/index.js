// Runtime entry of @berth/config: the compiled sources (npm run build).
module.exports = require('../../dist/libs/config/src/index.js');
