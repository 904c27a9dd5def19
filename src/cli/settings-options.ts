/** Commander options generated from the settings table: one set of names for flags and env vars. */
import { type Command, Option } from 'commander';

import { choicesOf, flagName, SETTINGS } from '../config/settings.js';

export function addSettingOptions(
  cmd: Command,
  only?: ReadonlyArray<keyof typeof SETTINGS>,
): Command {
  for (const [key, s] of Object.entries(SETTINGS)) {
    if (only && !only.includes(key as keyof typeof SETTINGS)) continue;
    // An empty default (MODELS) means "none": `(default: )` told the reader nothing.
    const def =
      s.default === undefined || s.default === '' ? '' : ` (default: ${String(s.default)})`;
    const option = new Option(`${flagName(s.env)} <value>`, `${s.doc}${def}`).env(s.env);
    const choices = choicesOf(s.schema);
    if (choices) option.choices(choices);
    cmd.addOption(option);
  }
  return cmd;
}
