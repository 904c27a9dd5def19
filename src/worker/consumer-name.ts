/** One OS process = one consumer: `{POD_NAME or hostname}-{pid}`, stable enough for dashboards to follow. */
import os from 'node:os';

export function consumerName(override?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (override) return override;
  const host = env.POD_NAME || os.hostname();
  return `${host}-${process.pid}`;
}
