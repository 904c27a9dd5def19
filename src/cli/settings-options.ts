/** Commander options generated from the settings table: one set of names for flags and env vars. */
import { type Command, Option } from 'commander';

import { flagName, SETTINGS } from '../config/settings.js';

export function addSettingOptions(
  cmd: Command,
  only?: ReadonlyArray<keyof typeof SETTINGS>,
): Command {
  for (const [key, s] of Object.entries(SETTINGS)) {
    if (only && !only.includes(key as keyof typeof SETTINGS)) continue;
    const def = s.default === undefined ? '' : ` (default: ${String(s.default)})`;
    cmd.addOption(
      new Option(`${flagName(s.env)} <value>`, `${s.doc}${def}`).env(s.env).hideHelp(false),
    );
  }
  return cmd;
}
