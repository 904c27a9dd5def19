/**
 * The Redis connection and SDK client of a command-line command: checked
 * with one PING before any work, so an unreachable Redis or refused
 * credentials end the command within seconds with one line (src/cli/exit.ts).
 */
import type { Redis } from 'ioredis';

import { StreambedClient } from '../client/client.js';
import type { Config } from '../config/load.js';
import { connectClient, redisTarget } from '../redis/connect.js';

export interface CliConnection {
  redis: Redis;
  client: StreambedClient;
  close(): Promise<void>;
}

export async function openCliConnection(config: Config, name: string): Promise<CliConnection> {
  const redis = await connectClient({
    ...redisTarget(config),
    name,
  });
  const client = new StreambedClient({ redis, prefix: config.keyPrefix, group: config.group });
  return {
    redis,
    client,
    async close() {
      await client.close();
      redis.disconnect();
    },
  };
}
