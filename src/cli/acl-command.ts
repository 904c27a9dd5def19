/**
 * `streambed acl PROFILE USER`: prints the least-privilege `ACL SETUSER`
 * line for a worker, a tenant's producer, an operator or an admin
 * (src/acl/profiles.ts, docs/acl.md), for an operator to apply with the
 * password filled in. It connects to nothing; KEY_PREFIX and REDIS_CLUSTER
 * are read as the fleet reads them, so on a Cluster the keys granted are
 * the fleet's `{prefix}:*`.
 */
import { Command, Option } from 'commander';

import { ACL_PROFILES, type AclProfile, aclSetUser } from '../acl/profiles.js';
import { loadSettings } from '../config/load.js';
import { StreambedError } from '../errors.js';
import { addSettingOptions } from './settings-options.js';

const USED = ['keyPrefix', 'redisCluster'] as const;

export function aclCommand(): Command {
  const cmd = new Command('acl')
    .description('Print the least-privilege ACL SETUSER line of a profile (docs/acl.md).')
    .addOption(
      new Option('--profile <name>', 'who the user is').choices(ACL_PROFILES).makeOptionMandatory(),
    )
    .requiredOption('--user <name>', 'the Redis user name')
    .option('--source <source>', 'producer: the tenant source')
    .option('--models <names>', 'producer: models it submits to, comma separated');
  return addSettingOptions(cmd, USED).action(
    (
      o: Record<string, unknown> & {
        profile: AclProfile;
        user: string;
        source?: string;
        models?: string;
      },
    ) => {
      const { keyPrefix } = loadSettings(process.env, o, USED);
      try {
        console.log(
          aclSetUser(o.profile, o.user, {
            prefix: keyPrefix,
            ...(o.source !== undefined && { source: o.source }),
            ...(o.models !== undefined && { models: o.models.split(',').filter(Boolean) }),
          }),
        );
      } catch (err) {
        throw new StreambedError('config', (err as Error).message);
      }
    },
  );
}
