/**
 * The `streambed` command line. Only the command being run is imported, so
 * a client command (submit, backfill, status) does not load the worker, the
 * sink or the model runtime; help and unknown commands load them all.
 */
import { readFileSync } from 'node:fs';

import { Command, CommanderError } from 'commander';

import { EXIT_CONFIG, exitWith } from './exit.js';

const COMMANDS: Record<string, () => Promise<Command>> = {
  worker: async () => (await import('./worker-command.js')).workerCommand(),
  submit: async () => (await import('./submit-command.js')).submitCommand(),
  backfill: async () => (await import('./backfill-command.js')).backfillCommand(),
  models: async () => (await import('./models-command.js')).modelsCommand(),
  search: async () => (await import('./search-command.js')).searchCommand(),
  dlq: async () => (await import('./dlq-command.js')).dlqCommand(),
  status: async () => (await import('./status-command.js')).statusCommand(),
  console: async () => (await import('./console-command.js')).consoleCommand(),
  serve: async () => (await import('./serve-command.js')).serveCommand(),
  demo: async () => (await import('./demo-command.js')).demoCommand(),
  acl: async () => (await import('./acl-command.js')).aclCommand(),
};

const { version } = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('streambed')
  .description('Redis Streams consumer-group worker fleet that turns text into embeddings.')
  .version(version, '-V, --version')
  .showHelpAfterError();

const named = process.argv[2];
const wanted = named !== undefined && named in COMMANDS ? [named] : Object.keys(COMMANDS);
for (const command of await Promise.all(
  wanted.map((name) => (COMMANDS[name] as () => Promise<Command>)()),
))
  program.addCommand(command);

/** A usage mistake (unknown option, missing argument) is a configuration error: exit 2, not 1. */
function usageExits(cmd: Command): void {
  cmd.exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_CONFIG);
  });
  for (const sub of cmd.commands) usageExits(sub);
}
usageExits(program);

program.parseAsync(process.argv).catch(exitWith);
