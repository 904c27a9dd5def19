// Child process of pglite-server.ts: one PGlite with pgvector, persisted in a
// data dir, served over the Postgres wire protocol by pglite-socket. Plain JS
// because Node 20 cannot run a TypeScript child without a loader.
// argv: DATA_DIR PORT (0 = any free port). Reports {type:'listening', port} over IPC.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const [dataDir, portArg] = process.argv.slice(2);
if (!dataDir || portArg === undefined || !process.send) {
  console.error('usage: (forked) pglite-server-main.mjs DATA_DIR PORT');
  process.exit(2);
}

// Die with the parent: the IPC channel closes when the test process exits or
// is killed, and a leftover server would hold the port and the data dir.
process.on('disconnect', () => process.exit(0));

const db = await PGlite.create(dataDir, { extensions: { vector } });
// pglite-socket accepts one connection unless told otherwise, and answers the
// next one with a bare "Too many connections" line that pg reports as a protocol error.
const server = new PGLiteSocketServer({
  db,
  host: '127.0.0.1',
  port: Number(portArg),
  maxConnections: 64,
});
await server.start();

process.on('SIGTERM', () => {
  server
    .stop()
    .then(() => db.close())
    .then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
});

const port = Number(server.getServerConn().split(':').pop());
process.send({ type: 'listening', port });
