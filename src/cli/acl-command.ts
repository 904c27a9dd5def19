/**
 * `streambed acl PROFILE USER`: prints the least-privilege `ACL SETUSER`
 * line for a worker, a tenant's producer, an operator or an admin
 * (src/acl/profiles.ts, docs/acl.md), for an operator to apply with the
 * password filled in. It connects to nothing.
 */
import { Command, Option } from 'commander';

import { ACL_PROFILES, type AclProfile, aclSetUser } from '../acl/profiles.js';
import { StreambedError } from '../errors.js';

export function aclCommand(): Command {
  return new Command('acl')
    .description('Print the least-privilege ACL SETUSER line of a profile (docs/acl.md).')
    .addOption(
      new Option('--profile <name>', 'who the user is').choices(ACL_PROFILES).makeOptionMandatory(),
    )
    .requiredOption('--user <name>', 'the Redis user name')
    .option('--key-prefix <prefix>', 'KEY_PREFIX of the fleet', process.env.KEY_PREFIX || 'sb')
    .option('--source <source>', 'producer: the tenant source')
    .option('--models <names>', 'producer: models it submits to, comma separated')
    .action(
      (o: {
        profile: AclProfile;
        user: string;
        keyPrefix: string;
        source?: string;
        models?: string;
      }) => {
        try {
          console.log(
            aclSetUser(o.profile, o.user, {
              prefix: o.keyPrefix,
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
