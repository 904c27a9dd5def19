/** The `streambed` command line. */
import { Command } from 'commander';

import { toStreambedError } from '../errors.js';
import { backfillCommand } from './backfill-command.js';
import { demoCommand } from './demo-command.js';
import { dlqCommand } from './dlq-command.js';
import { modelsCommand } from './models-command.js';
import { searchCommand } from './search-command.js';
import { serveCommand } from './serve-command.js';
import { statusCommand } from './status-command.js';
import { submitCommand } from './submit-command.js';
import { workerCommand } from './worker-command.js';

const program = new Command('streambed')
  .description('Redis Streams consumer-group worker fleet that turns text into embeddings.')
  .showHelpAfterError()
  .addCommand(workerCommand())
  .addCommand(submitCommand())
  .addCommand(backfillCommand())
  .addCommand(modelsCommand())
  .addCommand(searchCommand())
  .addCommand(dlqCommand())
  .addCommand(statusCommand())
  .addCommand(serveCommand())
  .addCommand(demoCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = toStreambedError(err);
  console.error(`streambed: ${e.code}: ${e.message}`);
  process.exit(e.code === 'config' || e.code === 'invalid' ? 2 : 1);
});
