/** The `streambed` command line. */
import { readFileSync } from 'node:fs';

import { Command, CommanderError } from 'commander';

import { backfillCommand } from './backfill-command.js';
import { consoleCommand } from './console-command.js';
import { demoCommand } from './demo-command.js';
import { dlqCommand } from './dlq-command.js';
import { EXIT_CONFIG, exitWith } from './exit.js';
import { modelsCommand } from './models-command.js';
import { searchCommand } from './search-command.js';
import { statusCommand } from './status-command.js';
import { submitCommand } from './submit-command.js';
import { workerCommand } from './worker-command.js';

const { version } = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('streambed')
  .description('Redis Streams consumer-group worker fleet that turns text into embeddings.')
  .version(version, '-V, --version')
  .showHelpAfterError()
  .addCommand(workerCommand())
  .addCommand(submitCommand())
  .addCommand(backfillCommand())
  .addCommand(modelsCommand())
  .addCommand(searchCommand())
  .addCommand(dlqCommand())
  .addCommand(statusCommand())
  .addCommand(consoleCommand())
  .addCommand(demoCommand());

/** A usage mistake (unknown option, missing argument) is a configuration error: exit 2, not 1. */
function usageExits(cmd: Command): void {
  cmd.exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_CONFIG);
  });
  for (const sub of cmd.commands) usageExits(sub);
}
usageExits(program);

program.parseAsync(process.argv).catch(exitWith);
