// Runtime entry of @berth/webhooks: the compiled sources (npm run build).
module.exports = require('../../dist/libs/webhooks/src/index.js');
