#!/usr/bin/env node
// `node scripts/migrate.js`: applies pending migrations (prisma/migrations) to DATABASE_URL and
// exits — the chart's pre-install/pre-upgrade Job. Berth's own runner, which records them in
// Prisma's _prisma_migrations table as `prisma migrate deploy` does; unlike the Prisma CLI it needs
// no schema engine fetched at run time, so it runs in a read-only, offline pod. Needs `npm run build`.
'use strict';
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.error('berth migrate: DATABASE_URL is required');
  process.exit(2);
}
const { Database } = require('@berth/persistence');
// dataDir is the embedded database's, unused with a DATABASE_URL.
const db = new Database({ databaseUrl, dataDir: '/nonexistent', poolSize: 1 });
db.ready
  .then(() => db.close())
  .then(
    () => process.exit(0),
    // Database has logged why.
    () => process.exit(1),
  );
